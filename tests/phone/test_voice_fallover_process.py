"""A call nobody answers, on a real ``alertengine serve`` process: the fake Twilio posts the
signed status callback Twilio documents, and the fall-over happens within one loop interval
(not ``escalate_after_s``), once, and only while the incident still awaits a decision.

One process, one tenant per case (each with its own service and people):

- ``fall``: alice = [voice, telegram], bob = [telegram]. no-answer -> Alice's Telegram at
  once; Twilio's retried callback sends nothing more.
- ``only``: alice = [voice], bob = [telegram]. no-answer -> Bob is asked at once.
- ``done``: alice = [voice, telegram]. answered, then completed -> nothing more is sent.
- ``ack`` / ``appr``: alice = [telegram] first, bob = [voice, telegram] called on escalation;
  Alice acknowledges / approves; then Bob's call reports no-answer -> nothing is sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.ledger import LedgerQuery
from alertengine.stores.factory import open_ledger
from tests.scale.cluster import SECRETS, Proc, Receiver, critical, until, wait_http
from tests.support.fakes.telegram import FakeTelegram
from tests.support.fakes.twilio import FakeTwilio
from tests.support.redis_server import free_port
from tests.support.servers import serve

LOOP_S = 3.0
SLOW_S = 600  # escalate_after_s where only the fall-over may move anyone
NUMBERS = {"fall": "+15550001101", "only": "+15550001102", "done": "+15550001103"}
NUMBERS |= {"ack": "+15550001104", "appr": "+15550001105"}


def chat(tenant: str, who: str) -> str:
    return f"{100 + list(NUMBERS).index(tenant)}{1 if who == 'alice' else 2}"


def person(pid: str, *channels: tuple[str, str]) -> str:
    chans = ", ".join(f'{{ channel = "{c}", address = "{a}" }}' for c, a in channels)
    return f'[[tenants.people]]\nid = "{pid}"\nchannels = [{chans}]\n'


def tenant(tid: str, escalate_after_s: float, people: str) -> str:
    return f"""
[[tenants]]
id = "{tid}"
[tenants.policy]
open_p95_ms = 300
min_sample_size = 5
validate_after_polls = 2
escalate_after_s = {escalate_after_s}
ack_timeout_s = 600
token_ttl_s = 600
{people}"""


def config(port: int, db: Path, health: str, receiver: str) -> str:
    n = NUMBERS
    out = f"""
[orchestrator]
store_url = "sqlite:///{db}"
base_url = "http://127.0.0.1:{port}"
port = {port}
loop_interval_s = {LOOP_S}
"""
    out += tenant(
        "fall",
        SLOW_S,
        person("alice", ("voice", n["fall"]), ("telegram", chat("fall", "alice")))
        + person("bob", ("telegram", chat("fall", "bob"))),
    )
    out += tenant(
        "only",
        SLOW_S,
        person("alice", ("voice", n["only"])) + person("bob", ("telegram", chat("only", "bob"))),
    )
    out += tenant(
        "done",
        SLOW_S,
        person("alice", ("voice", n["done"]), ("telegram", chat("done", "alice")))
        + person("bob", ("telegram", chat("done", "bob"))),
    )
    for tid in ("ack", "appr"):
        out += tenant(
            tid,
            1.0,
            person("alice", ("telegram", chat(tid, "alice")))
            + person("bob", ("voice", n[tid]), ("telegram", chat(tid, "bob"))),
        )
    for tid in NUMBERS:
        out += f"""
