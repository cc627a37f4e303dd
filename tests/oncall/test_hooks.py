"""The escalation order the notifier gets: on call first, the chain's order otherwise, stable
through one approval round even when a hand-off happens in the middle of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from alertengine.clock import VirtualClock
from alertengine.incidents import IncidentState, Stage, StageChange
from alertengine.oncall.hooks import OnCallHooks, person_of, reorder
from alertengine.oncall.registry import OnCallRegistry
from alertengine.oncall.schedule import schedule_from_dict
from alertengine.stores import MemoryStateStore


@dataclass(frozen=True)
class R:
    identity: str
    channel: str = "telegram"


def test_person_of_reads_both_actor_shapes() -> None:
    assert person_of("person:alice") == "alice"
    assert person_of("engineer:telegram:alice") == "alice"
    assert person_of("orchestrator") == "orchestrator"


@given(
    chain=st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=7, unique=True),
    wanted=st.lists(st.sampled_from("abcdefghij"), max_size=5, unique=True),
)
def test_reorder_puts_the_wanted_first_and_keeps_the_rest_in_order(
    chain: list[str], wanted: list[str]
) -> None:
    levels = [[R(f"person:{p}"), R(f"person:{p}", "slack")] for p in chain]
    out = [person_of(lv[0].identity) for lv in reorder(levels, wanted)]
    assert sorted(out) == sorted(chain)  # nobody lost, nobody twice
    first = [p for p in wanted if p in chain]
    assert out[: len(first)] == first
    assert out[len(first) :] == [p for p in chain if p not in first]
    assert all(len(lv) == 2 for lv in reorder(levels, wanted))  # fall-overs stay together


async def test_order_is_taken_when_the_incident_was_validated() -> None:
    clock = VirtualClock(datetime(2027, 1, 4, 8, 50, tzinfo=timezone.utc).timestamp())

    async def record(*_: Any) -> None:
        return None

    reg = OnCallRegistry(MemoryStateStore(clock), record, clock, check_people=False)
    await reg.set_schedule("acme", schedule_from_dict({
        "name": "p", "timezone": "UTC",
        "layers": [{"people": ["bob", "carol"], "every": "daily", "start": "2027-01-03T09:00"}],
    }), actor="t")  # fmt: skip
    hooks = OnCallHooks(reg, engine=None, clock=clock)
    validated = StageChange(Stage.VALIDATED, "policy", clock.now(), 3, "")
    state = IncidentState("acme", "inc-1", "checkout", Stage.VALIDATED, clock.now(),
                          clock.now(), "v", 3, history=(validated,))  # fmt: skip
    levels = [[R("engineer:telegram:alice")], [R("engineer:telegram:bob")],
              [R("engineer:telegram:carol")]]  # fmt: skip
    first = await hooks.order_levels(state, levels)
    await clock.advance(20 * 60)  # 09:10: carol's day began at 09:00
    later = await hooks.order_levels(state, levels)
    assert [lv[0].identity for lv in first] == [lv[0].identity for lv in later]
    assert first[0][0].identity == "engineer:telegram:bob"


async def test_a_restart_neither_repeats_a_hold_nor_misses_its_end() -> None:
    """The hold is read back from the ledger: a new process under the same silence adds no
    second ``held``; one that starts after the silence ended ledgers ``resumed``."""
    from alertengine.engine import IncidentEngine
    from alertengine.ledger import LedgerQuery
    from alertengine.ledger.memory import MemoryLedgerStore
    from alertengine.oncall.silences import parse_matcher
    from alertengine.policy import Policy

    clock = VirtualClock(datetime(2027, 1, 4, 8, 50, tzinfo=timezone.utc).timestamp())
    ledger = MemoryLedgerStore(b"ledger-key-for-tests-0123456789ab")
    engine = IncidentEngine(ledger, clock, lambda _t: Policy())

    async def record(*_: Any) -> None:
        return None

    reg = OnCallRegistry(MemoryStateStore(clock), record, clock, check_people=False)
    state, _ = await engine.open("acme", "checkout", reason="slow", snapshot={})
    await reg.add_silence(
        "acme", [parse_matcher("service=checkout")], starts_at=None, ends_at=clock.now() + 600,
        created_by="dana", comment="migration", actor="operator:dana",
    )  # fmt: skip

    async def silenced() -> list[str]:
        q = LedgerQuery(
            tenant_id="acme", incident_id=state.incident_id, kinds=frozenset({"silenced"})
        )
        return [e.decision for e in await ledger.read(q)]

    assert await OnCallHooks(reg, engine, clock).held(state)
    assert await OnCallHooks(reg, engine, clock).held(state)  # a restart, same silence
    assert await silenced() == ["held"]
    await clock.advance(601)  # the silence ends while nobody is running
    assert not await OnCallHooks(reg, engine, clock).held(state)
    assert not await OnCallHooks(reg, engine, clock).held(state)
    assert await silenced() == ["held", "resumed"]
