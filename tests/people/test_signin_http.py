"""Person sign-in over HTTP (in-process app, fake Telegram on loopback): a tenant key asks,
only the person's own link confirms, the token acknowledges as that person; every attack on
the promise (a key acting as a person, another tenant's token, reuse, expiry, prefetch,
forgery, revocation, spam) is refused with a 4xx and ledgered."""

from __future__ import annotations

import json

from alertengine.people.signin import TOKEN_PREFIX, WINDOW_S
from tests.people.signin_support import ADMIN_KEY, ALICE, BOB, CAROL, site


def _dump(entries: list[object]) -> str:
    return "\n".join(e.to_json() for e in entries)  # type: ignore[attr-defined]


async def test_signed_in_person_acknowledges_and_the_ledger_names_them() -> None:
    async with site() as s:
        incident = await s.incident()
        r = await s.request("alice")
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["sent_to"] == ["telegram"] and body["person"] == "alice"
        assert len(body["user_code"]) == 9 and body["user_code"][4] == "-"
        link = s.link(ALICE)
        # The link's page shows the code the requester sees, and changes nothing.
        page = await s.client.get(link)
        assert page.status_code == 200 and body["user_code"] in page.text
        assert "tenant:acme" in page.text
        pending = await s.poll(body["device_code"])
        assert pending.status_code == 202 and pending.json() == {"status": "pending"}
        done = await s.answer(link)
        assert done.status_code == 200 and "Confirmed" in done.text
        got = await s.poll(body["device_code"])
        assert got.status_code == 200, got.text
        token = got.json()["token"]
        assert token.startswith(TOKEN_PREFIX) and got.json()["person"] == "alice"
        who = await s.client.get("/people/whoami", headers={"Authorization": f"Bearer {token}"})
        assert who.json()["actor"] == "person:alice" and who.json()["tenant_id"] == "acme"

        acked = await s.ack(incident, token)
        assert acked.status_code == 200 and acked.json()["ok"], acked.text
        state = await s.rt.engine.get("acme", incident)
        assert state is not None and state.acked_by == "person:alice"
        acks = await s.entries("acme", "ack")
        assert [(e.actor, e.data["via"]) for e in acks] == [("person:alice", "cli")]

        steps = [(e.actor, e.decision) for e in await s.entries("acme", "signin")]
        assert steps == [
            ("tenant:acme", "requested"),
            ("orchestrator", "link delivered"),
            ("person:alice", "confirmed"),
            ("orchestrator", "token issued"),
        ]
        # No secret of the flow is in the ledger: not the token, codes, nor the chat id.
        dump = _dump(await s.entries("acme")) + _dump(await s.entries("_system"))
        for secret in (token, body["device_code"], s.code_of(link), body["user_code"]):
            assert secret not in dump
        assert body["user_code"].replace("-", "") not in dump


async def test_a_tenant_or_admin_key_cannot_acknowledge_as_anyone() -> None:
    async with site() as s:
        incident = await s.incident()
        for key, owner in ((s.keys["acme"], "tenant:acme"), (ADMIN_KEY, "admin")):
            r = await s.client.post(
                f"/incidents/{incident}/ack?tenant=acme",
                headers={"Authorization": f"Bearer {key}"},
                json={"actor": "person:alice"},
            )
            assert r.status_code == 403, r.text
            assert "alertengine person login" in r.json()["error"]
            refused = [e for e in await s.entries("acme", "refused") if e.actor == owner]
            assert refused, owner
        anon = await s.client.post(f"/incidents/{incident}/ack")
        assert anon.status_code == 401
        state = await s.rt.engine.get("acme", incident)
        assert state is not None and not state.acked_by
        assert await s.entries("acme", "ack") == []


