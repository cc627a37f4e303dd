"""Rich rendering of a simulation: the timeline, the summary, the what-if comparison."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from alertengine.ledger.chain import Entry
from alertengine.simulate.asked import asked
from alertengine.simulate.scenario import format_offset
from alertengine.simulate.summary import TIMES, TOTALS, Summary

_STAGE_STYLE = {
    "DETECTED": "yellow",
    "VALIDATED": "bold red",
    "AUTHORIZED": "bold blue",
    "EXECUTED": "blue",
    "RESOLVED": "bold green",
    "RECOVERED": "green",
    "EXPIRED": "bold magenta",
    "WEBHOOK_FAILED": "bold red",
}
_LABELS = {
    "incidents_opened": "incidents opened",
    "authorized": "authorized",
    "expirations": "expirations",
    "reproposals": "reproposals",
    "escalations": "escalations",
    "links_issued": "approval links issued",
    "deliveries": "notifications delivered",
    "delivery_failures": "delivery failures",
    "refusals": "refused attempts",
    "webhook_attempts": "webhook attempts",
    "dead_lettered": "dead-lettered executions",
    "time_to_detect": "time to detect",
    "time_to_notify": "time to first notification",
    "time_to_authorize": "time to authorization",
    "time_to_end": "time to end of incident",
}


def _t(v: float | None) -> str:
    return "—" if v is None else format_offset(v)


def timeline_table(entries: Sequence[Entry], start: float, *, title: str = "Timeline") -> Table:
    service_of: dict[str, str] = {}
    table = Table(title=title, show_lines=False, header_style="bold")
    for col in ("t", "service", "incident", "what", "stage", "actor", "detail"):
        table.add_column(col, overflow="fold")
    for e in entries:
        if e.incident_id is not None and e.kind == "transition" and e.stage == "DETECTED":
            service_of[e.incident_id] = str(e.data.get("service", ""))
        what = e.kind if not e.decision else f"{e.kind}: {e.decision}"
        stage = e.stage or ""
        style = _STAGE_STYLE.get(stage, "") if e.kind == "transition" else "dim"
        table.add_row(
            format_offset(e.timestamp - start),
            service_of.get(e.incident_id or "", ""),
            (e.incident_id or "")[-6:],
            what,
            f"[{style}]{stage}[/]" if style else stage,
            e.actor,
            e.reason[:110],
        )
    return table


def asked_table(entries: Sequence[Entry], start: float) -> Table:
    """Who was asked when (deliveries, escalations, silences, approvals)."""
    table = Table(title="Who was asked when", header_style="bold")
    for col in ("t", "incident", "what", "who", "channel", "outcome"):
        table.add_column(col, overflow="fold")
    for r in asked(entries, start):
        table.add_row(
            format_offset(r["t"]), r["incident_id"][-6:], r["what"], r["who"], r["channel"],
            str(r["outcome"])[:110],
        )  # fmt: skip
    return table


def summary_table(s: Summary, *, verified: bool | None = None) -> Table:
    table = Table(title=f"Summary — {s.scenario} (policy {s.policy_version})", header_style="bold")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k in TIMES:
        table.add_row(_LABELS[k] + " (first incident)", _t(s.first(k)))
    for k in TOTALS:
        table.add_row(_LABELS[k], str(s.total(k)))
    finals = ", ".join(f"{k} × {v}" for k, v in s.final_stages.items()) or "—"
    table.add_row("final stages", finals)
    table.add_row("ledger entries", str(s.ledger_entries))
    if verified is not None:
        table.add_row("ledger verifies", "[green]yes[/]" if verified else "[red]NO[/]")
    return table


def incidents_table(s: Summary) -> Table:
    table = Table(title="Incidents", header_style="bold")
    widest = max((len(i.incident_id) for i in s.incidents), default=0)
    # The incident id is what a person copies into the next command: never shortened.
    table.add_column("incident", overflow="fold", min_width=widest)
    for col in ("service", "onset", "detect", "notify", "authorize", "end", "final"):
        table.add_column(col)
    for i in s.incidents:
        table.add_row(
            i.incident_id,
            i.service,
            _t(i.onset),
            _t(i.time_to_detect),
            _t(i.time_to_notify),
            _t(i.time_to_authorize),
            _t(i.time_to_end),
            i.final_stage,
        )
    return table


def diff_rows(a: Summary, b: Summary) -> list[tuple[str, str, str, str]]:
    """(measure, A, B, change) for every figure that can be compared."""
    rows: list[tuple[str, str, str, str]] = []
    for k in TIMES:
        va, vb = a.first(k), b.first(k)
        delta = "" if va is None or vb is None or va == vb else f"{vb - va:+.0f} s"
        if (va is None) != (vb is None):
            delta = "changed"
        rows.append((_LABELS[k], _t(va), _t(vb), delta))
    for k in TOTALS:
        ia, ib = a.total(k), b.total(k)
        rows.append((_LABELS[k], str(ia), str(ib), "" if ia == ib else f"{ib - ia:+d}"))
    fa = ", ".join(f"{k} × {v}" for k, v in a.final_stages.items()) or "—"
    fb = ", ".join(f"{k} × {v}" for k, v in b.final_stages.items()) or "—"
    rows.append(("final stages", fa, fb, "" if fa == fb else "changed"))
    return rows


def diff_table(a: Summary, b: Summary, label_a: str, label_b: str) -> Table:
    table = Table(title=f"What if — {a.scenario}", header_style="bold")
    table.add_column("measure")
    table.add_column(label_a, justify="right")
    table.add_column(label_b, justify="right")
    table.add_column("change", justify="right")
    for measure, va, vb, delta in diff_rows(a, b):
        table.add_row(measure, va, vb, f"[bold]{delta}[/]" if delta else "")
    return table


def print_run(
    console: Console, entries: Sequence[Entry], start: float, s: Summary, *, verified: bool,
    timeline: bool = True,
) -> None:  # fmt: skip
    if timeline:
        console.print(timeline_table(entries, start))
    if s.incidents:
        console.print(incidents_table(s))
        console.print(asked_table(entries, start))
    console.print(summary_table(s, verified=verified))
