"""The approval page in headless Debian Chromium: open link, confirm, reopen -> already used."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alertengine.incidents import Stage
from tests.authorize.harness import ALICE, validated_incident
from tests.authorize.test_http import Live, start_live
from tests.support.browser import ARGS, CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed"),
]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    lv = start_live("memory", tmp_path)
    yield lv
    lv.run(lv.sys.close())
    lv.loop.stop()


def test_open_confirm_reopen(live: Live) -> None:
    from playwright.sync_api import sync_playwright

    i = live.run(validated_incident(live.sys, diagnosis={"summary": "bad deploy"}))
    link = live.run(live.sys.authorizer.issue("acme", i, ALICE))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        page.goto(link.url)
        assert page.text_content("#incident-id") == i
        assert "restart workers" in (page.text_content("#action") or "")
        assert "bad deploy" in page.content()
        assert live.stage(i) is Stage.VALIDATED  # opening changed nothing
        page.click("#confirm")
        page.wait_for_selector("#result")
        assert page.get_attribute("#result", "data-status") == "200"
        assert "Approved" in (page.text_content("h1") or "")
        page.goto(link.url)
        assert "This approval was already used" in page.content()
        assert page.query_selector("#confirm") is None
        browser.close()
    live.wait_stage(i, Stage.EXECUTED)
    assert len(live.receiver.executed) == 1
