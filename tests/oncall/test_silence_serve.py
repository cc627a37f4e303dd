"""A silence against a real ``alertengine serve`` process and a fake Telegram Bot API.

The silence is created through the HTTP API before the trouble starts; the incident is
detected and ledgered (``kind="silenced"`` naming the silence) but no message is sent and
nothing is proposed. The silence is then expired from the CLI (another process, same store):
the approval message arrives within one loop interval (plus slack for a loaded box).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.scale.cluster import ADMIN, ROOT, SECRETS, Proc, until, wait_http
from tests.support.fakes.telegram import FakeTelegram
from tests.support.redis_server import free_port
from tests.support.servers import serve

LOOP_S = 1.0
HEALTHY = {
    "status": "ok",
    "health_score": {"score": 97, "status": "ok", "trend": "stable"},
    "metrics": {"overall_p95_ms": 40.0, "error_rate": 0.0, "sample_size": 250},
    "alerts": [],
}
DEGRADED = {
    "status": "critical",
    "health_score": {"score": 22, "status": "critical", "trend": "degrading"},
    "metrics": {"overall_p95_ms": 2800.0, "error_rate": 0.19, "sample_size": 250},
    "alerts": [],
}


def health_app(state: dict[str, Any]) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        return JSONResponse(state["body"])

    return Starlette(routes=[Route("/health/alerts", health)])


def config(tmp: Path, port: int, health: str, store: str) -> Path:
    p = tmp / "alertengine.toml"
    p.write_text(
        f"""
[orchestrator]
store_url = "{store}"
base_url = "http://127.0.0.1:{port}"
loop_interval_s = {LOOP_S}

[[tenants]]
id = "acme"
approvers = [{{ channel = "telegram", address = "4242", identity = "alice" }}]

[tenants.policy]
validate_after_polls = 2
escalate_after_s = 600

[[targets]]
tenant = "acme"
service = "checkout"
health_url = "{health}/health/alerts"
recovery_webhook = "http://127.0.0.1:9/never"
webhook_secret_env = "SCALE_RECOVERY_SECRET"
poll_timeout_s = 1.0
"""
    )
    return p


async def ledger(c: httpx.AsyncClient, base: str) -> list[dict[str, Any]]:
    r = await c.get(f"{base}/ledger", params={"tenant": "acme", "limit": 1000}, headers=ADMIN)
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


@pytest.mark.slow
async def test_silence_holds_paging_and_the_flow_resumes_within_a_loop_after_expiry(
    tmp_path: Path,
) -> None:
    tg = FakeTelegram()
    state: dict[str, Any] = {"body": HEALTHY}
    port = free_port()
    store = f"sqlite:///{tmp_path / 'ae.db'}"
    with serve(tg.app) as tg_url, serve(health_app(state)) as health_url:
        cfg = config(tmp_path, port, health_url, store)
        env = {**SECRETS, "TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_BASE": tg_url}
        proc = Proc(
            [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg),
             "--port", str(port), "--log-level", "warning"],
            env=env,
            log=tmp_path / "serve.log",
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_http(f"{base}/healthz", 30, [proc])
            async with httpx.AsyncClient(timeout=5) as c:
                # Bad input is refused with a reason, and nothing is created.
                bad = await c.post(
                    f"{base}/silences", params={"tenant": "acme"}, headers=ADMIN,
                    json={"matchers": ["service=~("], "duration_s": 60, "created_by": "ops",
                          "comment": "x"},
                )  # fmt: skip
                assert bad.status_code == 400 and "regular expression" in bad.json()["error"]
                r = await c.post(
                    f"{base}/silences",
                    params={"tenant": "acme"},
                    headers=ADMIN,
                    json={
                        "matchers": [{"name": "service", "op": "=", "value": "checkout"}],
                        "duration_s": 3600,
                        "created_by": "ops-oncall",
                        "comment": "planned database migration",
                    },
                )
                assert r.status_code == 201, r.text
                sid = r.json()["id"]
                state["body"] = DEGRADED

                async def silenced() -> list[dict[str, Any]]:
                    return [e for e in await ledger(c, base) if e["kind"] == "silenced"]

                (held,) = await until(silenced, 30, "no silenced entry")
                assert held["data"]["silence"] == sid and held["decision"] == "held"
                # Several more loops while silenced: still detected, nobody paged.
                deadline = time.monotonic() + 4 * LOOP_S
                while time.monotonic() < deadline:
                    assert tg.sent == []
                    await asyncio.sleep(0.2)
                incidents = (
                    await c.get(f"{base}/incidents", params={"tenant": "acme"}, headers=ADMIN)
                ).json()["incidents"]
                assert [i["stage"] for i in incidents] == ["DETECTED"]
                kinds = {e["kind"] for e in await ledger(c, base)}
                assert "silence" in kinds and "delivery" not in kinds

                # Expire it from the CLI (another process on the same store), actor named.
                out = subprocess.run(
                    [sys.executable, "-m", "alertengine", "silence", "expire", "--tenant",
                     "acme", sid, "--store-url", store, "--by", "bob"],
                    cwd=ROOT, env={**os.environ, **SECRETS}, capture_output=True, text=True,
                    timeout=60,
                )  # fmt: skip
                assert out.returncode == 0, out.stderr
                ended = time.monotonic()

                async def sent() -> list[dict[str, Any]]:
                    return list(tg.sent)

                await until(sent, 30, "no message after the silence ended", every=0.05)
                elapsed = time.monotonic() - ended
                # One loop interval, plus generous slack for a loaded 2-core box.
                assert elapsed <= LOOP_S + 4.0, elapsed
                entries = await ledger(c, base)
                expired = [e for e in entries if e["kind"] == "silence" and
                           e["decision"] == "expired"]  # fmt: skip
                assert expired and expired[0]["actor"] == "operator:bob"
                assert any(e["kind"] == "silenced" and e["decision"] == "resumed" for e in entries)
        finally:
            proc.stop()
