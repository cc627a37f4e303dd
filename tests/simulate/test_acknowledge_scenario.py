"""The simulator runs acknowledge through the real Acknowledger and Notifier: an "I'm on it"
holds escalation for ``ack_timeout_s`` (not ``escalate_after_s``), never approves, and the
escalation resumes when nothing was decided."""

from __future__ import annotations

from pathlib import Path

from alertengine.simulate.run import run_scenario
from alertengine.simulate.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "examples/scenarios/acknowledged-then-silent.toml"


async def test_ack_holds_escalation_until_the_timeout_then_bob_approves() -> None:
    o = await run_scenario(load_scenario(SCENARIO))
    start = o.result.start
    (inc,) = o.summary.incidents
    entries = [e for e in o.result.entries if e.incident_id == inc.incident_id]
    delivered = [e for e in entries if e.kind == "delivery" and e.decision == "delivered"]
    alice_at = delivered[0].timestamp - start
    acks = [(e.actor, e.decision, e.timestamp - start) for e in entries if e.kind == "ack"]
    assert acks[0][:2] == ("person:alice", "acknowledged") and acks[0][2] == alice_at + 60
    assert acks[1][:2] == ("policy", "expired")
    assert acks[1][2] >= acks[0][2] + 1200  # held for ack_timeout_s, not escalate_after_s
    escalations = [e.timestamp - start for e in entries if e.kind == "escalation"]
    assert escalations and escalations[0] >= acks[1][2]  # nobody else woken before that
    authorized = [e for e in entries if e.kind == "transition" and e.stage == "AUTHORIZED"]
    assert [e.actor for e in authorized] == ["person:bob"]  # the ack approved nothing
    assert o.verified
