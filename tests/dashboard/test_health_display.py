"""Issue 10: the dashboard shows blind targets and an unwritable ledger, with the cause."""

from __future__ import annotations

import httpx

from alertengine.ledger import LedgerUnavailable
from alertengine.sdk.health_alerts import unavailable_report
from tests.dashboard.helpers import ADMIN_KEY


async def sign_in(client: httpx.AsyncClient, key: str, tenant: str = "") -> None:
    r = await client.post(
        "/dashboard/signin",
        data={"api_key": key, "tenant": tenant},
        headers={"Origin": "http://orch.test"},
    )
    assert r.status_code == 303, r.text


async def test_a_blind_target_is_shown_as_blind_with_no_incident(env):
    rt, client = env
    body = unavailable_report(now=rt.clock.now(), service="checkout", window_s=60, reason="x")
    for _ in range(4):
        assert await rt.orch.push_health("acme", "checkout", body) is None
    await sign_in(client, rt.new_keys["acme"])
    page = (await client.get("/dashboard/")).text
    assert "blind since" in page and "store_unavailable" in page
    assert await rt.engine.incidents("acme") == []


async def test_an_unwritable_ledger_is_an_emergency_banner_with_its_cause(env):
    rt, client = env
    detail = "the SQLite ledger could not commit: database or disk is full (/srv/secret/ae.db)"
    await rt.orch.ledger_failed(LedgerUnavailable(detail, cause="disk full"))
    status, body = (await client.get("/healthz")).status_code, (await client.get("/healthz")).json()
    assert status == 503 and body["causes"] == {"ledger": "disk full"}
    assert "/srv/secret" not in str(body)

    await sign_in(client, rt.new_keys["acme"])
    page = (await client.get("/dashboard/")).text
    assert "Orchestrator mode: EMERGENCY" in page and "disk full" in page
    assert "/srv/secret" not in page  # a tenant sees the classified cause only
    ledger_page = (await client.get("/dashboard/ledger")).text
    assert 'id="writable"' in ledger_page and "no: disk full" in ledger_page

    await client.post("/dashboard/signout", headers={"Origin": "http://orch.test"})
    await sign_in(client, ADMIN_KEY, "acme")
    page = (await client.get("/dashboard/")).text
    assert "database or disk is full" in page  # the operator gets the store's own words


async def test_a_target_another_replica_saw_blind_is_shown_blind_here(env):
    rt, client = env
    body = unavailable_report(now=rt.clock.now(), service="checkout", window_s=60, reason="x")
    await rt.orch.push_health("acme", "checkout", body)
    rt.orch.blind.clear()  # this replica did not see it; the shared history did
    await sign_in(client, rt.new_keys["acme"])
    page = (await client.get("/dashboard/")).text
    assert "blind: it answers but cannot measure itself" in page
