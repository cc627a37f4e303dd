"""A hand-made SVG chart of a simulation: health score over time, policy thresholds, and
each incident's stages as coloured bands with markers. Pure: data in, a string out.

It explains itself: a y axis with the score scale, time labels that stay inside the picture,
a legend for every line, band and dot, and one numbered outline per incident (two incidents
back to back are two outlines, not one long band).

One panel per service. Long runs are down-sampled to at most ``max_points`` per series by
keeping each bucket's *lowest* score, so a short dip is never smoothed away. The markup
uses classes (``score``, ``threshold``, ``stage``, ``marker``) so the dashboard can embed and
restyle it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from alertengine.ledger.chain import Entry
from alertengine.policy import Policy
from alertengine.simulate.runner import Sample
from alertengine.simulate.scenario import format_offset

STAGE_COLOURS = {
    "DETECTED": "#fde68a",
    "PROPOSED": "#fcd34d",
    "VALIDATED": "#fca5a5",
    "AUTHORIZED": "#93c5fd",
    "EXECUTED": "#a5b4fc",
    "WEBHOOK_FAILED": "#f87171",
}
MARKERS = {
    "AUTHORIZED": "#2563eb",
    "EXPIRED": "#b91c1c",
    "RESOLVED": "#15803d",
    "RECOVERED": "#0d9488",
    "WEBHOOK_FAILED": "#7f1d1d",
}
THRESHOLDS = (
    ("min_score_to_alert", "#d97706", "opens below {v:g}"),
    ("recover_score", "#16a34a", "recovered at {v:g}+"),
    ("validate_score", "#dc2626", "validates at {v:g} or below"),
)

WIDTH, LEFT, RIGHT, PANEL_H, TOP = 960, 64, 24, 120, 40
#: Above a panel: its service name; below: the time labels.
NAME_H, TICKS_H = 18, 22
GAP = NAME_H + TICKS_H
LEGEND_ROW_H = 18
#: A generous estimate of a character's width at font-size 11, for laying out the legend.
CHAR_W = 6.3
Y_TICKS = (0, 25, 50, 75, 100)
X_TICKS = 5


@dataclass(frozen=True, slots=True)
class _Band:
    incident_id: str
    stage: str
    start: float
    end: float


def _bands(entries: Sequence[Entry], start: float, duration: float) -> dict[str, list[_Band]]:
    """Per service, the stage intervals of its incidents, from the transition entries."""
    service_of: dict[str, str] = {}
    current: dict[str, tuple[str, float]] = {}
    out: dict[str, list[_Band]] = {}
    for e in entries:
        if e.kind != "transition" or e.incident_id is None or e.stage is None:
            continue
        if e.stage == "DETECTED":
            service_of[e.incident_id] = str(e.data.get("service", ""))
        svc = service_of.get(e.incident_id, "")
        t = e.timestamp - start
        if e.incident_id in current:
            stage, since = current.pop(e.incident_id)
            out.setdefault(svc, []).append(_Band(e.incident_id, stage, since, t))
        if e.stage in STAGE_COLOURS:
            current[e.incident_id] = (e.stage, t)
    for inc, (stage, since) in current.items():
        out.setdefault(service_of.get(inc, ""), []).append(_Band(inc, stage, since, duration))
    return out


def _incidents(bands: Sequence[_Band]) -> list[tuple[str, float, float]]:
    """(incident, first start, last end) in order of start: one outline per incident."""
    spans: dict[str, tuple[float, float]] = {}
    for b in bands:
        lo, hi = spans.get(b.incident_id, (b.start, b.end))
        spans[b.incident_id] = (min(lo, b.start), max(hi, b.end))
    return sorted(((i, lo, hi) for i, (lo, hi) in spans.items()), key=lambda s: s[1])


def _markers(entries: Sequence[Entry], start: float) -> dict[str, list[tuple[str, float]]]:
    service_of: dict[str, str] = {}
    out: dict[str, list[tuple[str, float]]] = {}
    for e in entries:
        if e.kind != "transition" or e.incident_id is None or e.stage is None:
            continue
        if e.stage == "DETECTED":
            service_of[e.incident_id] = str(e.data.get("service", ""))
        if e.stage in MARKERS:
            svc = service_of.get(e.incident_id, "")
            out.setdefault(svc, []).append((e.stage, e.timestamp - start))
    return out


def downsample(samples: Sequence[Sample], max_points: int) -> list[tuple[float, float]]:
    """(t, score) points, unreachable polls as 0, at most ``max_points`` (bucket minimum)."""
    pts = [(s.t, (s.score if s.score is not None else 0.0)) for s in samples]
    if len(pts) <= max_points:
        return pts
    size = -(-len(pts) // max_points)
    return [min(pts[i : i + size], key=lambda p: p[1]) for i in range(0, len(pts), size)]


def _legend_groups(policy: Policy) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(group title, [(kind, colour, label)]): what each line, band and dot means."""
    lines = [("score", "#111827", "health score (0-100)")]
    lines += [
        ("threshold", colour, f"{label.format(v=float(getattr(policy, name)))} ({name})")
        for name, colour, label in THRESHOLDS
    ]
    stages = [("band", colour, stage) for stage, colour in STAGE_COLOURS.items()]
    stages.append(("outline", "#374151", "one incident, numbered"))
    events = [("marker", colour, stage) for stage, colour in MARKERS.items()]
    return [("Lines", lines), ("Stages", stages), ("Events", events)]