[[targets]]
tenant = "{tid}"
service = "svc-{tid}"
health_url = "{health}/health/{tid}/alerts"
recovery_webhook = "{receiver}/recover"
webhook_secret_env = "SCALE_RECOVERY_SECRET"
poll_timeout_s = 1.0
"""
    return out


def health_app() -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse(critical(f"svc-{request.path_params['tid']}"))

    return Starlette(routes=[Route("/health/{tid}/alerts", health)])


def sent_to(tg: FakeTelegram, chat_id: str) -> list[dict[str, Any]]:
    return [m for m in tg.sent if str(m.get("chat_id")) == chat_id]


def token_in(message: dict[str, Any]) -> str:
    found = re.search(r"token=([A-Za-z0-9_\-.]+)", json.dumps(message))
    assert found, message
    return found.group(1)


async def test_unanswered_calls_on_a_real_process(tmp_path: Path) -> None:
    tw, tg, rx = FakeTwilio(), FakeTelegram(), Receiver()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = tmp_path / "ae.db"
    with (
        serve(tw.app) as tw_url,
        serve(tg.app) as tg_url,
        serve(health_app()) as health,
        serve(rx.app()) as receiver,
    ):
        cfg = tmp_path / "alertengine.toml"
        cfg.write_text(config(port, db, health, receiver))
        env = {
            **SECRETS,
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg_url,
            "TWILIO_ACCOUNT_SID": tw.account_sid,
            "TWILIO_AUTH_TOKEN": tw.auth_token,
            "TWILIO_VOICE_FROM": "+15550000001",
            "TWILIO_API_BASE": tw_url,
        }
        argv = [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg)]
        proc = Proc([*argv, "--log-level", "warning"], env=env, log=tmp_path / "serve.log")
        try:
            await wait_http(base + "/healthz", 60, [proc])

            def call_to(number: str) -> dict[str, str] | None:
                return next((c for c in tw.calls if c["To"] == number), None)

            async def called(number: str) -> dict[str, str]:
                async def found() -> dict[str, str] | None:
                    return call_to(number)

                return await until(found, 90, f"{number} was never called\n{proc.tail()}", 0.05)

            async def told(chat_id: str) -> dict[str, Any]:
                async def found() -> dict[str, Any] | None:
                    return (sent_to(tg, chat_id) or [None])[0]

                return await until(found, 60, f"chat {chat_id} never told\n{proc.tail()}", 0.05)

            fall, only, done = (
                await called(NUMBERS["fall"]),
                await called(NUMBERS["only"]),
                await called(NUMBERS["done"]),
            )
            # Every call was accepted: nobody else of those tenants was told.
            for tid in ("fall", "only", "done"):
                assert sent_to(tg, chat(tid, "alice")) == sent_to(tg, chat(tid, "bob")) == []

            # fall: no-answer -> Alice's Telegram within one loop interval.
            posted = time.monotonic()
            r = await tw.report_status(fall, "no-answer")
            assert r.status_code == 200, r.text
            await told(chat("fall", "alice"))
            assert time.monotonic() - posted < LOOP_S, "not within one loop interval"
            _, params, _ = tw.callbacks[-1]
            retried = await tw.report_status(fall, "no-answer", params=params)
            assert retried.status_code == 200

            # only: Alice has no other channel -> Bob, at once.
            posted = time.monotonic()
            await tw.report_status(only, "no-answer")
            await told(chat("only", "bob"))
            assert time.monotonic() - posted < LOOP_S, "not within one loop interval"

            # done: answered, then completed: she was reached; nothing more.
            await tw.report_status(done, "in-progress")
            await tw.report_status(done, "completed", duration=25)

            # ack / appr: Alice is told first; escalation calls Bob; Alice acts; Bob's call
            # then ends unanswered.
            async with httpx.AsyncClient(base_url=base, timeout=10) as c:
                for tid, path in (("ack", "/action/ack"), ("appr", "/action/recover/confirm")):
                    first = await told(chat(tid, "alice"))
                    bob_call = await called(NUMBERS[tid])
                    r = await c.post(path, json={"token": token_in(first)})
                    assert r.status_code == 200, r.text
                    await tw.report_status(bob_call, "no-answer")

            # Nothing more may arrive: give the process a loop interval and more.
            await asyncio.sleep(2 * LOOP_S)
            assert len(sent_to(tg, chat("fall", "alice"))) == 1  # the retry sent nothing
            assert sent_to(tg, chat("fall", "bob")) == []  # Alice was reached on Telegram
            assert len(sent_to(tg, chat("only", "bob"))) == 1
            assert sent_to(tg, chat("done", "alice")) == sent_to(tg, chat("done", "bob")) == []
            for tid in ("ack", "appr"):
                assert sent_to(tg, chat(tid, "bob")) == [], tid
            assert len(tw.calls) == 5  # one call per tenant: nobody was called twice
            assert all(status == 200 for _, _, status in tw.callbacks)
        finally:
            proc.stop()

    ledger = open_ledger(f"sqlite:///{db}", key=None)
    try:
        entries = {t: await ledger.read(LedgerQuery(tenant_id=t, limit=100_000)) for t in NUMBERS}
        for t in NUMBERS:
            assert (await ledger.verify(t)).ok
    finally:
        await ledger.close()

    def story(t: str) -> list[tuple[str, str, str]]:
        return [
            (e.kind, e.decision, e.reason)
            for e in entries[t]
            if e.kind == "call" or e.decision == "fallover" or e.kind == "escalation"
        ]

    assert story("fall") == [
        ("call", "no-answer", "voice call no-answer"),
        (
            "delivery",
            "fallover",
            "no answer from person:alice on voice (no-answer); trying person:alice on telegram",
        ),
    ]
    assert story("only") == [
        ("call", "no-answer", "voice call no-answer"),
        (
            "escalation",
            "level 1",
            "person:alice did not answer the call (no-answer) and has no other channel; "
            "asking person:bob",
        ),
    ]
    assert [d for _, d, _ in story("done")] == ["in-progress", "completed"]
    for t in ("ack", "appr"):
        kinds = [(k, d) for k, d, _ in story(t)]
        assert kinds[-1] == ("call", "no-answer") and ("delivery", "fallover") not in kinds, t
    dump = "\n".join(e.to_json() for es in entries.values() for e in es)
    for number in NUMBERS.values():
        assert number[1:] not in dump
