"""The governance simulator takes schedules and silences into account."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.simulate.run import run_scenario
from alertengine.simulate.scenario import ScenarioError, parse_scenario, read_toml

SATURDAY = (
    Path(__file__).resolve().parents[2] / "examples" / "scenarios" / ("saturday-night-on-call.toml")
)


def asked_order(outcome) -> list[tuple[float, str]]:  # type: ignore[no-untyped-def]
    return [(r["t"], r["who"]) for r in outcome.to_dict()["asked"] if r["what"] == "asked"]


async def test_saturday_night_asks_whoever_is_on_call_first_then_the_chain() -> None:
    raw = read_toml(SATURDAY)
    o = await run_scenario(parse_scenario(raw))
    asked = asked_order(o)
    who = [w for _, w in asked]
    assert who[:3] == ["person:carol", "person:alice", "person:bob"]
    approved = [r for r in o.to_dict()["asked"] if r["what"] == "approved"]
    assert approved[0]["who"] == "person:carol" and approved[0]["t"] >= 3600
    # The same night without the schedule: the chain's order, alice first.
    del raw["schedules"]
    plain = await run_scenario(parse_scenario(raw))
    assert asked_order(plain)[0][1] == "person:alice"
    assert o.verified and plain.verified


async def test_a_silence_holds_paging_until_it_ends_then_asks_at_the_next_step() -> None:
    raw = read_toml(SATURDAY)
    raw["silences"] = [{"matchers": ["service=checkout"], "from": "0s", "to": "30m"}]
    o = await run_scenario(parse_scenario(raw))
    asked = asked_order(o)
    step = o.result.scenario.step
    assert asked and 30 * 60 <= asked[0][0] <= 30 * 60 + step
    kinds = [r["what"] for r in o.to_dict()["asked"]]
    assert kinds[0] == "silence held" and "silence resumed" in kinds


def test_a_schedule_naming_an_unknown_approver_is_refused() -> None:
    raw = read_toml(SATURDAY)
    raw["schedules"][0]["layers"][0]["people"] = ["carol", "mallory"]
    with pytest.raises(ScenarioError, match="mallory"):
        parse_scenario(raw)


def test_the_cli_report_shows_who_was_asked_when() -> None:
    r = CliRunner().invoke(app, ["simulate", str(SATURDAY), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["asked"][0]["who"] == "person:carol"
    text = CliRunner().invoke(app, ["simulate", str(SATURDAY), "--no-timeline"]).output
    assert "Who was asked when" in text