def _legend_key(kind: str, colour: str, x: float, y: float) -> str:
    if kind in ("score", "threshold"):
        dash = ' stroke-dasharray="4 3"' if kind == "threshold" else ""
        width = "1.5" if kind == "score" else "1"
        return (
            f'<line class="legend-key legend-{kind}" x1="{x:.1f}" x2="{x + 16:.1f}" '
            f'y1="{y - 4}" y2="{y - 4}" stroke="{colour}" stroke-width="{width}"{dash}/>'
        )
    if kind == "band":
        return (
            f'<rect class="legend-key legend-band" x="{x:.1f}" y="{y - 9}" width="16" '
            f'height="10" fill="{colour}" fill-opacity="0.55"/>'
        )
    if kind == "outline":
        return (
            f'<rect class="legend-key legend-outline" x="{x:.1f}" y="{y - 9}" width="16" '
            f'height="10" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        )
    return (
        f'<circle class="legend-key legend-marker" cx="{x + 8:.1f}" cy="{y - 4}" r="4" '
        f'fill="{colour}"/>'
    )


def _legend(policy: Policy, top: float) -> tuple[list[str], float]:
    """The legend's markup (one row per group, wrapped inside the width) and its height."""
    out = [f'<g class="legend" transform="translate(0 {top:.1f})">']
    row = 0
    for title, items in _legend_groups(policy):
        y = row * LEGEND_ROW_H + 12
        out.append(
            f'<text class="legend-title" x="{LEFT - 6}" y="{y}" text-anchor="end" '
            f'font-weight="bold" fill="#374151">{title}</text>'
        )
        x = float(LEFT)
        for kind, colour, label in items:
            w = 22 + CHAR_W * len(label) + 16
            if x + w > WIDTH - RIGHT and x > LEFT:
                x, row = float(LEFT), row + 1
                y = row * LEGEND_ROW_H + 12
            out.append(_legend_key(kind, colour, x, y))
            out.append(
                f'<text class="legend-label" x="{x + 22:.1f}" y="{y}">{escape(label)}</text>'
            )
            x += w
        row += 1
    out.append("</g>")
    return out, row * LEGEND_ROW_H + 6


def chart_svg(
    samples: Mapping[str, Sequence[Sample]],
    entries: Sequence[Entry],
    *,
    start: float,
    duration: float,
    policy: Policy,
    title: str = "",
    max_points: int = 800,
) -> str:
    services = list(samples)
    plot_w = WIDTH - LEFT - RIGHT
    legend_top = TOP + len(services) * (PANEL_H + GAP)
    legend, legend_h = _legend(policy, legend_top)
    height = legend_top + legend_h

    def x(t: float) -> float:
        return LEFT + plot_w * (t / duration if duration > 0 else 0)

    bands = _bands(entries, start, duration)
    markers = _markers(entries, start)
    heading = escape(title or "AlertEngine simulation")
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{heading}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">'
        f"{heading} (policy {escape(policy.version)})</text>",
    ]
    for idx, name in enumerate(services):
        top = TOP + NAME_H + idx * (PANEL_H + GAP)

        def y(score: float, top: float = top) -> float:
            return top + PANEL_H * (1 - max(0.0, min(100.0, score)) / 100)

        out.append(f'<g class="service" data-service={quoteattr(name)}>')
        out.append(
            f'<text class="service-name" x="{LEFT}" y="{top - 6}" font-weight="bold">'
            f"{escape(name)}</text>"
        )
        # The y axis: the score scale, with faint grid lines to read values off.
        for v in Y_TICKS:
            out.append(
                f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(v):.1f}" '
                f'y2="{y(v):.1f}" stroke="#e5e7eb"/>'
            )
            out.append(
                f'<text class="y-tick" x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" '
                f'fill="#6b7280">{v}</text>'
            )
        out.append(
            f'<text class="y-label" transform="translate(14 {top + PANEL_H / 2:.1f}) '
            'rotate(-90)" text-anchor="middle" fill="#6b7280">score</text>'
        )
        service_bands = bands.get(name, [])
        for band in service_bands:
            w = max(0.5, x(band.end) - x(band.start))
            out.append(
                f'<rect class="stage stage-{band.stage}" '
                f'data-incident={quoteattr(band.incident_id)} x="{x(band.start):.1f}" '
                f'y="{top}" width="{w:.1f}" height="{PANEL_H}" '
                f'fill="{STAGE_COLOURS[band.stage]}" fill-opacity="0.55"><title>{band.stage} '
                f"{format_offset(band.start)}–{format_offset(band.end)}</title></rect>"
            )
        # Each incident gets its own outline and number, inset by a pixel at both ends, so
        # two incidents back to back read as two, not as one long band.
        for n, (incident, lo, hi) in enumerate(_incidents(service_bands), start=1):
            x0, x1 = x(lo) + 1, max(x(lo) + 2, x(hi) - 1)
            out.append(
                f'<rect class="incident" data-incident={quoteattr(incident)} x="{x0:.1f}" '
                f'y="{top + 1}" width="{x1 - x0:.1f}" height="{PANEL_H - 2}" fill="none" '
                f'stroke="#374151" stroke-width="1.5"><title>incident {escape(incident)}: '
                f"{format_offset(lo)}–{format_offset(hi)}</title></rect>"
            )
            out.append(
                f'<text class="incident-label" x="{x0 + 3:.1f}" y="{top + PANEL_H - 5}" '
                f'fill="#374151" font-size="10">#{n}</text>'
            )
        for field_name, colour, _label in THRESHOLDS:
            value = float(getattr(policy, field_name))
            out.append(
                f'<line class="threshold" data-name="{field_name}" x1="{LEFT}" '
                f'x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                f'stroke="{colour}" stroke-dasharray="4 3"><title>{field_name} = {value:g}'
                "</title></line>"
            )
        pts = downsample(samples[name], max_points)
        if pts:
            coords = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in pts)
            out.append(
                f'<polyline class="score" data-service={quoteattr(name)} fill="none" '
                f'stroke="#111827" stroke-width="1.5" points="{coords}"/>'
            )
        for stage, t in markers.get(name, []):
            out.append(
                f'<circle class="marker marker-{stage}" cx="{x(t):.1f}" cy="{top + 8}" r="4" '
                f'fill="{MARKERS[stage]}"><title>{stage} at {format_offset(t)}</title></circle>'
            )
        out.append(
            f'<rect class="frame" x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" '
            'fill="none" stroke="#9ca3af"/>'
        )
        for tick in range(X_TICKS):
            t = duration * tick / (X_TICKS - 1)
            # The first and last labels align to the frame's edges so neither is clipped.
            anchor = "start" if tick == 0 else "end" if tick == X_TICKS - 1 else "middle"
            out.append(
                f'<text class="x-tick" x="{x(t):.1f}" y="{top + PANEL_H + 14}" '
                f'text-anchor="{anchor}" fill="#6b7280">{format_offset(t)}</text>'
            )
        out.append("</g>")
    out.extend(legend)
    out.append("</svg>")
    return "\n".join(out) + "\n"
