"""The on-call pages in headless Debian Chromium: the 14-day view and the silence form."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.runtime import Runtime, create_app
from tests.oncall.dashboard_runtime import make_runtime
from tests.support.asgi_server import LoopThread
from tests.support.browser import ARGS, CHROMIUM, record_errors

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


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    loop = LoopThread()
    try:
        rt = loop.call(make_runtime())
        url = loop.serve(create_app(rt, run_loop=False))
        yield Served(rt, url, rt.new_keys["acme"], loop)
        loop.call(rt.http.aclose())
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


def test_on_call_page_shows_now_and_the_next_14_days(page, served: Served) -> None:
    page.click("text=On call")
    page.wait_for_url("**/dashboard/oncall")
    # Saturday 12:00 UTC: day 5 of the daily rotation from Tuesday -> alice; carol backs up.
    assert page.locator("#on-call-order").inner_text() == "alice, carol"
    table = page.locator("#oncall-14d")
    assert table.locator("thead th").count() == 15  # the row header + 14 days
    day = table.locator('tr[data-layer="day"] td')
    assert day.count() == 14
    assert (
        day.nth(0).inner_text().startswith("bob") and "alice from 08:00" in day.nth(0).inner_text()
    )
    # Tuesday 8 Dec: carol covers bob 09:00-21:00 Berlin, marked as an override.
    tuesday = day.nth(3)
    assert "carol" in tuesday.inner_text() and tuesday.get_attribute("class") == "override"
    assert page.locator('ol.shifts li[data-who="carol"]').count() >= 2
    assert page.errors == []


def test_silence_form_creates_and_expires_a_silence_ledgered(page, served: Served) -> None:
    page.click("text=Silences")
    page.wait_for_url("**/dashboard/silences")
    page.fill("#matchers", "service=checkout\nenv=~prod.*")
    page.fill("#hours", "2")
    page.fill("#created_by", "alice")
    page.fill("#comment", "database migration")
    page.click("#silence-form button[type=submit]")
    page.wait_for_url("**/dashboard/silences")
    row = page.locator('#silences tr[data-state="active"]')
    assert row.count() == 1 and "database migration" in row.inner_text()
    sid = row.get_attribute("data-id")
    row.locator("button", has_text="Expire").click()
    page.wait_for_selector(f'#silences tr[data-id="{sid}"][data-state="expired"]')
    entries = served.loop.call(served.rt.ledger.read(LedgerQuery(tenant_id="acme")))
    mine = [(e.decision, e.actor) for e in entries if e.kind == "silence"]
    assert mine == [("created", "tenant:acme"), ("expired", "tenant:acme")]
    # A bad matcher: the page says why, with a 400, and nothing is created.
    page.fill("#matchers", "service=~(")
    page.fill("#created_by", "alice")
    page.fill("#comment", "x")
    with page.expect_response(lambda r: r.request.method == "POST") as resp:
        page.click("#silence-form button[type=submit]")
    assert resp.value.status == 400
    assert "regular expression" in page.locator("#silence-error").inner_text()
    assert page.errors == [] or all("400" in e for e in page.errors)


def test_override_form_puts_the_cover_on_call_ledgered(page, served: Served) -> None:
    page.click("text=On call")
    page.wait_for_url("**/dashboard/oncall")
    assert page.locator("#on-call-order").inner_text() == "alice, carol"
    page.select_option("#schedule", "primary")
    page.fill("#who", "bob")
    page.fill("#covers", "alice")
    page.fill("#start", "2026-12-05T09:00")  # Berlin wall time: now is 13:00 there
    page.fill("#end", "2026-12-05T21:00")
    page.click("#override-form button[type=submit]")
    page.wait_for_url("**/dashboard/oncall")
    assert page.locator("#on-call-order").inner_text() == "bob, carol"
    entries = served.loop.call(served.rt.ledger.read(LedgerQuery(tenant_id="acme")))
    changes = [e for e in entries if e.kind == "schedule"]
    assert changes[-1].actor == "tenant:acme"
    assert changes[-1].data["schedule"]["overrides"][-1]["who"] == "bob"
    # Someone who is not a person id: refused with the reason, nothing ledgered.
    page.fill("#who", "Mallory Smith")
    page.fill("#start", "2026-12-06T09:00")
    page.fill("#end", "2026-12-06T21:00")
    with page.expect_response(lambda r: r.request.method == "POST") as resp:
        page.click("#override-form button[type=submit]")
    assert resp.value.status == 400
    assert "invalid person id" in page.locator("#override-error").inner_text()
    after = served.loop.call(served.rt.ledger.read(LedgerQuery(tenant_id="acme")))
    assert len([e for e in after if e.kind == "schedule"]) == len(changes)
