"""Secrets in URLs (a recovery webhook's ``?token=``, a Slack hook path) never reach the log.

httpx logs every request URL at INFO; the orchestrator's runtime must leave only the host.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.clock import VirtualClock
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.log_redaction import host_only
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import build_runtime
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore
from tests.support.redis_server import free_port
from tests.support.servers import serve

SECRET = "q-s3cr3t-0123456789abcdef"


async def _ok(_: object) -> JSONResponse:
    return JSONResponse({"ok": True})


@pytest.fixture(scope="module")
def receiver() -> object:
    app = Starlette(routes=[Route("/recover/{rest:path}", _ok, methods=["POST"])])
    with serve(app) as url:
        yield url


async def test_the_runtime_http_client_logs_hosts_never_paths_or_queries(
    receiver: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    config = parse_config(
        {
            "orchestrator": {"base_url": "http://approve.test"},
            "tenants": [{"id": "acme", "approvers": [{"channel": "web", "address": "alice"}]}],
            "targets": [{"tenant": "acme", "service": "checkout"}],
        }
    )
    clock = VirtualClock()
    rt = await build_runtime(
        config,
        ledger=MemoryLedgerStore(b"x" * 32),
        store=MemoryStateStore(clock),
        settings=Settings.from_env({"ALERT_SECRET": "s" * 40}),
        clock=clock,
    )
    try:
        r = await rt.http.post(f"{receiver}/recover/{SECRET}?token={SECRET}&sig=abc", json={})
        assert r.status_code == 200
    finally:
        await rt.http.aclose()
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "httpx"]
    assert lines, "httpx logged nothing: the test would prove nothing"
    text = "\n".join(lines)
    assert SECRET not in text and "token=" not in text and "/recover" not in text
    assert host_only(receiver) in text and "200 OK" in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com"),
        ("http://127.0.0.1:8080/r?token=s", "http://127.0.0.1:8080"),
        ("https://[::1]:9/x?y=z", "https://[::1]:9"),
        ("https://user:pw@h.example/x", "https://h.example"),
        ("http://h:99999/x?t=s", "<url>"),
    ],
)
def test_host_only(url: str, shown: str) -> None:
    assert host_only(url) == shown


HEALTHY = {
    "status": "ok",
    "health_score": {"score": 98, "status": "ok", "trend": "stable"},
    "metrics": {"overall_p95_ms": 20.0, "error_rate": 0.0, "sample_size": 300},
    "alerts": [],
}


async def _health(_: object) -> JSONResponse:
    return JSONResponse(HEALTHY)


def test_serve_log_has_hosts_never_the_secret_in_a_polled_url(tmp_path: Path) -> None:
    """The real thing: `alertengine serve` polling a health URL that carries a token."""
    app = Starlette(routes=[Route("/health/alerts", _health, methods=["GET"])])
    with serve(app) as target:
        cfg = tmp_path / "alertengine.toml"
        cfg.write_text(
            f"""
[orchestrator]
store_url = "sqlite:///{tmp_path / "ae.db"}"
port = {free_port()}
loop_interval_s = 0.3
[[tenants]]
id = "acme"
approvers = [{{ channel = "web", address = "alice" }}]
[[targets]]
tenant = "acme"
service = "checkout"
health_url = "{target}/health/alerts?token={SECRET}"
"""
        )
        log = tmp_path / "serve.log"
        env = {**os.environ, "ALERT_SECRET": "s" * 48, "ALERTENGINE_LEDGER_KEY": "k" * 48}
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "alertengine",
                    "serve",
                    "--config",
                    str(cfg),
                    "--allow-unreachable-approvers",
                ],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            try:
                deadline = time.monotonic() + 90
                while log.read_text().count("HTTP Request: GET") < 2:
                    assert proc.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    out = log.read_text()
    polls = [line for line in out.splitlines() if "HTTP Request: GET" in line]
    assert all(f"GET {host_only(target)} " in line for line in polls), polls
    assert SECRET not in out and "token=" not in out
