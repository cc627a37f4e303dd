"""The simulator's chart explains itself: a score axis, a legend for every line, band and
dot, time labels inside the picture, and back-to-back incidents drawn as separate incidents.

Structure is checked on the SVG; "inside the picture" and "no legend entry overlaps another"
are checked where they can be seen: rendered by real headless Chromium.
"""

from __future__ import annotations

import asyncio
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from alertengine.simulate.chart import MARKERS, STAGE_COLOURS, THRESHOLDS, chart_svg
from alertengine.simulate.run import Outcome, run_scenario
from alertengine.simulate.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
NS = {"s": "http://www.w3.org/2000/svg"}
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def nobody() -> Outcome:
    # Two incidents back to back on orders-db: the first expires, the next opens at once.
    scenario = load_scenario(SCENARIOS / "database-errors-nobody-available.toml")
    return asyncio.run(run_scenario(scenario))


def _svg(o: Outcome) -> str:
    r = o.result
    return chart_svg(
        r.samples, r.entries, start=r.start, duration=r.scenario.duration, policy=r.policy,
        title=r.scenario.name,
    )  # fmt: skip


def _classed(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{{{NS['s']}}}{tag}") if cls in (e.get("class") or "").split()]


def test_each_panel_has_a_score_axis(nobody: Outcome) -> None:
    root = ET.fromstring(_svg(nobody))  # noqa: S314 - our own output
    panels = _classed(root, "g", "service")
    assert len(panels) == 2
    for panel in panels:
        ticks = [t.text for t in _classed(panel, "text", "y-tick")]
        assert ticks == ["0", "25", "50", "75", "100"]
        ys = [float(t.get("y", "0")) for t in _classed(panel, "text", "y-tick")]
        assert ys == sorted(ys, reverse=True)  # 0 at the bottom, 100 at the top


def test_the_legend_names_every_line_band_and_marker(nobody: Outcome) -> None:
    root = ET.fromstring(_svg(nobody))  # noqa: S314 - our own output
    [legend] = _classed(root, "g", "legend")
    labels = " | ".join(t.text or "" for t in _classed(legend, "text", "legend-label"))
    policy = nobody.result.policy
    assert "health score" in labels
    for name, _colour, _label in THRESHOLDS:
        value = f"{float(getattr(policy, name)):g}"
        assert name in labels and value in labels, (name, labels)
    for stage in [*STAGE_COLOURS, *MARKERS]:
        assert stage in labels, stage
    # Each threshold line's colour is the colour of its legend key.
    keys = {k.get("stroke") for k in _classed(legend, "line", "legend-threshold")}
    assert keys == {colour for _n, colour, _l in THRESHOLDS}


def test_back_to_back_incidents_are_two_outlined_numbered_incidents(
    nobody: Outcome,
) -> None:
    root = ET.fromstring(_svg(nobody))  # noqa: S314 - our own output
    [orders] = [g for g in _classed(root, "g", "service") if g.get("data-service") == "orders-db"]
    outlines = _classed(orders, "rect", "incident")
    ids = [o.get("data-incident") for o in outlines]
    assert len(ids) == 2 and len(set(ids)) == 2
    first, second = sorted(outlines, key=lambda o: float(o.get("x", "0")))
    first_end = float(first.get("x", "0")) + float(first.get("width", "0"))
    assert first_end < float(second.get("x", "0"))  # a visible gap between the two
    # They really are back to back: the second opened within a minute of the first ending.
    moves = {
        (e.incident_id, e.stage): e.timestamp
        for e in nobody.result.entries
        if e.kind == "transition"
    }
    first_id, second_id = first.get("data-incident"), second.get("data-incident")
    assert moves[(second_id, "DETECTED")] - moves[(first_id, "EXPIRED")] <= 60
    assert [t.text for t in _classed(orders, "text", "incident-label")] == ["#1", "#2"]


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")
def test_rendered_text_stays_inside_the_picture_and_legend_entries_do_not_overlap(
    nobody: Outcome, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    svg = tmp_path / "chart.svg"
    svg.write_text(_svg(nobody), encoding="utf-8")

    def measure() -> dict[str, object]:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(svg.as_uri())
                result: dict[str, object] = page.evaluate(
                    """() => {
                      const svg = document.querySelector('svg');
                      const vb = svg.viewBox.baseVal;
                      const o = svg.getBoundingClientRect();  // drawn 1:1 (width = viewBox)
                      const box = e => { const b = e.getBoundingClientRect();
                        return {x: b.left - o.left, y: b.top - o.top, r: b.right - o.left,
                                b: b.bottom - o.top, cls: e.getAttribute('class') || '',
                                text: e.textContent}; };
                      return {vb: {w: vb.width, h: vb.height},
                              texts: [...svg.querySelectorAll('text')].map(box),
                              legend: [...svg.querySelectorAll('.legend .legend-label')].map(box)};
                    }"""
                )
                return result
            finally:
                browser.close()

    got = measure()
    vb = got["vb"]
    assert isinstance(vb, dict)
    texts = got["texts"]
    assert isinstance(texts, list) and texts
    for t in texts:
        assert 0 <= t["x"] and t["r"] <= vb["w"], t
        assert 0 <= t["y"] and t["b"] <= vb["h"], t
    # The last time label ends inside the frame, not past the picture's edge.
    assert max(t["r"] for t in texts if t["cls"] == "x-tick") <= vb["w"] - 10
    legend = got["legend"]
    assert isinstance(legend, list) and legend
    for i, a in enumerate(legend):
        for b in legend[i + 1 :]:
            overlap_x = a["x"] < b["r"] and b["x"] < a["r"]
            overlap_y = a["y"] < b["b"] and b["y"] < a["b"]
            assert not (overlap_x and overlap_y), (a, b)
