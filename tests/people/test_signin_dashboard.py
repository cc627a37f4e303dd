"""The dashboard's person sign-in and Acknowledge, attacked over HTTP (in-process app): no
session acts as a person without the person's confirmation, the forms refuse cross-site and
token-less posts, and a forged cookie naming a person is no session at all."""

from __future__ import annotations

import re

import httpx

from alertengine.orchestrator.dashboard import SESSION_COOKIE
from tests.people.signin_support import ADMIN_KEY, ALICE, Site, site


async def signin(s: Site, key: str, tenant: str = "") -> None:
    r = await s.client.post("/dashboard/signin", data={"api_key": key, "tenant": tenant})
    assert r.status_code == 303, r.text


def csrf(page: httpx.Response) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert m, page.text
    return m.group(1)


async def test_a_session_acts_as_a_person_only_after_they_confirm() -> None:
    async with site() as s:
        incident = await s.incident()
        await signin(s, ADMIN_KEY, "acme")  # even the admin
        page = await s.client.get("/dashboard/person")
        token = csrf(page)
        # Without a person, the ack form is refused and the attempt ledgered.
        r = await s.client.post(f"/dashboard/incidents/{incident}/ack", data={"csrf": token})
        assert r.status_code == 403
        refused = await s.entries("acme", "refused")
        assert any(e.actor == "admin" and e.decision == "ack refused" for e in refused)
        asked = await s.client.post(
            "/dashboard/person/signin", data={"csrf": token, "person": "alice"}
        )
        assert asked.status_code == 303
        pending = await s.client.get("/dashboard/person")
        assert "person:alice's telegram" in pending.text
        token = csrf(pending)
        # Polling before the person answers: still nobody.
        early = await s.client.post(
            "/dashboard/person/poll", data={"csrf": token}, headers={"Accept": "application/json"}
        )
        assert early.status_code == 202
        again = await s.client.post(f"/dashboard/incidents/{incident}/ack", data={"csrf": token})
        assert again.status_code == 403
        await s.answer(s.link(ALICE))
        done = await s.client.post(
            "/dashboard/person/poll", data={"csrf": token}, headers={"Accept": "application/json"}
        )
        assert done.status_code == 200 and done.json()["person"] == "alice"
        home = await s.client.get("/dashboard/")
        assert 'id="acting-person"' in home.text and "alice (acme)" in home.text
        page = await s.client.get(f"/dashboard/incidents/{incident}")
        assert 'id="ack-button"' in page.text
        ok = await s.client.post(f"/dashboard/incidents/{incident}/ack", data={"csrf": csrf(page)})
        assert ok.status_code == 200 and "Acknowledged" in ok.text
        acks = await s.entries("acme", "ack")
        assert [(e.actor, e.data["via"]) for e in acks] == [("person:alice", "dashboard")]
        signin_steps = [(e.actor, e.decision) for e in await s.entries("acme", "signin")]
        assert signin_steps[0] == ("admin", "requested")
        # What the person changes from here is theirs in the ledger, not the key's.
        silences = await s.client.get("/dashboard/silences")
        made = await s.client.post(
            "/dashboard/silences",
            data={
                "csrf": csrf(silences),
                "matchers": "service=checkout",
                "hours": "1",
                "created_by": "alice",
                "comment": "deploy",
            },
        )
        assert made.status_code == 303, made.text
        created = [e for e in await s.entries("acme", "silence") if e.decision == "created"]
        assert [e.actor for e in created] == ["person:alice"]


async def test_cross_site_and_token_less_forms_are_refused() -> None:
    async with site() as s:
        incident = await s.incident()
        await signin(s, s.keys["acme"])
        token = csrf(await s.client.get("/dashboard/person"))
        cross = await s.client.post(
            "/dashboard/person/signin",
            data={"csrf": token, "person": "alice"},
            headers={"Sec-Fetch-Site": "cross-site"},
        )
        assert cross.status_code == 403
        bare = await s.client.post("/dashboard/person/signin", data={"person": "alice"})
        assert bare.status_code == 403
        ack = await s.client.post(
            f"/dashboard/incidents/{incident}/ack",
            data={"csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert ack.status_code == 403
        assert not [m for m in s.telegram.sent if "Sign-in request" in m["text"]]


async def test_a_cookie_edited_to_name_a_person_is_no_session() -> None:
    async with site() as s:
        await signin(s, s.keys["acme"])
        cookie = s.client.cookies.get(SESSION_COOKIE)
        assert cookie
        payload, mac = cookie.split(".")
        import base64
        import json

        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        body["p"], body["n"] = "alice", "Alice"
        forged = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
        s.client.cookies.set(SESSION_COOKIE, f"{forged}.{mac}", path="/dashboard")
        r = await s.client.get("/dashboard/")
        assert r.status_code == 303 and r.headers["location"].endswith("/dashboard/signin")
