"""A hand-made SVG chart of a simulation: health score over time, policy thresholds, and
each incident's stages as coloured bands with markers. Pure: data in, a string out.

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
    "RECOVERED": "#16a34a",
    "WEBHOOK_FAILED": "#7f1d1d",
}
THRESHOLDS = (
    ("min_score_to_alert", "#d97706"),
    ("recover_score", "#16a34a"),
    ("validate_score", "#dc2626"),
)

WIDTH, LEFT, RIGHT, PANEL_H, GAP, TOP = 960, 120, 20, 120, 28, 36


@dataclass(frozen=True, slots=True)
class _Band:
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
            out.setdefault(svc, []).append(_Band(stage, since, t))
        if e.stage in STAGE_COLOURS:
            current[e.incident_id] = (e.stage, t)
    for inc, (stage, since) in current.items():
        out.setdefault(service_of.get(inc, ""), []).append(_Band(stage, since, duration))
    return out


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
    height = TOP + len(services) * (PANEL_H + GAP) + 24
    plot_w = WIDTH - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + plot_w * (t / duration if duration > 0 else 0)

    bands = _bands(entries, start, duration)
    markers = _markers(entries, start)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title or 'AlertEngine simulation')}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">'
        f"{escape(title or 'AlertEngine simulation')} (policy {escape(policy.version)})</text>",
    ]
    for idx, name in enumerate(services):
        top = TOP + idx * (PANEL_H + GAP)

        def y(score: float, top: float = top) -> float:
            return top + PANEL_H * (1 - max(0.0, min(100.0, score)) / 100)

        out.append(f'<g class="service" data-service={quoteattr(name)}>')
        out.append(
            f'<text x="{LEFT - 8}" y="{top + PANEL_H / 2:.1f}" text-anchor="end" '
            f'font-weight="bold">{escape(name)}</text>'
        )
        out.append(
            f'<rect class="frame" x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" '
            'fill="none" stroke="#9ca3af"/>'
        )
        for band in bands.get(name, []):
            w = max(0.5, x(band.end) - x(band.start))
            out.append(
                f'<rect class="stage stage-{band.stage}" x="{x(band.start):.1f}" y="{top}" '
                f'width="{w:.1f}" height="{PANEL_H}" fill="{STAGE_COLOURS[band.stage]}" '
                f'fill-opacity="0.55"><title>{band.stage} {format_offset(band.start)}–'
                f"{format_offset(band.end)}</title></rect>"
            )
        for field_name, colour in THRESHOLDS:
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
        for tick in range(5):
            t = duration * tick / 4
            out.append(
                f'<text x="{x(t):.1f}" y="{top + PANEL_H + 12}" text-anchor="middle" '
                f'fill="#6b7280">{format_offset(t)}</text>'
            )
        out.append("</g>")
    legend_y = height - 8
    lx = LEFT
    for stage, colour in STAGE_COLOURS.items():
        out.append(f'<rect x="{lx}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{lx + 14}" y="{legend_y}">{stage}</text>')
        lx += 14 + 8 * len(stage) + 12
    out.append("</svg>")
    return "\n".join(out) + "\n"
