"""Real Prometheus and Alertmanager (Debian's binaries) on free loopback ports, stopped by pid.

``scripts/ensure-system-deps.sh`` installs ``prometheus`` and ``prometheus-alertmanager``;
a missing binary fails the test with that hint, it never skips.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.redis_server import free_port


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else ""
        )
        if found:
            return found
    raise RuntimeError(f"{names[0]} is not installed: run `make test` (it apt-gets it)")


class _Process:
    """A child process with a readiness URL; its output goes to a log file kept for failures."""

    name = "process"

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"ae-{self.name}-"))
        self.log = self.dir / "output.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float = 20.0) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        output = self.output()
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{output}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class Prometheus(_Process):
    name = "prometheus"

    def __init__(self, config_yaml: str, rules_yaml: str) -> None:
        super().__init__()
        self.binary = _binary("prometheus")
        (self.dir / "rules.yml").write_text(rules_yaml)
        (self.dir / "prometheus.yml").write_text(
            config_yaml.replace("RULES_FILE", str(self.dir / "rules.yml"))
        )

    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--web.external-url={self.url}/",  # generatorURL: this host, not the machine name
            "--log.level=warn",
        ]


class Alertmanager(_Process):
    name = "alertmanager"

    def __init__(self, config_yaml: str) -> None:
        super().__init__()
        self.binary = _binary("prometheus-alertmanager", "alertmanager")
        (self.dir / "alertmanager.yml").write_text(config_yaml)

    def command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.dir / 'alertmanager.yml'}",
            f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # one instance: no gossip port
            f"--web.external-url={self.url}/",
            "--log.level=warn",
        ]
