"""The orchestrator HTTP API in-process: tenant isolation (refused + ledgered), intake, reads."""

from __future__ import annotations

import httpx
import pytest

from alertengine.clock import VirtualClock
from alertengine.ledger import LedgerQuery
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore

CONFIG = {
    "orchestrator": {"base_url": "http://approve.test"},
    "tenants": [
        {"id": "acme", "approvers": [{"channel": "web", "address": "alice"}]},
        {"id": "globex", "approvers": [{"channel": "web", "address": "bob"}]},
    ],
    "targets": [
        {"tenant": "acme", "service": "checkout"},
        {"tenant": "globex", "service": "billing"},
    ],
}

DEGRADED = {
    "status": "critical",
    "health_score": {"score": 30, "status": "critical", "trend": "degrading"},
    "metrics": {"overall_p95_ms": 2900.0, "error_rate": 0.22, "sample_size": 300},
    "alerts": [{"type": "latency_spike", "severity": "critical"}],
}


@pytest.fixture
async def env():
    clock = VirtualClock()
    ledger = MemoryLedgerStore(b"x" * 32)
    store = MemoryStateStore(clock)
    settings = Settings.from_env({"ALERT_SECRET": "s" * 40, "ALERTENGINE_ADMIN_KEY": "a" * 40})
    rt = await build_runtime(
        parse_config(CONFIG), ledger=ledger, store=store, settings=settings, clock=clock
    )
    await sync_tenants(rt)
    app = create_app(rt, run_loop=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://orch.test"
    ) as client:
        yield rt, client
    await rt.http.aclose()


def auth(rt, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {rt.new_keys[tenant]}"}


async def test_push_opens_incident_and_reads_are_tenant_scoped(env):
    rt, client = env
    r = await client.post(
        "/intake/health?service=checkout", json=DEGRADED, headers=auth(rt, "acme")
    )
    assert r.status_code == 202, r.text
    inc = r.json()["incident"]
    assert inc["stage"] == "VALIDATED" and inc["service"] == "checkout"

    r = await client.get("/incidents", headers=auth(rt, "acme"))
    assert [i["incident_id"] for i in r.json()["incidents"]] == [inc["incident_id"]]
    r = await client.get("/incidents", headers=auth(rt, "globex"))
    assert r.json()["incidents"] == []

    r = await client.get(f"/incidents/{inc['incident_id']}", headers=auth(rt, "acme"))
    assert r.status_code == 200
    assert [e["stage"] for e in r.json()["timeline"] if e["kind"] == "transition"] == [
        "DETECTED",
        "PROPOSED",
        "VALIDATED",
    ]


async def test_cross_tenant_read_is_refused_and_ledgered(env):
    rt, client = env
    r = await client.post(
        "/intake/health?service=checkout", json=DEGRADED, headers=auth(rt, "acme")
    )
    iid = r.json()["incident"]["incident_id"]
    r = await client.get(f"/incidents/{iid}", headers=auth(rt, "globex"))
    assert r.status_code == 403 and "another tenant" in r.json()["error"]
    r = await client.get("/ledger?tenant=acme", headers=auth(rt, "globex"))
    assert r.status_code == 403
    refused = await rt.ledger.read(LedgerQuery(tenant_id="acme", kinds=frozenset({"refused"})))
    assert len(refused) == 2
    assert all(e.actor == "tenant:globex" for e in refused)
    assert refused[0].incident_id == iid


async def test_status_is_for_the_admin_only_and_a_tenant_try_is_ledgered(env):
    rt, client = env
    r = await client.get("/__alertengine/status", headers=auth(rt, "acme"))
    assert r.status_code == 403 and "admin" in r.json()["error"]
    assert (await client.get("/__alertengine/status")).status_code == 401
    admin = await client.get("/__alertengine/status", headers={"X-API-Key": "a" * 40})
    assert admin.status_code == 200 and "mode" in admin.json()
    refused = await rt.ledger.read(LedgerQuery(tenant_id="_system", kinds=frozenset({"refused"})))
    # The tenant's try under its name; the keyless one as nobody's (tests/refusals).
    assert [(e.actor, e.data["path"]) for e in refused] == [
        ("tenant:acme", "/__alertengine/status"),
        ("anonymous", "/__alertengine/status"),
    ]


async def test_missing_or_bad_key_is_401(env):
    _, client = env
    assert (await client.get("/incidents")).status_code == 401
    r = await client.get("/incidents", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"]


@pytest.mark.parametrize(
    ("path", "kwargs", "status"),
    [
        ("/ledger?limit=0", {}, 400),
        ("/ledger?limit=abc", {}, 400),
        ("/incidents?open=maybe", {}, 400),
        (
            "/intake/health?service=checkout",
            {"content": b"{nope", "headers": {"Content-Type": "application/json"}},
            400,
        ),
        (
            "/intake/health?service=checkout",
            {"content": b"x", "headers": {"Content-Type": "text/plain"}},
            415,
        ),
        ("/intake/health?service=nosuch", {"json": DEGRADED}, 404),
        ("/intake/health", {"json": [1, 2]}, 400),
        ("/intake/alertmanager", {"json": {"alerts": "x"}}, 400),
    ],
)
async def test_bad_input_gets_a_reasoned_4xx(env, path, kwargs, status):
    rt, client = env
    headers = {**auth(rt, "acme"), **kwargs.pop("headers", {})}
    method = "GET" if not kwargs else "POST"
    r = await client.request(method, path, headers=headers, **kwargs)
    assert r.status_code == status
    assert r.json()["error"]


async def test_alertmanager_firing_then_resolved(env):
    rt, client = env
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "HighLatency", "service": "checkout"}}
        ],
    }
    r = await client.post("/intake/alertmanager", json=payload, headers=auth(rt, "acme"))
    assert r.status_code == 202 and r.json()["accepted"][0]["firing"] is True
    states = await rt.engine.incidents("acme", open_only=True)
    assert len(states) == 1 and "Alertmanager" in states[0].history[0].reason
    payload["alerts"][0]["status"] = "resolved"
    for _ in range(3):
        await client.post("/intake/alertmanager", json=payload, headers=auth(rt, "acme"))
    assert await rt.engine.incidents("acme", open_only=True) == []


