"""Person sign-in and Acknowledge on the dashboard, in headless Debian Chromium: sign in with
the tenant key, ask to act as Alice, Alice confirms from the link in her (fake) Telegram chat,
the page goes on by itself, the header names her, and Acknowledge on the incident page
records ``ack`` by person:alice via dashboard. Sign-out clears the person."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from alertengine.clock import VirtualClock
from alertengine.ledger import LedgerQuery
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore
from tests.support.asgi_server import LoopThread
from tests.support.browser import ARGS, CHROMIUM, record_errors
from tests.support.fakes.telegram import FakeTelegram
from tests.support.servers import serve
from tests.support.wired import DEGRADED

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):  # pragma: no cover - make system-deps installs it
    pytest.skip("Debian chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Served:
    rt: Runtime
    url: str
    key: str
    loop: LoopThread
    telegram: FakeTelegram


def config(url: str) -> dict[str, Any]:
    return {
        "orchestrator": {"base_url": url},
        "tenants": [
            {
                "id": "acme",
                "people": [
                    {"id": "alice", "name": "Alice",
                     "channels": [{"channel": "telegram", "address": "1001"}]},
                    {"id": "bob", "channels": [{"channel": "telegram", "address": "1002"}]},
                ],
            }
        ],
        "targets": [{"tenant": "acme", "service": "checkout"}],
    }  # fmt: skip


async def make_runtime(tg: FakeTelegram, tg_url: str, url: str) -> Runtime:
    clock = VirtualClock(1796472000.0)
    env = {
        "ALERT_SECRET": "s" * 40,
        "TELEGRAM_BOT_TOKEN": tg.token,
        "TELEGRAM_API_BASE": tg_url,
    }
    rt = await build_runtime(
        parse_config(config(url)),
        ledger=MemoryLedgerStore(b"x" * 32),
        store=MemoryStateStore(clock),
        settings=Settings.from_env(env),
        clock=clock,
    )
    await sync_tenants(rt)
    return rt


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    tg = FakeTelegram()
    loop = LoopThread()
    with serve(tg.app) as tg_url:
        try:
            # The app's own URL is the links' base: serve once to learn the port.
            holder: dict[str, Runtime] = {}

            async def app(scope: Any, receive: Any, send: Any) -> None:
                await holder["app"](scope, receive, send)  # type: ignore[operator]

            # WebAuthn needs a secure context and a domain RP ID: http://localhost is both.
            url = loop.serve(app).replace("127.0.0.1", "localhost")
            rt = loop.call(make_runtime(tg, tg_url, url))
            holder["app"] = create_app(rt, run_loop=False)  # type: ignore[assignment]
            yield Served(rt, url, rt.new_keys["acme"], loop, tg)
            loop.call(rt.http.aclose())
        finally:
            loop.stop()


def test_sign_in_as_a_person_then_acknowledge_from_the_incident_page(served: Served) -> None:
    r = httpx.post(
        f"{served.url}/intake/health?service=checkout",
        json=DEGRADED,
        headers={"Authorization": f"Bearer {served.key}"},
    )
    incident = r.json()["incident"]["incident_id"]
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = record_errors(b.new_context().new_page())
            page.goto(f"{served.url}/dashboard/")
            page.get_by_label("Tenant API key (or the admin key)").fill(served.key)
            page.click("#signin")
            page.wait_for_url(f"{served.url}/dashboard/")
            page.goto(f"{served.url}/dashboard/incidents/{incident}")
            # A tenant session names nobody: no button, a way to sign in as a person.
            assert page.locator("#ack-button").count() == 0
            page.click("#ack-signin a")
            page.wait_for_url("**/dashboard/person")
            page.select_option("#person", "alice")
            page.click("#person-ask")
            page.wait_for_selector("#person-pending")
            code = page.locator("#user-code").inner_text()
            assert re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", code)
            assert "person:alice's telegram" in page.locator("#sent-to").inner_text()

            # Alice, on her phone: the link in her chat shows the same code; she confirms.
            (msg,) = [m for m in served.telegram.sent if "Sign-in request" in m["text"]]
            assert msg["chat_id"] == "1001"
            link = msg["reply_markup"]["inline_keyboard"][0][0]["url"]
            phone = httpx.get(link)
            assert code in phone.text
            c = re.search(r"c=([^&]+)", link).group(1)  # type: ignore[union-attr]
            ok = httpx.post(
                f"{served.url}/people/signin/confirm", data={"c": c, "decision": "confirm"}
            )
            assert ok.status_code == 200, ok.text

            # The pending page notices by itself and goes on; the header names Alice.
            page.wait_for_url(f"{served.url}/dashboard/", timeout=20_000)
            assert page.locator("#acting-person").inner_text() == "Alice (acme)"

            page.goto(f"{served.url}/dashboard/incidents/{incident}")
            page.click("#ack-button")
            result = page.locator("#ack-result").inner_text()
            assert "Acknowledged" in result, result
            assert "person:alice" in page.locator("#acked-by").inner_text()
            entries = served.loop.call(served.rt.ledger.read(LedgerQuery(tenant_id="acme")))
            acks = [(e.actor, e.data["via"]) for e in entries if e.kind == "ack"]
            assert acks == [("person:alice", "dashboard")]
            steps = [(e.actor, e.decision) for e in entries if e.kind == "signin"]
            assert ("person:alice", "confirmed") in steps
            assert ("orchestrator", "session signed in") in steps

            # Sign-out ends the person too: a new tenant session names nobody.
            page.click("#signout")
            page.wait_for_url("**/dashboard/signin")
            page.get_by_label("Tenant API key (or the admin key)").fill(served.key)
            page.click("#signin")
            page.wait_for_url(f"{served.url}/dashboard/")
            assert page.locator("#person-link").inner_text() == "Sign in as a person"
            assert page.locator("#acting-person").count() == 0
            assert page.errors == []
        finally:
            b.close()


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


def test_sign_in_as_a_person_with_their_passkey(served: Served) -> None:
    pk = served.rt.authorizer.passkeys
    assert pk is not None
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = b.new_context()
            page = record_errors(context.new_page())
            _device(context, page)
            link = served.loop.call(pk.issue_enrollment("acme", "bob"))
            page.goto(link.url)
            page.click("#enroll")
            page.wait_for_selector("#result:not([hidden])", timeout=30_000)
            assert page.get_attribute("#result", "data-status") == "200"
            sent_before = len(served.telegram.sent)

            page.goto(f"{served.url}/dashboard/")
            page.get_by_label("Tenant API key (or the admin key)").fill(served.key)
            page.click("#signin")
            page.wait_for_url(f"{served.url}/dashboard/")
            page.goto(f"{served.url}/dashboard/person")
            # Alice has no passkey: the page says so, and nothing changes.
            page.select_option("#person", "alice")
            page.click("#person-passkey")
            page.wait_for_selector("#passkey-error:not([hidden])")
            assert "no passkey" in page.locator("#passkey-error").inner_text()
            page.select_option("#person", "bob")
            page.click("#person-passkey")
            page.wait_for_url(f"{served.url}/dashboard/", timeout=20_000)
            assert page.locator("#acting-person").inner_text() == "bob (acme)"
            assert len(served.telegram.sent) == sent_before  # no link: the passkey proved it
            entries = served.loop.call(served.rt.ledger.read(LedgerQuery(tenant_id="acme")))
            steps = [
                (e.actor, e.decision, e.data.get("via")) for e in entries if e.kind == "signin"
            ]
            assert ("person:bob", "confirmed", "passkey") in steps
            assert [e for e in page.errors if "409" not in e] == []
        finally:
            b.close()
