"""A notification is "sent" only when a channel accepted it; reaching nobody is loud at once.

A real runtime (real notifier, authorizer, engine, dashboard) on a virtual clock; channels are
the real clients against local fakes. No time passes between the incident reaching VALIDATED
and the checks: the escalation delay is never waited for.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from alertengine.clock import VirtualClock
from alertengine.ledger import LedgerQuery
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore
from tests.dashboard.helpers import DEGRADED, health
from tests.support.fakes.telegram import FakeTelegram

NOTIFY_SECRET = "n" * 40
ADMIN = "a" * 40


async def runtime(
    approvers: list[dict[str, str]], *, ledger: Any = None, store: Any = None, **env: str
) -> Runtime:
    clock = VirtualClock(start=time.time())  # receivers check signatures against real time
    settings = Settings.from_env(
        {
            "ALERT_SECRET": "s" * 40,
            "ALERTENGINE_ADMIN_KEY": ADMIN,
            "NOTIFY_WEBHOOK_SECRET": NOTIFY_SECRET,
            **env,
        }
    )
    config = parse_config(
        {
            "orchestrator": {"base_url": "http://approve.test"},
            "tenants": [{"id": "acme", "approvers": approvers}],
            "targets": [{"tenant": "acme", "service": "checkout"}],
        }
    )
    rt = await build_runtime(
        config,
        ledger=ledger or MemoryLedgerStore(b"x" * 32),
        store=store or MemoryStateStore(clock),
        settings=settings,
        clock=clock,
    )
    await sync_tenants(rt)
    return rt


async def validate(rt: Runtime) -> str:
    assert isinstance(rt.clock, VirtualClock)
    for score in (96, 95, 97):
        await rt.orch.push_health("acme", "checkout", health(score, 120.0, 0.0))
        await rt.clock.advance(5)
    state = await rt.orch.push_health("acme", "checkout", DEGRADED)
    assert state is not None and state.stage.value == "VALIDATED", state
    return state.incident_id


async def entries(rt: Runtime, incident_id: str) -> list[Any]:
    return [
        e
        for e in await rt.ledger.read(LedgerQuery(tenant_id="acme"))
        if e.incident_id == incident_id
    ]


def sent_claims(es: list[Any]) -> list[Any]:
    """Entries claiming a message went out."""
    return [e for e in es if "sent to" in e.reason and "NOT sent" not in e.reason]


async def test_no_channel_credentials_is_loud_at_once_and_never_claims_sent(caplog) -> None:
    rt = await runtime([{"channel": "telegram", "address": "4242"}])
    try:
        with caplog.at_level(logging.ERROR, logger="alertengine.wiring"):
            incident = await validate(rt)
        es = await entries(rt, incident)
        assert sent_claims(es) == []
        # No link is minted for a message that cannot be sent.
        assert [e for e in es if e.kind == "token"] == []
        (skip,) = [e for e in es if e.kind == "delivery" and e.decision == "skipped"]
        assert "NOT sent to person:telegram-4242" in skip.reason
        assert "TELEGRAM_BOT_TOKEN not set" in skip.reason
        (loud,) = [e for e in es if e.decision == "unreachable"]
        assert loud.timestamp == rt.clock.now()  # at once, not after escalate_after_s
        assert "no approver could be reached" in loud.reason and "telegram" in loud.reason
        assert any(
            r.levelno == logging.ERROR and incident in r.getMessage() for r in caplog.records
        )
        status = rt.orch.status()["notifications"]
        assert [u["incident_id"] for u in status["incidents_without_reachable_approver"]] == [
            incident
        ]
        assert status["unreachable_approvers"][0]["approver"] == "person:telegram-4242"
        # The dashboard says so on every page.
        app = create_app(rt, run_loop=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orch.test") as c:
            r = await c.post(
                "/dashboard/signin",
                data={"api_key": ADMIN, "tenant": "acme"},
                headers={"Origin": "http://orch.test"},
            )
            assert r.status_code == 303, r.text
            page = (await c.get("/dashboard/")).text
        assert 'id="unreachable-approvers"' in page and "person:telegram-4242" in page
        assert 'id="unreached-incidents"' in page and incident in page
    finally:
        await rt.http.aclose()


async def test_a_refused_delivery_is_ledgered_as_not_sent_with_the_reason(receiver) -> None:
    fake, url = receiver
    fake.secret = b"another-secret-the-receiver-holds-0123456789"  # it answers 401
    rt = await runtime([{"channel": "webhook", "address": f"{url}/hook", "identity": "alice"}])
    try:
        incident = await validate(rt)
        es = await entries(rt, incident)
        assert sent_claims(es) == []
        (failed,) = [e for e in es if e.kind == "delivery" and e.decision == "failed"]
        assert "NOT sent to person:alice via webhook" in failed.reason
        assert "401" in failed.reason or "401" in str(failed.data)
        assert [e.decision for e in es if e.decision == "unreachable"] == ["unreachable"]
        (token,) = [e for e in es if e.kind == "token"]
        assert "sent" not in token.reason  # issuing a link is not sending it
    finally:
        await rt.http.aclose()


async def test_an_accepted_delivery_is_ledgered_as_sent_and_nothing_is_loud(receiver) -> None:
    fake, url = receiver
    fake.secret = NOTIFY_SECRET.encode()
    rt = await runtime([{"channel": "webhook", "address": f"{url}/hook", "identity": "alice"}])
    try:
        incident = await validate(rt)
        es = await entries(rt, incident)
        (sent,) = sent_claims(es)
        assert sent.decision == "delivered"
        assert "approval link sent to person:alice via webhook" in sent.reason
        assert len(fake.received) == 1
        assert [e for e in es if e.decision == "unreachable"] == []
        status = rt.orch.status()["notifications"]
        assert status == {"unreachable_approvers": [], "incidents_without_reachable_approver": []}
    finally:
        await rt.http.aclose()


async def test_fall_over_to_a_reachable_channel_clears_the_alarm(telegram) -> None:
    fake, url = telegram
    rt = await runtime(
        [
            {"channel": "slack", "address": "#oncall", "identity": "bob"},
            {"channel": "telegram", "address": "4242"},
        ],
        TELEGRAM_BOT_TOKEN=FakeTelegram.token,
        TELEGRAM_API_BASE=url,
    )
    try:
        incident = await validate(rt)
        es = await entries(rt, incident)
        assert [e.data["channel"] for e in sent_claims(es)] == ["telegram"]
        assert [e for e in es if e.decision == "unreachable"] == []
        assert rt.orch.status()["notifications"]["incidents_without_reachable_approver"] == []
        gaps = rt.orch.status()["notifications"]["unreachable_approvers"]
        assert [g["approver"] for g in gaps] == ["person:bob"]
    finally:
        await rt.http.aclose()


async def test_a_restarted_orchestrator_still_shows_the_incident_nobody_was_told_about() -> None:
    rt = await runtime([{"channel": "telegram", "address": "4242"}])
    incident = await validate(rt)
    await rt.http.aclose()
    again = await runtime(
        [{"channel": "telegram", "address": "4242"}], ledger=rt.ledger, store=rt.store
    )
    try:
        assert again.orch.status()["notifications"]["incidents_without_reachable_approver"] == []
        await again.notifier.escalate_due()  # the first tick's sweep, before any retry is due
        (shown,) = again.orch.status()["notifications"]["incidents_without_reachable_approver"]
        assert shown["incident_id"] == incident and "no approver" in shown["reason"]
    finally:
        await again.http.aclose()