async def test_ledger_pages_and_verifies(env):
    rt, client = env
    await client.post("/intake/health?service=checkout", json=DEGRADED, headers=auth(rt, "acme"))
    r = await client.get("/ledger?limit=2", headers=auth(rt, "acme"))
    body = r.json()
    assert len(body["entries"]) == 2 and body["next_after_seq"] == 2
    r = await client.get("/ledger/verify", headers=auth(rt, "acme"))
    assert r.status_code == 200 and r.json()["ok"] is True


async def test_health_pusher_feeds_intake_and_counts_failures(env):
    from alertengine.agent import HealthPusher

    rt, client = env

    async def health():
        return DEGRADED

    pusher = HealthPusher(
        health,
        orchestrator_url="http://orch.test",
        api_key=rt.new_keys["acme"],
        service="checkout",
        client=client,
        interval_s=0.01,
    )
    assert await pusher.push_once()
    assert len(await rt.engine.incidents("acme", open_only=True)) == 1
    bad = HealthPusher(
        health,
        orchestrator_url="http://orch.test",
        api_key="wrong",
        service="checkout",
        client=client,
    )
    assert not await bad.push_once()
    assert bad.stats.failed == 1 and bad.stats.last_status == 401


async def test_trust_theory_choice_is_ledgered_and_authorizes_nothing(env):
    from alertengine.orchestrator.wiring import record_theory_choice

    rt, client = env
    r = await client.post(
        "/intake/health?service=checkout", json=DEGRADED, headers=auth(rt, "acme")
    )
    iid = r.json()["incident"]["incident_id"]
    await rt.registry.set_approvers("acme", "telegram", ["42"])
    text = await record_theory_choice(
        rt.engine, rt.registry, ["acme", "globex"], "telegram", "42", f"trust:A:{iid}"
    )
    assert "Theory A" in text
    text = await record_theory_choice(
        rt.engine, rt.registry, ["acme", "globex"], "telegram", "666", f"trust:B:{iid}"
    )
    assert text.startswith("Not accepted")
    entries = await rt.ledger.read(LedgerQuery(tenant_id="acme", incident_id=iid))
    assert [(e.kind, e.actor) for e in entries[-2:]] == [
        ("choice", "engineer:telegram:42"),
        ("refused", "engineer:telegram:666"),
    ]
    state = await rt.engine.get("acme", iid)
    assert state is not None and state.stage.value == "VALIDATED"
