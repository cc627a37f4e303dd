"""`alertengine demo --headless` end to end, as CI runs it: a separate process, real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_headless_runs_the_whole_loop(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alertengine",
            "demo",
            "--headless",
            "--timeout",
            "150",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=220,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": str(tmp_path)},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "demo OK incidents=1 approvals=1 webhook_calls=1 ledger_ok=True final=RESOLVED" in out
    assert "Nothing will run without your approval." in out
    db = f"sqlite:///{tmp_path / 'alertengine-demo.db'}"
    key = (tmp_path / "ledger.key").read_text()
    # The auditor's tools on what the demo left behind.
    cli = [sys.executable, "-m", "alertengine", "ledger"]
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "ALERTENGINE_LEDGER_KEY": key}
    v = subprocess.run([*cli, "verify", "--url", db], capture_output=True, text=True, env=env)
    assert v.returncode == 0 and "OK" in v.stdout, v.stdout + v.stderr
    r = subprocess.run(
        [*cli, "replay", "--url", db, "--json"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    (inc,) = json.loads(r.stdout)["demo"]
    assert inc["stage"] == "RESOLVED" and inc["approvers"] == ["engineer:webhook:oncall-alice"]
    rep = subprocess.run(
        [
            *cli,
            "report",
            "--tenant",
            "demo",
            "--since",
            "2000-01-01",
            "--until",
            "2100-01-01",
            "--store-url",
            db,
            "--out",
            str(tmp_path / "report.html"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "engineer:webhook:oncall-alice" in (tmp_path / "report.html").read_text()
