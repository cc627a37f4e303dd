"""The phone flow on a real ``alertengine serve`` process, with the fake Twilio on loopback
computing real signatures: Alice gets the WhatsApp template, acknowledges from its quick reply;
escalation waits ``ack_timeout_s``, then calls Bob; Bob presses 1 (acknowledges, Alice is
told); Alice approves in chat; the recovery runs once; a replayed press is refused. The ledger
holds ``ack`` and ``call`` entries and no phone number."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.ledger import LedgerQuery
from alertengine.stores.factory import open_ledger
from tests.scale.cluster import SECRETS, Proc, Receiver, critical, until, wait_http
from tests.support.fakes.twilio import FakeTwilio
from tests.support.redis_server import free_port
from tests.support.servers import serve

ALICE, BOB, WA_FROM = "+15550001111", "+15550002222", "+15550000000"
CONTENT_SID = "HX" + "cd" * 16
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
whatsapp_content_sid = "{CONTENT_SID}"
[tenants.policy]
open_p95_ms = 300
min_sample_size = 5
validate_after_polls = 2
escalate_after_s = 1.5
ack_timeout_s = {ACK_TIMEOUT_S}
token_ttl_s = 600
[[tenants.people]]
id = "alice"
channels = [{{ channel = "whatsapp", address = "{ALICE}" }}]
[[tenants.people]]
id = "bob"
channels = [
  {{ channel = "voice", address = "{BOB}" }},
  {{ channel = "whatsapp", address = "{BOB}" }},
]

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


async def test_phone_flow_on_a_real_process(tmp_path: Path) -> None:
    tw, rx = FakeTwilio(), Receiver()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = tmp_path / "ae.db"
    with serve(tw.app) as tw_url, serve(health_app()) as health, serve(rx.app()) as receiver:
        cfg = tmp_path / "alertengine.toml"
        cfg.write_text(config(port, db, health, receiver))
        env = {
            **SECRETS,
            "TWILIO_ACCOUNT_SID": tw.account_sid,
            "TWILIO_AUTH_TOKEN": tw.auth_token,
            "TWILIO_WHATSAPP_FROM": f"whatsapp:{WA_FROM}",
            "TWILIO_VOICE_FROM": "+15550000001",
            "TWILIO_API_BASE": tw_url,
        }
        argv = [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg)]
        proc = Proc([*argv, "--log-level", "warning"], env=env, log=tmp_path / "serve.log")
        try:
            await wait_http(base + "/healthz", 60, [proc])
            async with httpx.AsyncClient(base_url=base, timeout=10) as c:

                async def post(path: str, params: dict[str, str]) -> httpx.Response:
                    return await c.post(
                        path,
                        content=urlencode(params),
                        headers={
                            "Content-Type": "application/x-www-form-urlencoded",
                            "X-Twilio-Signature": tw.sign(base + path, params),
                        },
                    )

                async def alice_told() -> bool:
                    return bool(tw.sent)

                await until(alice_told, 60, "Alice was never told", every=0.05)
                (first,) = tw.sent
                assert first["ContentSid"] == CONTENT_SID and "Body" not in first
                ref = json.loads(first["ContentVariables"])["3"]

                ack = await post(
                    "/twilio/whatsapp", tw.whatsapp_inbound(ALICE, WA_FROM, payload=f"ack:{ref}")
                )
                assert ack.status_code == 200 and "Acknowledged" in ack.text, ack.text
                acked_at = time.monotonic()

                async def bob_called() -> float | None:
                    return time.monotonic() if tw.calls else None

                called_at = await until(bob_called, 30, "Bob was never called", every=0.05)
                # Escalation (1.5 s) waited for the acknowledgement's timeout instead.
                assert called_at - acked_at >= 0.8 * ACK_TIMEOUT_S, proc.tail()
                (call,) = tw.calls
                assert call["To"] == BOB and "Press 1" in call["Twiml"]
                gather = re.search(r'action="([^"]+)"', call["Twiml"]).group(1)  # type: ignore[union-attr]
                pressed = await post(gather.removeprefix(base), tw.call_params(call, Digits="1"))
                assert "<Say>Acknowledged" in pressed.text, pressed.text

                async def alice_hears() -> bool:
                    return any("person:bob acknowledged" in m.get("Body", "") for m in tw.sent)

                await until(alice_hears, 10, "Alice was not told who took it", every=0.05)
                status = call["StatusCallback"].removeprefix(base)
                done = await post(status, tw.call_params(call, CallStatus="completed"))
                assert done.status_code == 200

                press = tw.whatsapp_inbound(ALICE, WA_FROM, payload=f"approve:{ref}")
                ok = await post("/twilio/whatsapp", press)
                assert "Approved." in ok.text, ok.text
                replay = await post("/twilio/whatsapp", press)
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
    dump = "\n".join(e.to_json() for e in [*entries, *system])
    for number in (ALICE, BOB):
        assert number[1:] not in dump
    acks = [(e.actor, e.decision, e.data.get("via")) for e in entries if e.kind == "ack"]
    assert acks == [
        ("person:alice", "acknowledged", "whatsapp"),
        ("policy", "expired", None),
        ("person:bob", "acknowledged", "voice"),
    ]
    assert [e.decision for e in entries if e.kind == "call"] == ["acknowledged", "completed"]
    approvals = [(e.actor, e.data["via"]) for e in entries if e.kind == "approval"]
    assert approvals == [("person:alice", "whatsapp")]
    assert any("replayed" in e.reason for e in system if e.kind == "refused")
