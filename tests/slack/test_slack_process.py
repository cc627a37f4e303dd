"""Slack buttons on a real ``alertengine serve`` process, with the fake Slack on loopback as
the incoming webhook, the ``response_url`` host and the Slack client that signs presses:
Alice's alert arrives with Approve / I'm on it buttons; she acknowledges in Slack; escalation
waits ``ack_timeout_s``, then Bob is asked in #oncall; Alice approves in Slack; the recovery
runs once; a replayed press and a forged one are refused. The ledger holds the ack and the
approval ``via slack``, the refusals, and no Slack member id."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.ledger import LedgerQuery
from alertengine.stores.factory import open_ledger
from tests.scale.cluster import SECRETS, Proc, Receiver, critical, until, wait_http
from tests.support.fakes.slack import FakeSlack
from tests.support.redis_server import free_port
from tests.support.servers import serve

ALICE, BOB = "U0ALICE", "U0BOB"
ACK_TIMEOUT_S = 4.0
CRITICAL = critical("shop")


def config(port: int, db: Path, health: str, receiver: str) -> str:
    return f"""
[orchestrator]
store_url = "sqlite:///{db}"
base_url = "http://127.0.0.1:{port}"
port = {port}
loop_interval_s = 0.2

[[tenants]]
id = "t1"
[tenants.policy]
open_p95_ms = 300
min_sample_size = 5
validate_after_polls = 2
escalate_after_s = 1.5
ack_timeout_s = {ACK_TIMEOUT_S}
token_ttl_s = 600
[[tenants.people]]
id = "alice"
channels = [{{ channel = "slack", address = "{ALICE}" }}]
[[tenants.people]]
id = "bob"
channels = [{{ channel = "slack", address = "#oncall", user_id = "{BOB}" }}]

[[targets]]
tenant = "t1"
service = "shop"
health_url = "{health}/health/alerts"
recovery_webhook = "{receiver}/recover"
webhook_secret_env = "SCALE_RECOVERY_SECRET"
poll_timeout_s = 1.0
"""


def health_app() -> Starlette:
    async def health(_: Request) -> JSONResponse:
        return JSONResponse(CRITICAL)

    return Starlette(routes=[Route("/health/alerts", health)])


async def test_slack_buttons_on_a_real_process(tmp_path: Path) -> None:
    slack, rx = FakeSlack(), Receiver()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = tmp_path / "ae.db"
    with serve(slack.app) as hooks, serve(health_app()) as health, serve(rx.app()) as receiver:
        cfg = tmp_path / "alertengine.toml"
        cfg.write_text(config(port, db, health, receiver))
        env = {
            **SECRETS,
            "SLACK_WEBHOOK_URL": hooks + slack.path,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "SLACK_HOOKS_BASE": hooks,
        }
        argv = [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg)]
        proc = Proc([*argv, "--log-level", "warning"], env=env, log=tmp_path / "serve.log")
        try:
            await wait_http(base + "/healthz", 60, [proc])
            async with httpx.AsyncClient(base_url=base, timeout=10) as c:

                async def press(message: dict[str, object], action: str, user: str) -> str:
                    signed = slack.press(message, action, user, hooks_base=hooks)
                    before = len(slack.replies)
                    r = await c.post(
                        "/slack/interactions", content=signed.body, headers=signed.headers
                    )
                    assert r.status_code == 200, r.text

                    async def replied() -> str:
                        return str(slack.replies[-1]["text"]) if len(slack.replies) > before else ""

                    return await until(replied, 20, "no reply through response_url", every=0.05)

                async def alice_told() -> bool:
                    return bool(slack.posted)

                await until(alice_told, 60, "Alice was never told", every=0.05)
                first = slack.posted[0]
                ids = {b["action_id"] for b in slack.buttons(first)}
                assert ids == {"link-0", "ae_approve", "ae_ack"}, first

                # A forged press (another app's secret): 401, nothing happens.
                forged = FakeSlack(signing_secret="0" * 32).press(
                    first, "ae_approve", ALICE, hooks_base=hooks
                )
                r = await c.post("/slack/interactions", content=forged.body, headers=forged.headers)
                assert r.status_code == 401

                assert (await press(first, "ae_ack", ALICE)).startswith("Acknowledged")
                acked_at = time.monotonic()

                async def bob_asked() -> float | None:
                    return time.monotonic() if len(slack.posted) >= 2 else None

                asked_at = await until(bob_asked, 30, "Bob was never asked", every=0.05)
                # Escalation (1.5 s) waited for the acknowledgement's timeout instead.
                assert asked_at - acked_at >= 0.8 * ACK_TIMEOUT_S, proc.tail()

                approve = slack.press(first, "ae_approve", ALICE, hooks_base=hooks)
                r = await c.post(
                    "/slack/interactions", content=approve.body, headers=approve.headers
                )
                assert r.status_code == 200

                async def approved() -> bool:
                    return any(str(x["text"]).startswith("Approved.") for x in slack.replies)

                await until(approved, 20, "Alice was not told it was approved", every=0.05)
                replay = await c.post(
                    "/slack/interactions", content=approve.body, headers=approve.headers
                )
                assert replay.status_code == 409

            async def executed() -> bool:
                return len(rx.recoveries) == 1

            await until(executed, 30, "the recovery never ran")
            await asyncio.sleep(0.5)
            assert len(rx.recoveries) == 1
        finally:
            proc.stop()

    ledger = open_ledger(f"sqlite:///{db}", key=None)
    try:
        entries = await ledger.read(LedgerQuery(tenant_id="t1", limit=100_000))
        system = await ledger.read(LedgerQuery(tenant_id="_system", limit=100_000))
        assert (await ledger.verify("t1")).ok
    finally:
        await ledger.close()
    acks = [(e.actor, e.decision, e.data.get("via")) for e in entries if e.kind == "ack"]
    assert acks == [("person:alice", "acknowledged", "slack"), ("policy", "expired", None)]
    approvals = [(e.actor, e.data["via"]) for e in entries if e.kind == "approval"]
    assert approvals == [("person:alice", "slack")]
    refused = [e.reason for e in system if e.kind == "refused"]
    assert any("invalid X-Slack-Signature" in r for r in refused)
    assert any("replayed Slack interaction" in r for r in refused)
    dump = "\n".join(e.to_json() for e in [*entries, *system])
    for member in (ALICE, BOB):
        assert member not in dump
    assert "Traceback" not in proc.tail(100_000)
