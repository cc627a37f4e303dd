"""`alertengine serve` / `check-config`: a bad config refuses to start, naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from typer.testing import CliRunner

from alertengine.cli import app
from tests.support.redis_server import free_port

SECRETS = {"ALERT_SECRET": "s" * 48, "ALERTENGINE_LEDGER_KEY": "k" * 48}

GOOD = """
[orchestrator]
store_url = "sqlite:///{db}"
port = {port}
loop_interval_s = 0.5
[[tenants]]
id = "acme"
approvers = [{{ channel = "webhook", address = "http://127.0.0.1:9/inbox", identity = "alice" }}]
[[targets]]
tenant = "acme"
service = "checkout"
health_url = "http://127.0.0.1:9/health/alerts"
"""


def run(args, env):
    return CliRunner().invoke(app, args, env=env)


def test_check_config_names_the_bad_field(tmp_path):
    cfg = tmp_path / "a.toml"
    cfg.write_text('[[targets]]\ntenant = "ghost"\nservice = "x"\n')
    r = run(["check-config", "--config", str(cfg)], SECRETS)
    assert r.exit_code == 2 and "targets.0.tenant" in r.output and "ghost" in r.output

    cfg.write_text('[[tenants]]\nid = "a"\n[tenants.policy]\nmin_score_to_alert = "high"\n')
    r = run(["check-config", "--config", str(cfg)], SECRETS)
    assert r.exit_code == 2 and "min_score_to_alert" in r.output

    r = run(["check-config", "--config", str(tmp_path / "missing.toml")], SECRETS)
    assert r.exit_code == 2 and "no such config file" in r.output


def test_check_config_refuses_weak_secrets(tmp_path):
    cfg = tmp_path / "a.toml"
    cfg.write_text(GOOD.format(db=tmp_path / "x.db", port=1))
    r = run(["check-config", "--config", str(cfg)], {"ALERT_SECRET": "short"})
    assert r.exit_code == 2 and "ALERT_SECRET" in r.output
    r = run(["check-config", "--config", str(cfg)], SECRETS)
    assert r.exit_code == 0 and "config OK" in r.output


def test_env_policy_override_that_cannot_apply_stops_startup(tmp_path):
    cfg = tmp_path / "a.toml"
    cfg.write_text(GOOD.format(db=tmp_path / "x.db", port=1))
    r = run(["check-config", "--config", str(cfg)], {**SECRETS, "POLICY_MIN_SCORE_TO_ALERT": "abc"})
    assert r.exit_code == 2 and "POLICY" in r.output


def test_serve_starts_and_polls_an_unreachable_target(tmp_path):
    port = free_port()
    cfg = tmp_path / "a.toml"
    cfg.write_text(GOOD.format(db=tmp_path / "ae.db", port=port))
    env = {**os.environ, **SECRETS, "ALERTENGINE_ADMIN_KEY": "a" * 40}
    proc = subprocess.Popen(
        [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/__alertengine/status",
                    headers={"Authorization": "Bearer " + "a" * 40},
                )
                status = r.json()
                if status["stats"]["polls"] >= 4:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert status is not None and status["stats"]["poll_failures"] >= 3
        # An unreachable target is a signal: after the streak an incident is open.
        r = httpx.get(
            f"http://127.0.0.1:{port}/incidents?tenant=acme",
            headers={"Authorization": "Bearer " + "a" * 40},
        )
        incidents = r.json()["incidents"]
        assert len(incidents) == 1 and "unreachable" in incidents[0]["history"][0]["reason"]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert "Traceback" not in out, out
    assert "ae_" not in out  # no API key is ever logged
