"""Dashboard sign-in as a person with their enrolled passkey (a real software authenticator
making real WebAuthn assertions): the session names the person only for a valid assertion by
that person's own credential, over this sign-in's challenge, once."""

from __future__ import annotations

import json
import re

from tests.passkeys.softkey import SoftAuthenticator
from tests.people.signin_support import BASE, Site, site


async def enroll(s: Site, person: str) -> SoftAuthenticator:
    auth = SoftAuthenticator(rp_id="localhost", origin=BASE, counter=1)
    pk = s.rt.authorizer.passkeys
    assert pk is not None
    link = await pk.issue_enrollment("acme", person)
    options = await pk.registration_options(link.token)
    await pk.finish_enrollment(link.token, auth.create(options))
    return auth


async def session(s: Site) -> str:
    r = await s.client.post("/dashboard/signin", data={"api_key": s.keys["acme"]})
    assert r.status_code == 303
    page = await s.client.get("/dashboard/person")
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert m
    return m.group(1)


async def options(s: Site, csrf: str, person: str) -> tuple[str, str]:
    r = await s.client.post(
        "/dashboard/person/passkey/options", data={"csrf": csrf, "person": person}
    )
    assert r.status_code == 200, r.text
    return r.json()["options"], r.json()["nonce"]


async def finish(s: Site, csrf: str, nonce: str, assertion: object) -> tuple[int, dict[str, str]]:
    r = await s.client.post(
        "/dashboard/person/passkey/finish",
        data={"csrf": csrf, "nonce": nonce, "assertion": json.dumps(assertion)},
    )
    return r.status_code, r.json()


async def test_the_persons_passkey_signs_the_session_in_as_them() -> None:
    async with site() as s:
        alice = await enroll(s, "alice")
        csrf = await session(s)
        opts, nonce = await options(s, csrf, "alice")
        status, body = await finish(s, csrf, nonce, alice.get_for(opts))
        assert status == 200 and body["person"] == "alice", body
        home = await s.client.get("/dashboard/")
        assert 'id="acting-person"' in home.text
        steps = [
            (e.actor, e.decision, e.data.get("via")) for e in await s.entries("acme", "signin")
        ]
        assert ("person:alice", "confirmed", "passkey") in steps
        # No link was sent: the passkey was the proof.
        assert not [m for m in s.telegram.sent if "Sign-in request" in m["text"]]
        # The same challenge again (with the new cookie's CSRF token): refused, single use.
        page = await s.client.get("/dashboard/person")
        fresh = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert fresh
        status, body = await finish(s, fresh.group(1), nonce, alice.get_for(opts))
        assert status == 409 and "already used" in body["error"]


async def test_another_persons_passkey_or_a_forged_assertion_is_refused() -> None:
    async with site() as s:
        await enroll(s, "alice")
        bob = await enroll(s, "bob")
        csrf = await session(s)
        opts, nonce = await options(s, csrf, "alice")
        status, body = await finish(s, csrf, nonce, bob.get_for(opts))
        assert status == 403 and "someone else" in body["error"]
        # Alice's real credential, but signing another challenge (e.g. an approval's).
        alice2 = await enroll(s, "alice")
        opts, nonce = await options(s, csrf, "alice")
        status, body = await finish(s, csrf, nonce, alice2.get(b"x" * 32))
        assert status == 403
        # Without user verification.
        opts, nonce = await options(s, csrf, "alice")
        status, _ = await finish(s, csrf, nonce, alice2.get_for(opts, user_verified=False))
        assert status == 403
        home = await s.client.get("/dashboard/")
        assert 'id="acting-person"' not in home.text
        refused = [e for e in await s.entries("acme", "refused") if "passkey" in e.reason]
        assert len(refused) == 3


async def test_a_person_without_a_passkey_gets_no_challenge() -> None:
    async with site() as s:
        csrf = await session(s)
        r = await s.client.post(
            "/dashboard/person/passkey/options", data={"csrf": csrf, "person": "alice"}
        )
        assert r.status_code == 409 and "no passkey" in r.json()["error"]
        no_csrf = await s.client.post("/dashboard/person/passkey/options", data={"person": "alice"})
        assert no_csrf.status_code == 403
