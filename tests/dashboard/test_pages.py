"""The dashboard in-process: sessions, tenant isolation (refused + ledgered), the simulator API."""

from __future__ import annotations

import httpx
import pytest

from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.dashboard import (
    SESSION_COOKIE,
    Session,
    SessionCodec,
    dashboard_routes,
    session_key,
)
from alertengine.orchestrator.history import KEEP_S, Observation, SharedHistory, collection
from alertengine.orchestrator.runtime import build_runtime, create_app
from alertengine.orchestrator.settings import Settings
from tests.dashboard.helpers import ADMIN_KEY, authorized_incident


async def sign_in(client: httpx.AsyncClient, key: str, tenant: str = "") -> httpx.Response:
    return await client.post(
        "/dashboard/signin",
        data={"api_key": key, "tenant": tenant},
        headers={"Origin": "http://orch.test"},
    )


async def test_pages_redirect_to_sign_in_without_a_session(env):
    _, client = env
    for path in (
        "/dashboard/",
        "/dashboard/ledger",
        "/dashboard/simulator",
        "/dashboard/incidents/x",
    ):
        r = await client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/signin", path
    r = await client.get("/dashboard/api/simulate?p95_ms=100&error_rate=0")
    assert r.status_code == 401
    r = await client.get("/dashboard/signin")
    assert r.status_code == 200 and 'name="api_key"' in r.text


async def test_sign_in_sets_a_signed_cookie_without_the_key(env):
    rt, client = env
    key = rt.new_keys["acme"]
    r = await sign_in(client, key)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/"
    cookie = r.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert "path=/dashboard" in cookie.lower()
    value = client.cookies[SESSION_COOKIE]
    assert key not in value and key not in cookie
    codec = SessionCodec(session_key(rt.settings.alert_secret))
    s = codec.decode(value, rt.clock.now())
    assert s is not None and s.tenant_id == "acme" and not s.admin
    r = await client.get("/dashboard/")
    assert r.status_code == 200 and "Open incidents" in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    # Sign-out clears the cookie and pages redirect again.
    r = await client.post("/dashboard/signout", headers={"Origin": "http://orch.test"})
    assert r.status_code == 303
    assert (await client.get("/dashboard/")).status_code == 303


async def test_bad_key_forged_or_expired_cookie_and_rotation(env):
    rt, client = env
    r = await sign_in(client, "ae_wrong")
    assert r.status_code == 401 and "not accepted" in r.text
    assert SESSION_COOKIE not in client.cookies
    codec = SessionCodec(session_key(rt.settings.alert_secret))
    forged = SessionCodec(b"k" * 32).encode(Session("acme", False, rt.clock.now() + 60))
    client.cookies.set(SESSION_COOKIE, forged, path="/dashboard")
    assert (await client.get("/dashboard/")).status_code == 303
    expired = codec.encode(Session("acme", False, rt.clock.now() - 1))
    client.cookies.set(SESSION_COOKIE, expired, path="/dashboard")
    assert (await client.get("/dashboard/")).status_code == 303
    client.cookies.clear()
    await sign_in(client, rt.new_keys["acme"])
    assert (await client.get("/dashboard/")).status_code == 200
    await rt.registry.rotate_key("acme")
    await rt.clock.advance(1)
    await rt.registry.rotate_key("acme")  # key_rotated_at moves with the clock
    assert (await client.get("/dashboard/")).status_code == 303


async def test_keys_in_query_strings_and_cross_site_posts_are_refused(env):
    rt, client = env
    key = rt.new_keys["acme"]
    r = await client.get(f"/dashboard/?api_key={key}")
    assert r.status_code == 400 and "query" in r.json()["error"]
    r = await client.post(f"/dashboard/signin?key={key}", data={"api_key": key})
    assert r.status_code == 400
    r = await client.post(
        "/dashboard/signin", data={"api_key": key}, headers={"Origin": "https://evil.test"}
    )
    assert r.status_code == 403
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        r = await client.post("/dashboard/signin", data={"api_key": key}, headers=headers)
        assert r.status_code == 403, headers
    r = await client.post(
        "/dashboard/signin",
        data={"api_key": key},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "null"},
    )
    assert r.status_code == 303


