"""The simulator's phone: a call through the real status and keypad handlers (PhoneActions) and
the real Notifier. Nobody picks up: each unanswered call falls over a ring time after it was
placed, not ``escalate_after_s`` later. Somebody picks up: they press 1 (acknowledge), and
nothing falls over."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from alertengine.simulate.run import run_scenario
from alertengine.simulate.runner import RING_S
from alertengine.simulate.scenario import load_scenario, parse_scenario, read_toml

SCENARIO = Path(__file__).resolve().parents[2] / "examples/scenarios/nobody-picks-up.toml"


def rows(o: Any) -> list[tuple[float, str, str, str]]:
    """(t, kind, decision, who) of the notification side, in ledger order."""
    out = []
    for e in o.result.entries:
        if e.kind in ("call", "escalation", "ack") or (
            e.kind == "delivery" and e.decision in ("delivered", "fallover")
        ):
            key = "person" if e.kind == "escalation" else "identity"
            who = str(e.data.get(key, ""))
            out.append((e.timestamp - o.result.start, e.kind, e.decision, who))
    return out


async def test_unanswered_calls_fall_over_after_the_ring_not_the_escalation_delay() -> None:
    o = await run_scenario(load_scenario(SCENARIO))
    escalate_after_s = o.result.policy.escalate_after_s
    r = rows(o)
    called_alice = r[0][0]
    assert r[0][1:] == ("delivery", "delivered", "person:alice")
    # Her call rings out; her Telegram follows at that instant.
    assert r[1] == (called_alice + RING_S, "call", "no-answer", "")
    assert r[2] == (called_alice + RING_S, "delivery", "fallover", "person:alice")
    assert r[3] == (called_alice + RING_S, "delivery", "delivered", "person:alice")
    # The timer asks Bob (a call) escalate_after_s after Alice was first told ...
    (t_bob, kind, _, who) = r[4]
    assert (kind, who) == ("escalation", "person:bob")
    assert called_alice + escalate_after_s <= t_bob < called_alice + escalate_after_s + 10
    assert r[5][1:] == ("delivery", "delivered", "person:bob")
    # ... whose unanswered call asks Carol at once, not another escalate_after_s later.
    assert r[6] == (r[5][0] + RING_S, "call", "no-answer", "")
    assert r[7] == (r[5][0] + RING_S, "escalation", "level 2", "person:carol")
    assert r[8] == (r[5][0] + RING_S, "delivery", "delivered", "person:carol")
    (inc,) = o.summary.incidents
    assert inc.approvers == ("person:carol",) and inc.final_stage == "RESOLVED"
    assert inc.escalations == 2 and inc.delivery_failures == 0
    assert o.verified
    # The made-up numbers the calls went to never reach the ledger.
    dump = "\n".join(e.to_json() for e in o.result.entries)
    assert "+1555" not in dump


async def test_an_answered_call_acknowledges_and_falls_over_to_nobody() -> None:
    raw = copy.deepcopy(read_toml(SCENARIO))
    for a in raw["approvers"]:
        if a["id"] == "alice":
            a["unavailable"] = []  # she is awake: she picks up and presses 1
    o = await run_scenario(parse_scenario(raw))
    calls = [e.decision for e in o.result.entries if e.kind == "call"]
    # (Later, her acknowledgement expires unanswered by a decision: Bob's call rings out.)
    assert calls[:3] == ["in-progress", "acknowledged", "completed"]
    acks = [(e.actor, e.decision, e.data.get("via")) for e in o.result.entries if e.kind == "ack"]
    assert acks[0] == ("person:alice", "acknowledged", "voice")
    fallovers = [e.data["identity"] for e in o.result.entries if e.decision == "fallover"]
    assert "person:alice" not in fallovers  # she answered: reached
    told = {
        (e.data.get("identity"), e.data.get("channel"))
        for e in o.result.entries
        if e.kind == "delivery" and e.decision == "delivered"
    }
    assert ("person:alice", "voice") in told and ("person:alice", "telegram") not in told
    assert o.verified
