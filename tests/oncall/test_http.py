"""The on-call HTTP routes and dashboard forms: auth, tenant isolation, 4xx with reasons,
CSRF, and every change ledgered with its actor."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.runtime import Runtime, create_app
from tests.oncall.dashboard_runtime import make_runtime

ADMIN = {"Authorization": "Bearer " + "a" * 40}


@pytest.fixture
async def env() -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    rt = await make_runtime()
    app = create_app(rt, run_loop=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://orch.test"
    ) as client:
        yield rt, client
    await rt.http.aclose()


def key(rt: Runtime, tenant: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {rt.new_keys[tenant]}"}


SILENCE = {
    "matchers": ["service=checkout"],
    "duration_s": 600,
    "created_by": "alice",
    "comment": "migration",
}


async def kinds(rt: Runtime, tenant: str, kind: str) -> list[tuple[str, str]]:
    entries = await rt.ledger.read(LedgerQuery(tenant_id=tenant))
    return [(e.decision, e.actor) for e in entries if e.kind == kind]


async def test_silence_lifecycle_is_ledgered_and_tenant_scoped(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    r = await c.post("/silences", json=SILENCE, headers=key(rt))
    assert r.status_code == 201 and r.json()["state"] == "active"
    sid = r.json()["id"]
    # Another tenant neither sees nor touches it.
    assert (await c.get(f"/silences/{sid}", headers=key(rt, "globex"))).status_code == 404
    assert (await c.delete(f"/silences/{sid}", headers=key(rt, "globex"))).status_code == 404
    assert (await c.get("/silences", headers=key(rt, "globex"))).json()["silences"] == []
    other = await c.get("/silences?tenant=acme", headers=key(rt, "globex"))
    assert other.status_code == 403
    assert ("forbidden", "tenant:globex") in await kinds(rt, "acme", "refused")
    assert (await c.get("/silences")).status_code == 401
    # Expire (DELETE), then purge; the admin acts with ?tenant=.
    r = await c.delete(f"/silences/{sid}", headers=key(rt))
    assert r.status_code == 200 and r.json()["state"] == "expired"
    r = await c.delete(f"/silences/{sid}?tenant=acme&purge=true", headers=ADMIN)
    assert r.json() == {"deleted": sid}
    assert await kinds(rt, "acme", "silence") == [
        ("created", "tenant:acme"),
        ("expired", "tenant:acme"),
        ("deleted", "admin"),
    ]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**SILENCE, "matchers": []}, "non-empty list"),
        ({**SILENCE, "matchers": ["service=~("]}, "regular expression"),
        ({**SILENCE, "matchers": [{"name": "x", "op": "~", "value": "y"}]}, "invalid operator"),
        ({**SILENCE, "ends_at": "2030-01-01T00:00"}, "exactly one of"),
        ({k: v for k, v in SILENCE.items() if k != "comment"}, "comment"),
        ({**SILENCE, "comment": "  "}, "say why"),
        ({**SILENCE, "duration_s": -5}, "positive"),
        ({**SILENCE, "duration_s": True}, "positive"),
        ({**SILENCE, "starts_at": "yesterday"}, "ISO 8601"),
        ({**SILENCE, "colour": "red"}, "unknown field"),
        ([1, 2], "must be an object"),
    ],
)
async def test_bad_silences_are_refused_with_reasons(env, body, words) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    r = await c.post("/silences", json=body, headers=key(rt))
    assert r.status_code == 400 and words in r.json()["error"], r.text
    assert await kinds(rt, "acme", "silence") == []


async def test_schedules_over_the_api_are_validated_and_ledgered(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    sched = {"timezone": "UTC", "layers": [{"people": ["bob"], "every": "daily",
                                            "start": "2026-12-01T00:00"}]}  # fmt: skip
    r = await c.put("/oncall/schedules/nights", json=sched, headers=key(rt))
    assert r.status_code == 200 and r.json()["changed"] is True
    who = (await c.get("/oncall", headers=key(rt))).json()
    assert who["on_call"] == ["bob", "alice", "carol"]  # schedules by name: nights, primary
    assert len(who["shifts"]["nights"]) == 1  # bob the whole 14 days
    bad = await c.put("/oncall/schedules/x", json={**sched, "timezone": "Mars/Base"},
                      headers=key(rt))  # fmt: skip
    assert bad.status_code == 400 and "unknown timezone" in bad.json()["error"]
    named = await c.put("/oncall/schedules/x", json={**sched, "name": "y"}, headers=key(rt))
    assert named.status_code == 400
    assert (await c.get("/oncall?at=never", headers=key(rt))).status_code == 400
    assert (await c.delete("/oncall/schedules/nights", headers=key(rt))).status_code == 200
    assert (await c.delete("/oncall/schedules/nights", headers=key(rt))).status_code == 404
    assert await kinds(rt, "acme", "schedule") == [
        ("set", "config"),
        ("set", "tenant:acme"),
        ("removed", "tenant:acme"),
    ]
    assert (await c.get("/oncall", headers=key(rt, "globex"))).json()["on_call"] == []


async def signed_in(rt: Runtime, c: httpx.AsyncClient) -> None:
    r = await c.post("/dashboard/signin", data={"api_key": rt.new_keys["acme"]})
    assert r.status_code == 303


FORM = {"matchers": "service=checkout", "hours": "1", "created_by": "a", "comment": "b"}


async def test_dashboard_silence_form_needs_the_pages_csrf_token(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    await signed_in(rt, c)
    page = await c.get("/dashboard/silences")
    assert page.status_code == 200
    token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert (await c.post("/dashboard/silences", data=FORM)).status_code == 403
    wrong = await c.post("/dashboard/silences", data={**FORM, "csrf": "0" * 64})
    assert wrong.status_code == 403
    cross = await c.post(
        "/dashboard/silences",
        data={**FORM, "csrf": token},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403
    assert await kinds(rt, "acme", "silence") == []
    ok = await c.post("/dashboard/silences", data={**FORM, "csrf": token})
    assert ok.status_code == 303
    assert await kinds(rt, "acme", "silence") == [("created", "tenant:acme")]
    # The token is bound to this session: another session's token is refused.
    other = httpx.AsyncClient(transport=c._transport, base_url="http://orch.test")
    async with other:
        await rt.clock.advance(1.0)  # type: ignore[attr-defined]  # a later sign-in
        await signed_in(rt, other)
        r = await other.post("/dashboard/silences", data={**FORM, "csrf": token})
        assert r.status_code == 403
    # Signed out: redirected to sign in, nothing created.
    anon = httpx.AsyncClient(transport=c._transport, base_url="http://orch.test")
    async with anon:
        r = await anon.post("/dashboard/silences", data={**FORM, "csrf": token})
        assert r.status_code == 303 and r.headers["location"].endswith("/signin")
    assert len(await kinds(rt, "acme", "silence")) == 1
