"""Passkeys in headless Debian Chromium with a CDP virtual authenticator (a platform passkey
with user verification): enroll, approve, and the two ways a holder of the link who is not
the person's device fails: a wrong key under alice's credential id, and a forwarded link
opened in another browser profile that has no credential for it."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from webauthn.helpers import base64url_to_bytes

from alertengine.incidents import Stage
from alertengine.orchestrator.approval_routes import approval_routes
from alertengine.passkeys.routes import passkey_routes
from tests.authorize.harness import Receiver, entries, validated_incident
from tests.passkeys.support import ALICE, PasskeySystem, build_passkey_system
from tests.support.asgi_server import LoopThread
from tests.support.browser import ARGS as BROWSER_ARGS
from tests.support.browser import CHROMIUM

ARGS = [*BROWSER_ARGS, "--host-resolver-rules=MAP localhost 127.0.0.1"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed"),
]


@dataclass
class Live:
    loop: LoopThread
    pk: PasskeySystem
    url: str
    receiver: Receiver

    def run(self, coro: Any) -> Any:
        return self.loop.call(coro)

    def stage(self, incident: str) -> Stage:
        async def get() -> Stage:
            await self.pk.sys.engine.refresh("acme")
            st = await self.pk.sys.engine.get("acme", incident)
            assert st is not None
            return st.stage

        return self.run(get())

    def wait_stage(self, incident: str, stage: Stage, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.stage(incident) is not stage:
            assert time.monotonic() < deadline, f"still {self.stage(incident)}"
            time.sleep(0.02)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    loop = LoopThread()
    receiver = Receiver()
    hook = loop.serve(receiver.app()) + "/recover"
    pk = loop.call(build_passkey_system("sqlite", tmp_path, webhook_url=hook))
    app = Starlette(
        routes=[
            *approval_routes(pk.sys.authorizer),
            *passkey_routes(pk.passkeys, pk.sys.authorizer),
        ]
    )
    # WebAuthn needs a secure context and a domain RP ID: http://localhost is both.
    url = loop.serve(app).replace("127.0.0.1", "localhost")
    pk.sys.authorizer.base_url = url
    pk.passkeys.base_url = url
    lv = Live(loop, pk, url, receiver)
    yield lv
    lv.run(pk.sys.close())
    loop.stop()


def _device(context: Any, page: Any) -> tuple[Any, str]:
    """A platform authenticator (passkey) with user verification, on this page's target."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    found = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, str(found["authenticatorId"])


def _result(page: Any) -> tuple[str, str]:
    page.wait_for_selector("#result:not([hidden])", timeout=30_000)
    return (
        str(page.get_attribute("#result", "data-status")),
        str(page.text_content("#result h1") or ""),
    )


def _enroll(live: Live, page: Any) -> None:
    link = live.run(live.pk.passkeys.issue_enrollment("acme", "alice"))
    page.goto(link.url)
    assert page.text_content("#person") == "alice"
    assert not live.run(live.pk.passkeys.credentials.of_person("acme", "alice"))  # GET: nothing
    page.click("#enroll")
    assert _result(page) == ("200", "Passkey enrolled")


def test_enroll_then_approve_with_the_passkey(live: Live) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context()
        page = context.new_page()
        cdp, authenticator = _device(context, page)
        _enroll(live, page)
        creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
        assert len(creds["credentials"]) == 1
        i = live.run(validated_incident(live.pk.sys))
        link = live.run(live.pk.sys.authorizer.issue("acme", i, ALICE))
        page.goto(link.url)
        assert page.text_content("#confirm") == "Confirm with passkey"
        assert live.stage(i) is Stage.VALIDATED  # opening the page changed nothing
        page.click("#confirm")
        assert _result(page) == ("200", "Approved")
        browser.close()
    live.wait_stage(i, Stage.EXECUTED)
    log = live.run(entries(live.pk.sys, "acme"))
    approval = next(e for e in log if e.kind == "approval")
    stored = live.run(live.pk.passkeys.credentials.of_person("acme", "alice"))
    assert approval.data["passkey"]["credential_id"] == stored[0].credential_id
    assert approval.data["passkey"]["sign_count"] >= 1  # the virtual device counts


def test_wrong_credential_and_forwarded_link_are_refused(live: Live) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        alices = browser.new_context()
        alice_page = alices.new_page()
        _device(alices, alice_page)
        _enroll(live, alice_page)
        cred = live.run(live.pk.passkeys.credentials.of_person("acme", "alice"))[0]
        i = live.run(validated_incident(live.pk.sys))
        link = live.run(live.pk.sys.authorizer.issue("acme", i, ALICE))

        # 1. Another profile holds a key filed under alice's credential id: not her key.
        thief = browser.new_context()
        thief_page = thief.new_page()
        cdp, authenticator = _device(thief, thief_page)
        other_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        cdp.send(
            "WebAuthn.addCredential",
            {
                "authenticatorId": authenticator,
                "credential": {
                    "credentialId": base64.b64encode(
                        base64url_to_bytes(cred.credential_id)
                    ).decode(),
                    "isResidentCredential": False,
                    "rpId": "localhost",
                    "privateKey": base64.b64encode(other_key).decode(),
                    "signCount": 1000,
                },
            },
        )
        thief_page.goto(link.url)
        thief_page.click("#confirm")
        status, _ = _result(thief_page)
        assert status == "403"
        refused = [e for e in live.run(entries(live.pk.sys, "acme")) if e.kind == "refused"]
        assert refused[-1].data["passkey_problem"] == "signature"

        # 2. The link forwarded to a profile whose device has no credential for it.
        forwarded = browser.new_context()
        fwd_page = forwarded.new_page()
        _device(forwarded, fwd_page)
        fwd_page.goto(link.url)
        fwd_page.click("#confirm")
        status, _ = _result(fwd_page)
        assert status == "401"
        refused = [e for e in live.run(entries(live.pk.sys, "acme")) if e.kind == "refused"]
        assert refused[-1].data["problem"] == "passkey_required"
        assert live.stage(i) is Stage.VALIDATED

        # Neither spent alice's link: her own device still approves.
        alice_page.goto(link.url)
        alice_page.click("#confirm")
        assert _result(alice_page) == ("200", "Approved")
        browser.close()
    live.wait_stage(i, Stage.EXECUTED)
