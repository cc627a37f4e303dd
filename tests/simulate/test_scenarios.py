"""The three shipped scenarios, run through the real control plane on virtual time."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.ledger.chain import Entry, verify_chain
from alertengine.simulate.chart import chart_svg
from alertengine.simulate.run import Outcome, run_scenario
from alertengine.simulate.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
NOBODY = SCENARIOS / "database-errors-nobody-available.toml"
LATENCY = SCENARIOS / "latency-spike-approved.toml"
DOWN = SCENARIOS / "flapping-or-webhook-down.toml"


async def _run(path: Path) -> Outcome:
    return await run_scenario(load_scenario(path))


def _stages(o: Outcome, incident_id: str) -> list[tuple[str, float]]:
    return [
        (str(e.stage), e.timestamp - o.result.start)
        for e in o.result.entries
        if e.kind == "transition" and e.incident_id == incident_id
    ]


async def test_nobody_available_reproposes_then_expires_as_policy_says() -> None:
    o = await _run(NOBODY)
    p = o.result.policy
    assert (p.token_ttl_s, p.escalate_after_s, p.expiry_action) == (900, 300, "repropose")
    first = o.summary.incidents[0]
    onset = 300.0  # the error rate jumps at 5 min
    assert first.detected == onset  # 20 % errors: detected on the first poll
    validated = dict(_stages(o, first.incident_id))["VALIDATED"]
    assert validated == onset  # 20 % >= validate_error_rate: validated at once
    # Alice is notified at validation; nobody answers, so Bob gets his own link after
    # escalate_after_s. Each link restarts the token clock (the Authorizer expires on the
    # latest link), so the reproposal comes a TTL after Bob's link, the expiry a TTL later.
    assert first.escalations == 1
    assert first.reproposals == 1
    assert first.expirations == 1
    assert first.final_stage == "EXPIRED"
    assert first.ended == validated + p.escalate_after_s + 2 * p.token_ttl_s
    assert first.time_to_authorize is None
    # Still degraded: policy opens a second incident, which recovers when the errors stop.
    second = o.summary.incidents[1]
    assert second.detected == first.ended + 5
    assert second.final_stage == "RECOVERED"
    assert second.ended == 45 * 60 + p.recover_polls * 5 - 5
    # The approvers come back at 65 min + reaction and find their links expired.
    assert [c["problem"] for c in o.result.clicks] == ["expired", "expired"]
    assert o.summary.total("refusals") == 2
    assert o.summary.final_stages == {"EXPIRED": 1, "RECOVERED": 1}
    assert o.verified


async def test_latency_spike_approved_webhook_retried_then_resolved() -> None:
    o = await _run(LATENCY)
    (inc,) = o.summary.incidents
    stages = _stages(o, inc.incident_id)
    assert [s for s, _ in stages] == [
        "DETECTED",
        "PROPOSED",
        "VALIDATED",
        "AUTHORIZED",
        "EXECUTED",
        "RESOLVED",
    ]
    assert inc.detected == 600  # P95 2800 ms >= open_p95_ms, errors normal
    assert inc.authorized == 600 + 90  # Alice's reaction delay
    attempts = [e for e in o.result.entries if e.kind == "execution"]
    assert [e.decision for e in attempts] == ["attempt_failed", "attempt_failed", "succeeded"]
    # Backoff on virtual time: 2 s, then 4 s.
    assert [e.timestamp - o.result.start for e in attempts] == [690, 692, 696]
    assert inc.webhook_attempts == 3 and inc.dead_lettered == 0
    assert inc.final_stage == "RESOLVED"
    assert o.result.webhook_calls == 3
    assert o.verified


async def test_channel_down_falls_over_and_webhook_down_dead_letters() -> None:
    o = await _run(DOWN)
    (inc,) = o.summary.incidents
    p = o.result.policy
    assert inc.detected == 180 + (p.unreachable_polls_to_open - 1) * 5
    deliveries = [e for e in o.result.entries if e.kind == "delivery"]
    assert [(e.data["channel"], e.decision) for e in deliveries] == [
        ("telegram", "failed"),
        ("telegram", "failed"),
        ("telegram", "failed"),
        ("slack", "delivered"),
    ]
    assert inc.authorized is not None
    assert inc.webhook_attempts == p.webhook_attempts
    assert inc.dead_lettered == 1
    assert inc.final_stage == "WEBHOOK_FAILED"
    (dead,) = o.result.dead_letters
    assert dead["incident_id"] == inc.incident_id and dead["last_error"] == "ConnectError"
    assert o.verified


@pytest.mark.parametrize("path", [NOBODY, LATENCY, DOWN], ids=lambda p: p.stem)
async def test_deterministic_and_verifiable(path: Path, tmp_path: Path) -> None:
    a, b = await _run(path), await _run(path)
    assert [e.hash for e in a.result.entries] == [e.hash for e in b.result.entries]
    assert a.summary.to_dict() == b.summary.to_dict()
    # Written out and read back, the ledger still verifies, and tampering is caught.
    lines = [e.to_json() for e in a.result.entries]
    back = [Entry.from_dict(json.loads(x)) for x in lines]
    assert verify_chain(a.result.scenario.tenant, back).ok
    forged = [*back]
    forged[0] = Entry.from_dict({**json.loads(lines[0]), "actor": "engineer:web:mallory"})
    assert not verify_chain(a.result.scenario.tenant, forged).ok


async def test_what_if_policy_difference() -> None:
    sc = load_scenario(NOBODY)
    base = await run_scenario(sc)
    # What if an unanswered link simply expired instead of being proposed again?
    plain = await run_scenario(sc, {"expiry_action": "expire"})
    p = plain.result.policy
    assert p.version != base.result.policy.version
    first = plain.summary.incidents[0]
    assert first.reproposals == 0 and first.expirations == 1
    assert first.ended == 300 + p.escalate_after_s + p.token_ttl_s
    assert base.summary.incidents[0].ended == first.ended + p.token_ttl_s
    assert plain.summary.total("reproposals") == base.summary.total("reproposals") - 1
    assert plain.verified


async def test_chart_is_well_formed_svg_with_expected_series() -> None:
    o = await _run(LATENCY)
    r = o.result
    svg = chart_svg(r.samples, r.entries, start=r.start, duration=2400, policy=r.policy)
    root = ET.fromstring(svg)  # noqa: S314 - our own output
    ns = {"s": "http://www.w3.org/2000/svg"}
    lines = root.findall(".//s:polyline[@class='score']", ns)
    assert [x.get("data-service") for x in lines] == ["checkout"]
    points = lines[0].get("points", "").split()
    assert len(points) == len(r.samples["checkout"]) == 2400 // 5 + 1
    names = {x.get("data-name") for x in root.findall(".//s:line[@class='threshold']", ns)}
    assert names == {"min_score_to_alert", "recover_score", "validate_score"}
    bands = {
        x.get("class") for x in root.findall(".//s:rect", ns) if "stage" in (x.get("class") or "")
    }
    assert {"stage stage-VALIDATED", "stage stage-AUTHORIZED", "stage stage-EXECUTED"} <= bands
    markers = {
        x.get("class")
        for x in root.findall(".//s:circle", ns)
        if (x.get("class") or "").startswith("marker")
    }
    assert markers == {"marker marker-AUTHORIZED", "marker marker-RESOLVED"}


def test_cli_outputs(tmp_path: Path) -> None:
    runner = CliRunner()
    ledger, chart = tmp_path / "ledger.jsonl", tmp_path / "chart.svg"
    res = runner.invoke(
        app,
        ["simulate", str(DOWN), "--json", "--ledger-out", str(ledger), "--chart-out", str(chart)],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["ledger_verified"] is True
    assert doc["totals"]["dead_lettered"] == 1
    assert doc["final_stages"] == {"WEBHOOK_FAILED": 1}
    entries = [Entry.from_dict(json.loads(x)) for x in ledger.read_text().splitlines()]
    assert len(entries) == doc["ledger_entries"] and verify_chain("shop", entries).ok
    ET.fromstring(chart.read_text())  # noqa: S314 - our own output

    res = runner.invoke(app, ["simulate", str(NOBODY), "--no-timeline"])
    assert res.exit_code == 0, res.output
    assert "expirations" in res.output and "ledger verifies" in res.output


def test_cli_what_if_and_errors(tmp_path: Path) -> None:
    other = tmp_path / "plain-expiry.toml"
    other.write_text('[policy]\nexpiry_action = "expire"\n')
    runner = CliRunner()
    res = runner.invoke(app, ["simulate", str(NOBODY), "--policy", str(other), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    diff = {d["measure"]: d for d in doc["diff"]}
    assert diff["reproposals"]["a"] == "1" and diff["reproposals"]["b"] == "0"
    assert diff["reproposals"]["change"] == "-1"
    assert diff["time to end of incident"]["change"] == "-900 s"
    res = runner.invoke(app, ["simulate", str(NOBODY), "--policy", str(other)])
    assert res.exit_code == 0 and "What if" in res.output

    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\ntoken_ttl_s = -1\n")
    res = runner.invoke(app, ["simulate", str(NOBODY), "--policy", str(bad)])
    assert res.exit_code == 2 and "token_ttl_s" in res.output
