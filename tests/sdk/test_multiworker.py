"""Several worker processes, one answer: real ``uvicorn --workers 4`` and gunicorn with uvicorn
workers, merged through ``ALERTENGINE_MULTIPROC_DIR``; every poll on a fresh connection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
REQUESTS = 400
PUBLISH_INTERVAL_S = 0.2

pytestmark = pytest.mark.slow


def until(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")


def fresh_get(url: str) -> httpx.Response:
    # A new client per call: a new TCP connection, so the kernel may hand it to any worker.
    return httpx.get(url, headers={"Connection": "close"}, timeout=10)


def command(server: str, port: int) -> list[str]:
    app = "tests.sdk.multiworker_app:app"
    if server == "uvicorn":
        return [
            *(sys.executable, "-m", "uvicorn", app),
            *("--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log"),
        ]
    return [
        *(sys.executable, "-m", "gunicorn", app),
        *("-w", str(WORKERS), "-k", "uvicorn.workers.UvicornWorker"),
        *("-b", f"127.0.0.1:{port}", "--log-level", "warning", "--graceful-timeout", "5"),
        # --preload: the app (and its engine) is built once in the parent, then forked.
        *(("--preload",) if server == "gunicorn-preload" else ()),
    ]


@pytest.fixture(params=["uvicorn", "gunicorn", "gunicorn-preload"])
def workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    directory = tmp_path / "multiproc"
    env = {
        **os.environ,
        "ALERTENGINE_SERVICE": "multiworker",
        "ALERTENGINE_MULTIPROC_DIR": str(directory),
        "ALERTENGINE_PUBLISH_INTERVAL_S": str(PUBLISH_INTERVAL_S),
        "ALERTENGINE_PROMETHEUS": "true",
        # Long enough that nothing ages out however slow the box is.
        "ALERTENGINE_WINDOW_S": "600",
    }
    log = open(tmp_path / "server.log", "wb")  # closed below, after the server stopped
    proc = subprocess.Popen(
        command(request.param, port),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", directory
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


def published(directory: Path) -> int:
    """Requests the workers' files hold: each file's newest second says how many its worker
    had recorded before it (``before``) plus that second's own."""
    total = 0
    for f in directory.glob("*.aep"):
        lines = f.read_bytes().splitlines()[1:]
        if lines:
            newest = json.loads(lines[-1].partition(b" ")[2])
            total += newest["before"] + sum(r[0] for r in newest["routes"].values())
    return total


def health(base: str) -> dict[str, Any]:
    doc: dict[str, Any] = fresh_get(f"{base}/health/alerts").json()
    return doc


def test_every_poll_answers_for_all_workers(workers: tuple[str, Path]) -> None:
    base, directory = workers
    # Every worker announces itself at start-up, before its first request.
    until(
        lambda: health(base)["window"]["processes"] == WORKERS,
        60,
        f"{WORKERS} workers registered",
    )
    for i in range(REQUESTS):
        assert fresh_get(f"{base}/items/{i}").status_code == 200
    until(
        lambda: health(base)["metrics"]["sample_size"] == REQUESTS,
        30,
        "one answer covering all requests",
    )
    # The answering worker merged its own fresh data; the others publish theirs every
    # PUBLISH_INTERVAL_S. Once every worker's file holds all its requests, every answer must.
    until(lambda: published(directory) == REQUESTS, 30, "every worker's requests published")
    # Twelve reads at least, and on until two different workers have answered (the kernel
    # may hand several fresh connections in a row to the same worker): every one must agree.
    reads = [health(base) for _ in range(12)]
    while len({r["instance_id"] for r in reads}) < 2 and len(reads) < 300:
        reads.append(health(base))
    assert all(r["metrics"]["sample_size"] == REQUESTS for r in reads), [
        r["metrics"]["sample_size"] for r in reads
    ]
    assert all(r["window"]["processes"] == WORKERS for r in reads)
    assert all(r["window"]["scope"] == "host" for r in reads)
    assert all(r["window"]["gap"]["complete"] for r in reads)
    assert all(r["routes"]["/items/{item_id}"]["count"] == REQUESTS for r in reads)
    answered_by = {r["instance_id"] for r in reads}
    assert len(answered_by) >= 2, answered_by  # not one worker answering every time
    text = fresh_get(f"{base}/metrics").text
    assert 'alertengine_window_processes{service="multiworker",state="running"} 4.0' in text
    assert 'alertengine_window_latency_seconds_count{service="multiworker"} 400.0' in text

    # A worker dies (SIGKILL: no goodbye). Its requests were served: they stay in the answer,
    # and the answer says one of the processes it covers has exited.
    victim = next(iter(answered_by))
    pid = int(victim.split(":")[-2])
    os.kill(pid, signal.SIGKILL)
    after = until(
        lambda: (d := health(base))["window"]["processes_exited"] == 1 and d,
        30,
        "the killed worker reported as exited",
    )
    assert after["metrics"]["sample_size"] == REQUESTS
    files = list(directory.glob("*.aep"))
    assert any(f".{pid}." in f.name for f in files)  # kept while its data is in the window
