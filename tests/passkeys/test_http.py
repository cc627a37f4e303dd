"""The passkey endpoints over HTTP (ASGI): enrollment link single use and short-lived, GET
changing nothing, options bound to the approval, and no way for a tenant's admin (API key
in hand, the person's link forwarded) to approve without the person's assertion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from alertengine.clock import VirtualClock
from alertengine.incidents import Stage
from alertengine.orchestrator.approval_routes import approval_routes
from alertengine.passkeys.routes import passkey_routes
from tests.authorize.harness import entries, validated_incident
from tests.passkeys.softkey import SoftAuthenticator
from tests.passkeys.support import ALICE, BASE_URL, PasskeySystem, build_passkey_system


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[tuple[PasskeySystem, httpx.AsyncClient]]:
    pk = await build_passkey_system("sqlite", tmp_path)
    app = Starlette(
        routes=[
            *approval_routes(pk.sys.authorizer),
            *passkey_routes(pk.passkeys, pk.sys.authorizer),
        ]
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as c:
        yield pk, c
    await pk.sys.close()


async def test_enrollment_over_http_once(web: tuple[PasskeySystem, httpx.AsyncClient]) -> None:
    pk, client = web
    link = await pk.passkeys.issue_enrollment("acme", "alice")
    path = link.url.removeprefix(BASE_URL)
    for _ in range(3):  # previews, unfurlers: nothing changes
        page = await client.get(path)
        assert page.status_code == 200 and "alice" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
    assert not await pk.passkeys.credentials.of_person("acme", "alice")
    auth = SoftAuthenticator(origin=BASE_URL)
    options = await client.post("/passkeys/enroll/options", json={"token": link.token})
    assert options.status_code == 200
    done = await client.post(
        "/passkeys/enroll/finish",
        json={"token": link.token, "credential": auth.create(options.text)},
    )
    assert done.status_code == 200 and done.json()["person"] == "alice"
    again = await client.post(
        "/passkeys/enroll/finish",
        json={"token": link.token, "credential": auth.create(options.text)},
    )
    assert again.status_code == 409 and again.json()["problem"] == "used"
    assert (await client.get(path)).status_code == 409
    refused = [e for e in await entries(pk.sys, "acme") if e.kind == "refused"]
    assert refused[-1].data["via"] == "passkey_enroll" and refused[-1].data["problem"] == "used"
    assert link.token not in str([e.data for e in await entries(pk.sys, "acme")])


async def test_enrollment_refusals(web: tuple[PasskeySystem, httpx.AsyncClient]) -> None:
    pk, client = web
    clock = VirtualClock(start=1_000_000.0)
    pk.passkeys.clock = clock
    link = await pk.passkeys.issue_enrollment("acme", "alice")
    auth = SoftAuthenticator(origin="https://evil.example")
    options = await client.post("/passkeys/enroll/options", json={"token": link.token})
    bad = await client.post(
        "/passkeys/enroll/finish",
        json={"token": link.token, "credential": auth.create(options.text)},
    )
    assert bad.status_code == 400 and bad.json()["problem"] == "origin"
    await clock.advance(pk.passkeys.enroll_ttl_s)
    late = await client.post("/passkeys/enroll/options", json={"token": link.token})
    assert late.status_code == 410 and late.json()["problem"] == "expired"
    unknown = await client.post("/passkeys/enroll/options", json={"token": "nope"})
    assert unknown.status_code == 404
    huge = await client.post("/passkeys/enroll/finish", content=b"{" + b" " * 40_000 + b"}")
    assert huge.status_code == 400 and "too large" in huge.json()["message"]
    assert (await client.post("/passkeys/enroll/options", content=b"[1]")).status_code == 400
    refused = [e for e in await entries(pk.sys, "acme") if e.kind == "refused"]
    assert [e.data["problem"] for e in refused] == ["origin"]
    assert not await pk.passkeys.credentials.of_person("acme", "alice")


async def test_no_approval_without_the_persons_assertion(
    web: tuple[PasskeySystem, httpx.AsyncClient],
) -> None:
    pk, client = web
    auth = SoftAuthenticator(origin=BASE_URL)
    await pk.enroll("alice", auth)
    api_key = await pk.sys.tenants.rotate_key("acme")
    i = await validated_incident(pk.sys)
    link = await pk.sys.authorizer.issue("acme", i, ALICE)
    preview = await client.get(
        f"/action/recover?token={link.token}", headers={"Accept": "application/json"}
    )
    assert preview.json()["passkey_required"] is True
    # The tenant's admin: API key in hand, alice's link forwarded, no assertion.
    headers = {"Authorization": f"Bearer {api_key}"}
    for body in ({"token": link.token}, {"token": link.token, "assertion": {"id": "x"}}):
        r = await client.post("/action/recover/confirm", json=body, headers=headers)
        assert r.status_code in (401, 403), r.text
    form = await client.post("/action/recover/confirm", data={"token": link.token}, headers=headers)
    assert form.status_code == 401
    await pk.sys.engine.refresh("acme")
    state = await pk.sys.engine.get("acme", i)
    assert state is not None and state.stage is Stage.VALIDATED
    # Options need a valid link; then alice's device signs and the confirm passes.
    assert (
        await client.post("/action/recover/passkey-options", json={"token": "x.y.z"})
    ).status_code in (400, 401)
    options = await client.post("/action/recover/passkey-options", json={"token": link.token})
    assert options.status_code == 200
    ok = await client.post(
        "/action/recover/confirm",
        json={"token": link.token, "assertion": auth.get_for(options.text)},
    )
    assert ok.status_code == 200 and ok.json()["authorized"]
