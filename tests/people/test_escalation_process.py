"""Escalation goes person by person, tested on a real ``alertengine serve`` with the fake
Telegram, Twilio and Slack servers: Alice has three channels (Telegram fails, so it falls
over to WhatsApp; Slack is her third), Bob one. Bob is asked ≈ ``escalate_after_s`` after
Alice — not once per channel of hers (the defect: 3× as long with three channels). Then the
two-person rule: Alice approves on the web, her Telegram tap on Bob's button is refused
(409, ledgered), Bob approves, the recovery runs once. No phone number enters the ledger.
"""

from __future__ import annotations

import json
import re
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

from alertengine.ledger import LedgerQuery
from alertengine.stores.factory import open_ledger
from tests.scale.cluster import SECRETS, Proc, Receiver, critical, until, wait_http
from tests.support.fakes.slack import FakeSlack
from tests.support.fakes.telegram import FakeTelegram, callback_update, push_update
from tests.support.fakes.twilio import FakeTwilio
from tests.support.redis_server import free_port
from tests.support.servers import serve

ESCALATE_S = 5.0
ALICE_PHONE = "+15550001111"
CRITICAL = critical("shop")

PEOPLE = f"""
[[tenants.people]]
id = "alice"
name = "Alice"
channels = [
  {{ channel = "telegram", address = "9001" }},
  {{ channel = "whatsapp", address = "{ALICE_PHONE}" }},
  {{ channel = "slack", address = "U0ALICE" }},
]
[[tenants.people]]
id = "bob"
channels = [{{ channel = "telegram", address = "9002" }}]
"""
LEGACY = f"""approvers = [
  {{ channel = "telegram", address = "9001", identity = "alice" }},
  {{ channel = "whatsapp", address = "{ALICE_PHONE}", identity = "alice" }},
  {{ channel = "slack", address = "U0ALICE", identity = "alice" }},
  {{ channel = "telegram", address = "9002", identity = "bob" }},
]
"""


def config(port: int, db: Path, health: str, receiver: str, variant: str) -> str:
    return f"""
[orchestrator]
store_url = "sqlite:///{db}"
base_url = "http://127.0.0.1:{port}"
port = {port}
loop_interval_s = 0.2

[[tenants]]
id = "t1"
{LEGACY if variant == "legacy" else ""}
[tenants.policy]
open_p95_ms = 300
min_sample_size = 5
validate_after_polls = 2
escalate_after_s = {ESCALATE_S}
token_ttl_s = 600
approvals_required = 2
{PEOPLE if variant == "people" else ""}
[[targets]]
tenant = "t1"
service = "shop"
health_url = "{health}/health/alerts"
recovery_webhook = "{receiver}/recover"
webhook_secret_env = "SCALE_RECOVERY_SECRET"
poll_timeout_s = 1.0
"""


def token_in(text: str) -> str:
    m = re.search(r"token=([A-Za-z0-9_\-.]+)", text)
    assert m, text
    return m.group(1)


def health_app() -> Starlette:
    async def health(_: Request) -> JSONResponse:
        return JSONResponse(CRITICAL)

    return Starlette(routes=[Route("/health/alerts", health)])