async def test_admin_signs_in_for_a_tenant(env):
    _, client = env
    r = await sign_in(client, ADMIN_KEY)
    assert r.status_code == 401 and "name an existing tenant" in r.text
    r = await sign_in(client, ADMIN_KEY, "globex")
    assert r.status_code == 303
    r = await client.get("/dashboard/")
    assert "globex (admin)" in r.text


async def test_incident_page_shows_timeline_approver_and_chart(env):
    rt, client = env
    iid = await authorized_incident(rt)
    await sign_in(client, rt.new_keys["acme"])
    r = await client.get("/dashboard/")
    assert iid in r.text and "person:web-alice" in r.text
    r = await client.get(f"/dashboard/incidents/{iid}")
    assert r.status_code == 200
    html = r.text
    assert 'data-approver="person:web-alice"' in html
    assert "<svg" in html and 'class="line-alert"' in html and 'class="marker"' in html
    assert html.count('class="dot"') == 4  # three healthy polls and the degraded one
    entries = await rt.ledger.read(LedgerQuery(tenant_id="acme", incident_id=iid))
    for e in entries:
        assert f'data-seq="{e.seq}"' in html
    assert rt.orch.policy_for("acme").version in html


async def test_another_tenants_incident_is_403_and_ledgered(env):
    rt, client = env
    iid = await authorized_incident(rt)
    await sign_in(client, rt.new_keys["globex"])
    r = await client.get(f"/dashboard/incidents/{iid}")
    assert r.status_code == 403
    refused = await rt.ledger.read(LedgerQuery(tenant_id="acme", kinds=frozenset({"refused"})))
    assert len(refused) == 1
    e = refused[0]
    assert e.actor == "tenant:globex" and e.incident_id == iid and e.decision == "forbidden"
    assert e.data["via"] == "dashboard"
    assert (await client.get("/dashboard/incidents/nope")).status_code == 404


async def test_ledger_page_shows_verified_head(env):
    rt, client = env
    await authorized_incident(rt)
    await sign_in(client, rt.new_keys["acme"])
    r = await client.get("/dashboard/ledger")
    head = await rt.ledger.head("acme")
    assert head is not None
    assert 'data-ok="true"' in r.text and head.hash in r.text
    assert f'<dd id="entry-count">{await rt.ledger.count("acme")}</dd>' in r.text
    # Tamper with an entry: the page says which seq is bad.
    import dataclasses

    chain = rt.ledger._raw_chain("acme")
    chain[1] = dataclasses.replace(chain[1], reason="edited")
    r = await client.get("/dashboard/ledger")
    assert 'data-ok="false"' in r.text and '<strong id="first-bad-seq">2</strong>' in r.text


async def test_simulate_api_uses_sdk_scoring_and_policy(env):
    from alertengine.sdk.scoring import score_health

    rt, client = env
    await sign_in(client, rt.new_keys["acme"])
    r = await client.get("/dashboard/api/simulate?p95_ms=150&error_rate=0&sample_size=200")
    assert r.status_code == 200
    good = r.json()
    assert good["score"] == score_health(150, 0.0, sample_size=200).score
    assert good["gates"]["would_open"]["pass"] is False
    assert good["gates"]["counts_as_healthy"]["pass"] is True
    r = await client.get("/dashboard/api/simulate?p95_ms=2500&error_rate=0.2&sample_size=200")
    bad = r.json()
    assert bad["score"] == score_health(2500, 0.2, sample_size=200).score < good["score"]
    assert bad["status"] == "critical"
    assert bad["gates"]["would_open"]["pass"] is True
    assert bad["gates"]["would_validate_at_once"]["pass"] is True
    assert bad["gates"]["counts_as_healthy"]["pass"] is False
    assert bad["policy_version"] == rt.orch.policy_for("acme").version
    # Too few requests: the policy does not trust the window.
    r = await client.get("/dashboard/api/simulate?p95_ms=2500&error_rate=0.2&sample_size=3")
    assert r.json()["gates"]["would_open"]["pass"] is False


