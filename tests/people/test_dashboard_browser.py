"""The People page in headless Debian Chromium: sign in, give a person a voice channel, see
it listed (masked) and ledgered with the session's actor, remove it; a bad number is refused
on the page with the CLI's words."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.runtime import Runtime, create_app
from tests.people.dashboard_runtime import close, make_runtime
from tests.support.asgi_server import LoopThread
from tests.support.browser import ARGS, CHROMIUM, record_errors

pytestmark = pytest.mark.browser

if not os.path.exists(CHROMIUM):  # pragma: no cover - make system-deps installs it
    pytest.skip("Debian chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

VOICE = "+263772345678"


@dataclass
class Served:
    rt: Runtime
    url: str
    key: str
    loop: LoopThread


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp: Path = tmp_path_factory.mktemp("people-browser")
    loop = LoopThread()
    try:
        rt = loop.call(make_runtime(tmp))
        url = loop.serve(create_app(rt, run_loop=False))
        yield Served(rt, url, rt.new_keys["acme"], loop)
        loop.call(close(rt))
    finally:
        loop.stop()


@pytest.fixture
def page(served: Served) -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            pg = record_errors(b.new_context().new_page())
            pg.goto(f"{served.url}/dashboard/")
            pg.get_by_label("Tenant API key (or the admin key)").fill(served.key)
            pg.click("#signin")
            pg.wait_for_url(f"{served.url}/dashboard/")
            yield pg
        finally:
            b.close()


def people_entries(served: Served) -> list[tuple[str, str, str]]:
    entries = served.loop.call(served.rt.ledger.read(LedgerQuery(tenant_id="acme")))
    return [
        (e.decision, e.actor, e.data.get("channel", {}).get("kind", ""))
        for e in entries
        if e.kind == "people" and e.actor != "config"
    ]


def test_add_a_voice_channel_see_it_listed_and_ledgered_then_remove_it(page, served) -> None:  # type: ignore[no-untyped-def]
    page.click("nav.top >> text=People")
    page.wait_for_url("**/dashboard/people")
    alice = page.locator('#people tr[data-person="alice"]')
    assert alice.locator('li[data-kind="voice"]').count() == 0
    page.select_option("#channel-person", "alice")
    page.select_option("#channel-kind", "voice")
    page.fill("#channel-address", VOICE)
    page.click("#channel-form button[type=submit]")
    page.wait_for_url("**/dashboard/people")
    voice = alice.locator('li[data-kind="voice"]')
    assert voice.count() == 1
    assert "+26377•••5678" in voice.inner_text() and "can send" in voice.inner_text()
    assert VOICE not in page.content()
    assert people_entries(served) == [("channel added", "tenant:acme", "voice")]

    voice.locator("button", has_text="Remove").click()
    # The form posts and the page reloads: wait for the new page, not just the old one's end.
    sync_api.expect(alice.locator('li[data-kind="voice"]')).to_have_count(0)
    page.wait_for_load_state()
    sync_api.expect(alice.locator('li[data-kind="whatsapp"]')).to_have_count(1)
    assert people_entries(served)[-1] == ("channel removed", "tenant:acme", "voice")
    assert page.errors == []


def test_a_bad_number_is_refused_on_the_page_and_nothing_changes(page, served) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{served.url}/dashboard/people")
    before = people_entries(served)
    page.select_option("#channel-person", "bob")
    page.select_option("#channel-kind", "voice")
    page.fill("#channel-address", "0772 345 678")
    with page.expect_response(lambda r: r.request.method == "POST") as resp:
        page.click("#channel-form button[type=submit]")
    assert resp.value.status == 400
    assert page.locator("#people-error").inner_text() == (
        "a voice address is a phone number in E.164 form (+ and 7-15 digits)"
    )
    # The form keeps what was typed, for the person it was meant for.
    assert page.locator("#channel-address").input_value() == "0772 345 678"
    assert page.locator("#channel-person").input_value() == "bob"
    assert page.locator('#people tr[data-person="bob"] li[data-kind="voice"]').count() == 0
    assert people_entries(served) == before
    assert all("400" in e for e in page.errors)