async def test_another_tenants_token_is_refused_and_ledgered_under_the_owner() -> None:
    async with site() as s:
        theirs = await s.incident("beta")
        token = await s.token("alice")
        r = await s.ack(theirs, token)
        assert r.status_code == 403, r.text
        refused = await s.entries("beta", "refused")
        assert any(e.actor == "person:alice" and e.decision == "signin refused" for e in refused)
        # And a beta device code polled with acme's key.
        start = await s.request("carol", "beta")
        poll = await s.poll(start.json()["device_code"], "acme")
        assert poll.status_code == 403
        assert any(
            e.actor == "tenant:acme" and "may not use" in e.reason
            for e in await s.entries("beta", "refused")
        )
        # A person of another tenant cannot even be asked for.
        before = len(s.telegram.sent)
        cross = await s.request("carol", "acme")
        assert cross.status_code == 404
        assert not any(str(m["chat_id"]) == CAROL for m in s.telegram.sent[before:])


async def test_device_code_gives_the_token_once() -> None:
    async with site() as s:
        r = await s.request("alice")
        await s.answer(s.link(ALICE))
        first = await s.poll(r.json()["device_code"])
        again = await s.poll(r.json()["device_code"])
        assert first.status_code == 200 and again.status_code == 409
        assert "already issued" in again.json()["error"]
        forged = await s.poll("aed_" + "A" * 43)
        assert forged.status_code == 404
        reasons = [e.reason for e in await s.entries("acme", "refused")]
        assert any("already issued" in x for x in reasons)
        assert any("unknown device code" in x for x in reasons)


async def test_the_link_is_single_use_and_a_get_confirms_nothing() -> None:
    async with site() as s:
        r = await s.request("alice")
        link = s.link(ALICE)
        for _ in range(3):  # chat apps prefetch links: GET must change nothing
            assert (await s.client.get(link)).status_code == 200
            assert (await s.client.head(link)).status_code in (200, 405)
        assert (await s.poll(r.json()["device_code"])).status_code == 202
        assert (await s.answer(link)).status_code == 200
        reused = await s.answer(link, "deny")
        assert reused.status_code == 409 and "already used" in reused.text
        forged = await s.client.post(
            "/people/signin/confirm", data={"c": "x" * 43, "decision": "confirm"}
        )
        assert forged.status_code == 404
        assert any("forged" in e.reason for e in await s.entries("_system", "refused"))
        assert any("already used" in e.reason for e in await s.entries("acme", "refused"))


async def test_not_me_denies_and_the_requester_gets_nothing() -> None:
    async with site() as s:
        r = await s.request("alice")
        denied = await s.answer(s.link(ALICE), "deny")
        assert denied.status_code == 200 and "Denied" in denied.text
        poll = await s.poll(r.json()["device_code"])
        assert poll.status_code == 403 and "not them" in poll.json()["error"]
        decisions = [(e.actor, e.decision) for e in await s.entries("acme", "signin")]
        assert ("person:alice", "denied") in decisions
        # Denial frees the person: a new request may follow.
        assert (await s.request("alice")).status_code == 201


async def test_an_expired_request_is_refused_both_ways() -> None:
    async with site() as s:
        r = await s.request("alice")
        link = s.link(ALICE)
        await s.clock.advance(601)
        late = await s.answer(link)
        assert late.status_code == 410
        poll = await s.poll(r.json()["device_code"])
        assert poll.status_code == 410
        decisions = [e.decision for e in await s.entries("acme", "signin")]
        assert decisions.count("expired") == 1
        assert len(await s.entries("acme", "refused")) == 2
        r2 = await s.request("alice")
        assert r2.status_code == 201  # no longer pending
        # Confirmed but never collected: the credential expires with the request.
        assert (await s.answer(s.link(ALICE))).status_code == 200
        await s.clock.advance(601)
        assert (await s.poll(r2.json()["device_code"])).status_code == 410


