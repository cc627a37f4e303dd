"""The dashboard in headless Debian Chromium, against the app served by uvicorn on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from alertengine.orchestrator.runtime import Runtime, create_app
from tests.dashboard.helpers import authorized_incident, make_runtime
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
    incident_id: str
    key: str


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    loop = LoopThread()
    try:
        rt = loop.call(make_runtime())
        iid = loop.call(authorized_incident(rt))
        url = loop.serve(create_app(rt, run_loop=False))
        yield Served(rt, url, iid, rt.new_keys["acme"])
        loop.call(rt.drain())
        loop.call(rt.http.aclose())
    finally:
        loop.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context()
    pg = record_errors(context.new_page())
    yield pg
    context.close()


def sign_in(page, served: Served) -> None:
    page.goto(f"{served.url}/dashboard/")
    assert page.url.endswith("/dashboard/signin")
    page.get_by_label("Tenant API key (or the admin key)").fill(served.key)
    page.click("#signin")
    page.wait_for_url(f"{served.url}/dashboard/")


def test_dashboard_loads_after_sign_in_and_timeline_shows_the_approver(page, served):
    sign_in(page, served)
    assert page.locator("#open-incidents h1").inner_text() == "Open incidents"
    row = page.locator(f'tr.incident[data-incident="{served.incident_id}"]')
    assert "AUTHORIZED" in row.inner_text() and "person:web-alice" in row.inner_text()
    assert served.key not in page.content()
    row.locator("a").click()
    page.wait_for_url(f"**/dashboard/incidents/{served.incident_id}")
    approver = page.locator("#approver .who")
    assert approver.is_visible() and approver.inner_text() == "person:web-alice"
    assert page.locator("#timeline tr.kind-transition").count() == 4
    chart = page.locator("svg#health-chart")
    assert chart.is_visible() and chart.bounding_box()["height"] > 100
    assert page.locator("svg#health-chart .marker").count() == 4
    # The session cookie is HttpOnly: scripts cannot read it.
    assert page.evaluate("document.cookie") == ""
    page.click("#signout")
    page.wait_for_url("**/dashboard/signin")
    assert page.errors == []


def test_live_simulator_score_changes_when_a_slider_moves(page, served):
    sign_in(page, served)
    page.click("text=Policy simulator")
    page.wait_for_selector('#sim-form[data-live="true"]')
    before = page.locator("#sim-score").inner_text()
    assert page.locator("#gate-open").get_attribute("data-pass") == "false"
    with page.expect_response(lambda r: "/dashboard/api/simulate?" in r.url) as resp:
        page.locator("#p95_ms").focus()
        page.keyboard.press("End")  # the slider to its maximum, as a user would
    assert resp.value.status == 200
    page.wait_for_function(
        "b => document.getElementById('sim-score').textContent !== b", arg=before
    )
    after = int(page.locator("#sim-score").inner_text())
    assert after < int(before)
    assert page.locator("#p95_ms-out").inner_text() == "5000 ms"
    page.wait_for_selector('#gate-open[data-pass="true"]')
    assert page.locator("#sim-status").inner_text() == "critical"
    assert page.errors == []


def test_small_screen_does_not_scroll_sideways(browser, served):
    context = browser.new_context(viewport={"width": 375, "height": 740})
    pg = context.new_page()
    try:
        sign_in(pg, served)
        for path in ("/dashboard/", f"/dashboard/incidents/{served.incident_id}"):
            pg.goto(served.url + path)
            width = pg.evaluate("document.documentElement.scrollWidth")
            assert width <= 376, (path, width)
    finally:
        context.close()
