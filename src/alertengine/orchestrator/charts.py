"""Hand-made inline SVG charts for the dashboard. Pure functions: numbers in, markup out.

No plotting library and no script: the SVG is part of the page, uses presentation
attributes and CSS classes only (the dashboard's Content-Security-Policy forbids inline
styles), and carries a ``<title>``/``<desc>`` so screen readers get a summary. Every piece of
text is escaped here, so the result can be marked safe in a template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape


@dataclass(frozen=True, slots=True)
class Point:
    at: float
    score: float | None  # None: no score (target unreachable or could not measure itself)


@dataclass(frozen=True, slots=True)
class Marker:
    at: float
    label: str  # e.g. a stage name


def _hms(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%H:%M:%S")


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def health_chart(
    points: Sequence[Point],
    *,
    min_score_to_alert: float,
    recover_score: float,
    markers: Sequence[Marker] = (),
    width: int = 640,
    height: int = 240,
    chart_id: str = "health-chart",
    title: str = "Health score over time",
) -> str:
    """An SVG line chart of health score (0..100) over time, with policy lines and markers.

    Points whose score is ``None`` break the line and are drawn as ticks on the x axis.
    The x domain covers every point and every marker; with nothing to show, the chart says so.
    """
    left, right, top, bottom = 36.0, 12.0, 14.0, 26.0
    pw, ph = width - left - right, height - top - bottom
    times = [p.at for p in points] + [m.at for m in markers]
    scored = [p for p in points if p.score is not None]
    desc = (
        f"{len(scored)} scored observations"
        + (f", latest score {scored[-1].score:.0f}" if scored else "")
        + (f", lowest {min(p.score for p in scored if p.score is not None):.0f}" if scored else "")
        + f"; alert below {min_score_to_alert:.0f}, healthy at {recover_score:.0f} or above"
        + (f"; stage changes: {', '.join(m.label for m in markers)}" if markers else "")
    )
    out: list[str] = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" '
        'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-d">{escape(desc)}</desc>',
    ]
    lo = min(times) if times else 0.0
    hi = max(times) if times else 1.0
    if hi - lo < 1.0:
        lo, hi = lo - 30.0, hi + 30.0

    def x(t: float) -> float:
        return left + (t - lo) / (hi - lo) * pw

    def y(score: float) -> float:
        return top + (1.0 - max(0.0, min(100.0, score)) / 100.0) * ph

    # Grid and y axis labels.
    for s in (0, 25, 50, 75, 100):
        yy = _num(y(s))
        out.append(
            f'<line class="grid" x1="{_num(left)}" x2="{_num(left + pw)}" y1="{yy}" y2="{yy}"/>'
        )
        out.append(
            f'<text class="axis" x="{_num(left - 6)}" y="{yy}" text-anchor="end" '
            f'dominant-baseline="middle">{s}</text>'
        )
    # x axis labels: up to 4 times.
    if times:
        n = 4
        for i in range(n):
            t = lo + (hi - lo) * i / (n - 1)
            anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
            out.append(
                f'<text class="axis" x="{_num(x(t))}" y="{_num(top + ph + 18)}" '
                f'text-anchor="{anchor}">{_hms(t)}</text>'
            )
    # Policy lines.
    for cls, value, label in (
        ("line-alert", min_score_to_alert, f"alert < {min_score_to_alert:.0f}"),
        ("line-recover", recover_score, f"healthy ≥ {recover_score:.0f}"),
    ):
        yy = _num(y(value))
        out.append(
            f'<line class="{cls}" x1="{_num(left)}" x2="{_num(left + pw)}" y1="{yy}" y2="{yy}" '
            f'stroke-dasharray="6 4"><title>{escape(label)}</title></line>'
        )
        out.append(
            f'<text class="{cls}-label" x="{_num(left + pw - 4)}" y="{_num(y(value) - 4)}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    # Stage markers.
    for i, m in enumerate(markers):
        xx = _num(x(m.at))
        out.append(
            f'<line class="marker" x1="{xx}" x2="{xx}" y1="{_num(top)}" y2="{_num(top + ph)}">'
            f"<title>{escape(m.label)} at {_hms(m.at)} UTC</title></line>"
        )
        near_right = x(m.at) > left + pw * 0.8
        out.append(
            f'<text class="marker-label" x="{xx}" y="{_num(top + 10 + (i % 4) * 11)}" '
            f'text-anchor="{"end" if near_right else "start"}" '
            f'dx="{-3 if near_right else 3}">{escape(m.label)}</text>'
        )
    # The score line, broken where there is no score.
    segments: list[list[Point]] = [[]]
    for p in sorted(points, key=lambda p: p.at):
        if p.score is None:
            out.append(
                f'<line class="gap" x1="{_num(x(p.at))}" x2="{_num(x(p.at))}" '
                f'y1="{_num(top + ph)}" y2="{_num(top + ph - 6)}"><title>no score at '
                f"{_hms(p.at)} UTC</title></line>"
            )
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append(p)
    for seg in segments:
        if len(seg) >= 2:
            pts = " ".join(f"{_num(x(p.at))},{_num(y(p.score or 0.0))}" for p in seg)
            out.append(f'<polyline class="score" fill="none" points="{pts}"/>')
        for p in seg:
            out.append(
                f'<circle class="dot" cx="{_num(x(p.at))}" cy="{_num(y(p.score or 0.0))}" r="2.5">'
                f"<title>{(p.score or 0.0):.0f} at {_hms(p.at)} UTC</title></circle>"
            )
    if not points:
        out.append(
            f'<text class="axis" x="{_num(left + pw / 2)}" y="{_num(top + ph / 2)}" '
            'text-anchor="middle">no observations held for this service</text>'
        )
    out.append("</svg>")
    return "".join(out)