async def test_forged_expired_and_revoked_tokens_cannot_acknowledge() -> None:
    async with site() as s:
        incident = await s.incident()
        forged = await s.ack(incident, TOKEN_PREFIX + "A" * 43)
        assert forged.status_code == 401
        token = await s.token("alice")
        auth = {"Authorization": f"Bearer {token}"}
        out = await s.client.delete("/people/signin/token", headers=auth)
        assert out.status_code == 200, out.text
        revoked = await s.ack(incident, token)
        assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
        # The operator revokes all of a person's tokens with the tenant key.
        t2 = await s.token("alice")
        gone = await s.client.delete("/people/alice/tokens", headers=s.auth())
        assert gone.json()["revoked"] == 1
        assert (await s.ack(incident, t2)).status_code == 401
        t3 = await s.token("alice")
        await s.clock.advance(31 * 86400)
        expired = await s.ack(incident, t3)
        assert expired.status_code == 401 and "expired" in expired.json()["error"]
        signin = await s.entries("acme", "signin")
        assert [e.decision for e in signin].count("token revoked") == 2
        assert any("forged" in e.reason for e in await s.entries("_system", "refused"))
        state = await s.rt.engine.get("acme", incident)
        assert state is not None and not state.acked_by


async def test_a_person_not_notified_this_round_cannot_acknowledge() -> None:
    async with site() as s:
        incident = await s.incident()  # Alice is asked first; Bob only on escalation
        token = await s.token("bob", BOB)
        r = await s.ack(incident, token)
        assert r.status_code == 409 and "not been asked" in r.json()["message"]
        refused = await s.entries("acme", "refused")
        assert any(e.actor == "person:bob" and e.decision == "ack refused" for e in refused)


async def test_sign_in_requests_cannot_spam_a_phone() -> None:
    async with site() as s:
        first = await s.request("alice")
        assert first.status_code == 201
        again = await s.request("alice")
        assert again.status_code == 429 and "already waiting" in again.json()["error"]
        sent_before = len(s.telegram.sent)
        # Answering frees the one pending slot, but the window still counts requests.
        for _ in range(4):
            await s.answer(s.link(ALICE), "deny")
            assert (await s.request("alice")).status_code == 201
        await s.answer(s.link(ALICE), "deny")
        sixth = await s.request("alice")
        assert sixth.status_code == 429 and "5 sign-ins" in sixth.json()["error"]
        assert len(s.telegram.sent) == sent_before + 4
        refused = await s.entries("acme", "refused")
        assert [e.decision for e in refused] == ["signin refused"] * 2
        await s.clock.advance(WINDOW_S + 1)
        assert (await s.request("alice")).status_code == 201


async def test_bad_input_is_refused_with_a_reason() -> None:
    async with site() as s:
        cases = [
            ({"person": "Alice!"}, 400),
            ({"person": "alice", "client": "dashboard"}, 400),
            ({"person": "alice", "extra": 1}, 400),
            ({"person": "nobody"}, 404),
        ]
        for body, status in cases:
            r = await s.client.post("/people/signin", json=body, headers=s.auth())
            assert r.status_code == status, (body, r.text)
            assert r.json()["error"]
        no_key = await s.client.post("/people/signin", json={"person": "alice"})
        assert no_key.status_code == 401
        bad = await s.client.post("/people/signin/confirm", data={"c": "x", "decision": "maybe"})
        assert bad.status_code == 400
        assert json.loads((await s.poll("nope")).text)["status"] == 404


async def test_a_cli_acknowledgement_holds_the_escalation_that_would_reach_bob() -> None:
    for acknowledge in (False, True):  # the control first: without it, Bob is asked
        async with site() as s:
            token = await s.token("alice")
            incident = await s.incident()
            if acknowledge:
                assert (await s.ack(incident, token)).status_code == 200
            await s.clock.advance(601)  # escalate_after_s is 600
            await s.rt.notifier.escalate_due()
            escalated = [e for e in await s.entries("acme", "escalation")]
            bob_asked = [
                m
                for m in s.telegram.sent
                if str(m["chat_id"]) == BOB and "Sign-in" not in m["text"]
            ]
            assert bool(escalated) is not acknowledge, escalated
            assert bool(bob_asked) is not acknowledge
