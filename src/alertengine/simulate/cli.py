"""``alertengine simulate scenario.toml``: run a scenario on virtual time and report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from alertengine.cli_common import stdout_console
from alertengine.simulate.chart import chart_svg
from alertengine.simulate.console import diff_rows, diff_table, print_run
from alertengine.simulate.run import Outcome, run_scenario
from alertengine.simulate.scenario import ScenarioError, load_policy_file, load_scenario

app = typer.Typer(add_completion=False)


def _write_ledger(path: Path, outcome: Outcome) -> None:
    path.write_text("".join(e.to_json() + "\n" for e in outcome.result.entries), encoding="utf-8")


def _write_chart(path: Path, outcome: Outcome) -> None:
    r = outcome.result
    svg = chart_svg(
        r.samples,
        r.entries,
        start=r.start,
        duration=r.scenario.duration,
        policy=r.policy,
        title=r.scenario.name,
    )
    path.write_text(svg, encoding="utf-8")


@app.command("simulate")
def simulate_cmd(
    scenario: Path = typer.Argument(..., help="scenario TOML file (see docs/simulator.md)"),
    policy: Path | None = typer.Option(
        None, "--policy", help="also run under this policy file and compare (what if)"
    ),
    ledger_out: Path | None = typer.Option(None, "--ledger-out", help="write the ledger (JSONL)"),
    chart_out: Path | None = typer.Option(None, "--chart-out", help="write an SVG chart"),
    as_json: bool = typer.Option(False, "--json", help="print a machine-readable summary"),
    timeline: bool = typer.Option(True, "--timeline/--no-timeline", help="print the timeline"),
) -> None:
    """Run a scenario through the real policy, pipeline, authorizer, notifier and executor
    on a virtual clock, and show what the process did."""
    console = stdout_console()  # piped: as wide as the rows, ids whole
    try:
        sc = load_scenario(scenario)
        overrides = load_policy_file(policy) if policy is not None else None
    except ScenarioError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    base = asyncio.run(run_scenario(sc))
    other = asyncio.run(run_scenario(sc, overrides)) if overrides is not None else None
    if ledger_out is not None:
        _write_ledger(ledger_out, base)
    if chart_out is not None:
        _write_chart(chart_out, base)
    if as_json:
        doc: dict[str, Any] = base.to_dict()
        if other is not None:
            doc = {
                "scenario": sc.name,
                "a": base.to_dict(),
                "b": other.to_dict(),
                "diff": [
                    {"measure": m, "a": a, "b": b, "change": d}
                    for m, a, b, d in diff_rows(base.summary, other.summary)
                ],
            }
        typer.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print_run(
            console,
            base.result.entries,
            base.result.start,
            base.summary,
            verified=base.verified,
            timeline=timeline and other is None,
        )
        if other is not None:
            console.print(
                diff_table(base.summary, other.summary, "scenario policy", f"+ {policy.name}")
                if policy is not None
                else ""
            )
        if ledger_out is not None:
            console.print(f"ledger: {ledger_out} ({len(base.result.entries)} entries)")
        if chart_out is not None:
            console.print(f"chart: {chart_out}")
    if not base.verified or (other is not None and not other.verified):
        raise typer.Exit(1)