@pytest.mark.parametrize("variant", ["people", "legacy"])
async def test_escalation_asks_the_next_person_after_one_delay(
    variant: str, tmp_path: Path
) -> None:
    tg, tw, sl, rx = FakeTelegram(chats={"9002"}), FakeTwilio(), FakeSlack(), Receiver()
    port = free_port()
    db = tmp_path / "ae.db"
    with (
        serve(tg.app) as tg_url,
        serve(tw.app) as tw_url,
        serve(sl.app) as sl_url,
        serve(health_app()) as health,
        serve(rx.app()) as receiver,
    ):
        cfg = tmp_path / "alertengine.toml"
        cfg.write_text(config(port, db, health, receiver, variant))
        env = {
            **SECRETS,
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg_url,
            "TELEGRAM_WEBHOOK_SECRET": "tg-secret",
            "TWILIO_ACCOUNT_SID": tw.account_sid,
            "TWILIO_AUTH_TOKEN": tw.auth_token,
            "TWILIO_WHATSAPP_FROM": "whatsapp:+15550009999",
            "TWILIO_API_BASE": tw_url,
            "SLACK_WEBHOOK_URL": sl_url + sl.path,
        }
        proc = Proc(
            [
                sys.executable,
                "-m",
                "alertengine",
                "serve",
                "--config",
                str(cfg),
                "--log-level",
                "warning",
            ],
            env=env,
            log=tmp_path / "serve.log",
        )
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_http(base + "/healthz", 60, [proc])

            async def alice_told() -> float | None:
                return time.monotonic() if tw.sent else None

            alice_at = await until(alice_told, 60, "Alice was never told", every=0.05)

            async def bob_told() -> float | None:
                bob = [m for m in tg.sent if str(m["chat_id"]) == "9002"]
                return time.monotonic() if bob else None

            bob_at = await until(bob_told, 6 * ESCALATE_S + 30, "Bob was never asked", every=0.05)
            waited = bob_at - alice_at
            # One escalation delay (plus a loop tick or two), not one per channel of Alice's.
            assert 0.8 * ESCALATE_S <= waited <= 1.8 * ESCALATE_S, (waited, proc.tail())
            assert len(tw.sent) == 1 and sl.posted == []  # Alice: one person, told once
            assert [str(m["chat_id"]) for m in tg.sent] == ["9002"]  # 9001 failed, fell over

            alice_token = token_in(tw.sent[0]["Body"])
            bob_msg = json.dumps(tg.sent[-1])
            bob_token = token_in(bob_msg)
            jti = re.search(r"ae:([A-Za-z0-9_\-]+)", bob_msg)
            assert jti, bob_msg
            async with httpx.AsyncClient(base_url=base, timeout=10) as c:
                accept = {"Accept": "application/json"}
                r = await c.post(
                    "/action/recover/confirm", json={"token": alice_token}, headers=accept
                )
                assert r.status_code == 202, r.text
                # Alice, from her own Telegram account, taps the button Bob was sent.
                tap = await push_update(
                    c,
                    "/telegram/webhook",
                    callback_update(9001, f"ae:{jti.group(1)}", 7),
                    "tg-secret",
                )
                assert tap.status_code == 200
                assert tg.answered[-1]["text"] == "You have already approved this incident."
                r = await c.post(
                    "/action/recover/confirm", json={"token": bob_token}, headers=accept
                )
                assert r.status_code == 200, r.text

            async def executed() -> bool:
                return len(rx.recoveries) == 1

            await until(executed, 30, "the recovery never ran")
        finally:
            proc.stop()

    ledger = open_ledger(f"sqlite:///{db}", key=None)
    try:
        entries = await ledger.read(LedgerQuery(tenant_id="t1", limit=100_000))
        assert (await ledger.verify("t1")).ok
    finally:
        await ledger.close()
    dump = "\n".join(e.to_json() for e in entries)
    assert ALICE_PHONE not in dump and ALICE_PHONE[1:] not in dump
    escalations = [e for e in entries if e.kind == "escalation"]
    assert [(e.data["person"], e.data["previous"]) for e in escalations] == [
        ("person:bob", "person:alice")
    ]
    assert "person:alice" in escalations[0].reason and "person:bob" in escalations[0].reason
    refused: list[Any] = [e for e in entries if e.kind == "refused"]
    assert [(e.actor, e.data["problem"], e.data["via"]) for e in refused] == [
        ("person:alice", "already_approved", "telegram")
    ]
    approvals = [(e.actor, e.data["via"]) for e in entries if e.kind == "approval"]
    assert approvals == [("person:alice", "web"), ("person:bob", "web")]
    sent = [e for e in entries if e.kind == "token" and e.decision == "issued"]
    assert [(e.data["recipient"], e.data.get("via")) for e in sent] == [
        ("person:alice", "telegram"),
        ("person:alice", "whatsapp"),
        ("person:bob", "telegram"),
    ]
