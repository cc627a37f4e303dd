"""The inline SVG chart: pure, escaped, policy lines, gaps and markers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from alertengine.orchestrator.charts import Marker, Point, health_chart

NS = "{http://www.w3.org/2000/svg}"


def test_chart_is_valid_svg_with_lines_gaps_and_markers():
    pts = [Point(100, 95), Point(105, 90), Point(110, None), Point(115, 30), Point(120, 40)]
    svg = health_chart(
        pts, min_score_to_alert=70, recover_score=85, markers=[Marker(115, "<DETECTED>")]
    )
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    assert root.tag == f"{NS}svg" and root.get("role") == "img"
    assert len(root.findall(f"{NS}polyline")) == 2  # broken at the missing score
    assert len(root.findall(f"{NS}circle")) == 4
    classes = [e.get("class") for e in root.iter()]
    assert "line-alert" in classes and "line-recover" in classes and "gap" in classes
    assert "&lt;DETECTED&gt;" in svg and "<DETECTED>" not in svg
    desc = root.find(f"{NS}desc")
    assert desc is not None and "latest score 40" in (desc.text or "")


def test_empty_chart_says_so():
    svg = health_chart([], min_score_to_alert=70, recover_score=85)
    ET.fromstring(svg)  # noqa: S314 - our own output
    assert "no observations" in svg