@pytest.mark.parametrize(
    "query",
    [
        "p95_ms=abc",
        "p95_ms=-1",
        "p95_ms=nan",
        "p95_ms=inf",
        "error_rate=1.5",
        "error_rate=-0.1",
        "error_rate=x",
        "sample_size=1.5",
        "sample_size=-3",
        "sample_size=99999999999",
    ],
)
async def test_simulate_api_rejects_bad_values_with_a_reason(env, query):
    rt, client = env
    await sign_in(client, rt.new_keys["acme"])
    r = await client.get(f"/dashboard/api/simulate?{query}")
    assert r.status_code == 400
    assert r.json()["error"]


async def test_simulator_page_works_without_script(env):
    rt, client = env
    await sign_in(client, rt.new_keys["acme"])
    r = await client.get("/dashboard/simulator?p95_ms=3000&error_pct=20&sample_size=100")
    assert r.status_code == 200 and 'id="gate-open" data-pass="true"' in r.text
    r = await client.get("/dashboard/simulator?p95_ms=zzz")
    assert r.status_code == 400 and "p95_ms must be a number" in r.text


async def test_everything_is_escaped(env):
    rt, client = env
    await rt.engine.record("acme", None, kind="note", actor="<script>x</script>", reason="<b>")
    await rt.registry.set_approvers("acme", "web", ["alice"])
    iid = await authorized_incident(rt)
    await rt.engine.record(
        "acme", iid, kind="note", actor="orchestrator", reason="<img src=x onerror=alert(1)>"
    )
    await sign_in(client, rt.new_keys["acme"])
    r = await client.get(f"/dashboard/incidents/{iid}")
    assert "<img src=x" not in r.text and "&lt;img src=x" in r.text


async def test_any_replica_and_a_restarted_one_chart_the_whole_history(env):
    """The loop saves what it observed; a replica that observed nothing (another process
    behind the same load balancer, or this one after a restart) charts every point."""
    rt, client = env
    iid = await authorized_incident(rt)
    await rt.orch.tick()  # the loop saves the history of targets it observed
    other = await build_runtime(
        rt.config,
        ledger=rt.ledger,
        store=rt.store,
        settings=Settings.from_env({"ALERT_SECRET": "s" * 40, "ALERTENGINE_ADMIN_KEY": ADMIN_KEY}),
        clock=rt.clock,
    )
    other.extra_routes.extend(dashboard_routes(other))
    assert other.orch.history == {}  # it observed nothing itself
    app = create_app(other, run_loop=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://orch.test"
    ) as c2:
        await sign_in(c2, rt.new_keys["acme"])
        html = (await c2.get(f"/dashboard/incidents/{iid}")).text
        assert html.count('class="dot"') == 4  # the same four points as on the first replica
        assert "4 observation(s)" in html
        r = await c2.get("/dashboard/")
        assert "checkout" in r.text
    await other.drain()
    await other.http.aclose()


async def test_history_documents_of_gone_replicas_are_deleted_and_bad_rows_skipped(env):
    rt, _ = env
    store = rt.store
    name = collection("acme", "checkout")
    now = rt.clock.now()
    await store.put(
        name,
        "gone",
        {"saved_at": now - KEEP_S - 1, "points": [[now - 4000, 50, 1, 0, True, "poll"]]},
    )
    await store.put(
        name, "odd", {"saved_at": now, "points": [["x"], [now, "nan", None, None, 1, "push"], 7]}
    )
    shared = SharedHistory(store, "me")
    await shared.save(
        "acme", "checkout", [Observation(now - 5, 90.0, 10.0, 0.0, True, "poll")], now
    )
    docs = await store.list(name)
    assert set(docs) == {"me", "odd"}  # the replica not heard from for KEEP_S is gone
    points = await shared.load("acme", "checkout")
    assert [(p.at, p.score, p.source) for p in points] == [
        (now - 5, 90.0, "poll"),
        (now, None, "push"),
    ]
