"""The approval page's heading follows the incident: a used link opened after the recovery
ran must not still say "recovery awaiting approval" (real server, real HTTP)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from alertengine.engine import Change
from alertengine.incidents import Stage
from alertengine.orchestrator.approval_routes import STAGE_HEADINGS
from tests.authorize.harness import ALICE, validated_incident
from tests.authorize.test_http import Live, start_live


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    lv = start_live("memory", tmp_path)
    yield lv
    lv.run(lv.sys.close())
    lv.loop.stop()


def heading(html: str) -> str:
    m = re.search(r'<h1 id="heading">(.*?)</h1>', html, re.S)
    assert m is not None, html
    return " ".join(m.group(1).split())


async def test_heading_reflects_the_current_stage(live: Live) -> None:
    i = await live.loop.acall(validated_incident(live.sys))
    link = await live.loop.acall(live.sys.authorizer.issue("acme", i, ALICE))
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        page = await client.get("/action/recover", params={"token": link.token})
        assert heading(page.text) == "checkout: recovery awaiting approval"
        r = await client.post("/action/recover/confirm", data={"token": link.token})
        assert r.status_code == 200
        live.wait_stage(i, Stage.EXECUTED)
        await live.loop.acall(
            live.sys.engine.transition(
                "acme", i, Change(Stage.RESOLVED, "policy", "health returned")
            )
        )
        used = await client.get("/action/recover", params={"token": link.token})
    assert used.status_code == 409  # the link is spent; the page still explains the incident
    assert heading(used.text) == "checkout: incident resolved after the recovery"
    assert "recovery awaiting approval" not in used.text


def test_every_stage_has_its_own_heading() -> None:
    assert set(STAGE_HEADINGS) == {s.value for s in Stage}
    assert [k for k, v in STAGE_HEADINGS.items() if "awaiting approval" in v] == ["VALIDATED"]
