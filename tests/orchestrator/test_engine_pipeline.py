"""The engine and pipeline on the in-memory ledger and a virtual clock: policy drives stages."""

from __future__ import annotations

import asyncio

import pytest

from alertengine.clock import VirtualClock
from alertengine.engine import Change, IncidentEngine, TransitionRefused
from alertengine.incidents import Stage, fold
from alertengine.ledger import LedgerQuery
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.orchestrator.pipeline import Pipeline, Target
from alertengine.policy import HealthSnapshot, Policy

KEY = b"ledger-key-for-tests-0123456789ab"
T = Target("acme", "checkout", "restart workers")


def make(policy: Policy | None = None):
    clock = VirtualClock()
    ledger = MemoryLedgerStore(KEY)
    p = policy or Policy()
    engine = IncidentEngine(ledger, clock, lambda _t: p)
    return clock, ledger, engine


def slow(clock: VirtualClock) -> HealthSnapshot:
    return HealthSnapshot(
        observed_at=clock.now(),
        score=35.0,
        status="critical",
        p95_ms=2800.0,
        error_rate=0.0,
        sample_size=400,
    )


def healthy(clock: VirtualClock) -> HealthSnapshot:
    return HealthSnapshot(
        observed_at=clock.now(),
        score=97.0,
        status="ok",
        p95_ms=90.0,
        error_rate=0.0,
        sample_size=400,
    )


async def entries(ledger: MemoryLedgerStore, tenant: str = "acme"):
    return await ledger.read(LedgerQuery(tenant_id=tenant))


async def test_latency_outage_opens_one_incident_and_policy_recovers_it():
    clock, ledger, engine = make()
    validated: list[str] = []

    async def on_validated(s):
        validated.append(s.incident_id)

    pipe = Pipeline(engine, clock, on_validated=on_validated)
    for _ in range(3):
        await pipe.observe(T, slow(clock))
        await clock.advance(5)
    states = fold(await entries(ledger))
    assert len(states) == 1
    (state,) = states.values()
    assert state.stage is Stage.VALIDATED and validated == [state.incident_id]
    assert [h.actor for h in state.history] == ["policy", "orchestrator", "policy"]
    for _ in range(Policy().recover_polls):
        await pipe.observe(T, healthy(clock))
        await clock.advance(5)
    state = fold(await entries(ledger))[f"acme/{state.incident_id}"]
    assert state.stage is Stage.RECOVERED and state.history[-1].actor == "policy"
    assert (await ledger.verify("acme")).ok
    # The live view equals a replay of the ledger.
    assert await engine.get("acme", state.incident_id) == state


async def test_concurrent_opens_make_exactly_one_incident():
    clock, ledger, engine = make()
    results = await asyncio.gather(
        *(engine.open("acme", "checkout", reason="r", snapshot={}) for _ in range(50))
    )
    assert sum(created for _, created in results) == 1
    assert len({s.incident_id for s, _ in results}) == 1
    # Two engines (think: two replicas) on one ledger still open only one.
    other = IncidentEngine(ledger, clock, lambda _t: Policy())
    s2, created2 = await other.open("acme", "checkout", reason="r", snapshot={})
    assert not created2 and s2.incident_id == results[0][0].incident_id


async def test_a_replica_that_loses_the_validate_race_sends_no_links():
    """Two replicas on one ledger decide VALIDATED from the same PROPOSED state; the one
    whose compare-and-append loses must not notify (it would send a second set of links)."""
    clock, ledger, engine = make()
    winner = IncidentEngine(ledger, clock, lambda _t: Policy())

    class Raced(IncidentEngine):
        raced = False

        async def transition(self, tenant_id, incident_id, change, **kw):  # type: ignore[no-untyped-def]
            if change.target is Stage.VALIDATED and not self.raced:
                self.raced = True  # the other replica appends between our read and our append
                await winner.transition(tenant_id, incident_id, change, expect_stage=Stage.PROPOSED)
            return await super().transition(tenant_id, incident_id, change, **kw)

    loser = Raced(ledger, clock, lambda _t: Policy())
    notified: list[str] = []

    async def on_validated(s):  # type: ignore[no-untyped-def]
        notified.append(s.incident_id)

    pipe = Pipeline(loser, clock, on_validated=on_validated)
    state = None
    for _ in range(3):
        state = await pipe.observe(T, slow(clock))
        await clock.advance(5)
    assert loser.raced and state is not None and state.stage is Stage.VALIDATED
    assert notified == []  # the winner's pipeline notifies, not this one
    es = await entries(ledger)
    assert [e.stage for e in es if e.kind == "transition"] == ["DETECTED", "PROPOSED", "VALIDATED"]
    assert [e.reason for e in es if e.kind == "refused"] == ["incident is VALIDATED, not PROPOSED"]


async def test_refused_transition_is_ledgered_and_changes_nothing():
    clock, ledger, engine = make()
    state, _ = await engine.open("acme", "api", reason="r", snapshot={})
    with pytest.raises(TransitionRefused):
        await engine.transition(
            "acme", state.incident_id, Change(Stage.AUTHORIZED, "diagnosis:claude", "trust me")
        )
    with pytest.raises(TransitionRefused):
        await engine.transition(
            "acme", state.incident_id, Change(Stage.EXECUTED, "orchestrator", "skip ahead")
        )
    es = await entries(ledger)
    assert [e.kind for e in es] == ["transition", "refused", "refused"]
    assert es[1].actor == "diagnosis:claude" and "may not" in es[1].reason
    assert (await engine.get("acme", state.incident_id)).stage is Stage.DETECTED  # type: ignore[union-attr]


async def test_error_burst_with_normal_latency_opens():
    clock, ledger, engine = make()
    pipe = Pipeline(engine, clock)
    snap = HealthSnapshot(
        observed_at=0, score=78.0, status="warning", p95_ms=80.0, error_rate=0.25, sample_size=300
    )
    state = await pipe.observe(T, snap)
    assert state is not None and state.stage is Stage.VALIDATED  # 25 % errors validates at once


async def test_unreachable_target_opens_after_streak_and_is_ledgered():
    clock, ledger, engine = make()
    pipe = Pipeline(engine, clock)
    down = HealthSnapshot(observed_at=0, reachable=False, detail="ConnectError")
    for i in range(Policy().unreachable_polls_to_open):
        state = await pipe.observe(T, down)
        assert (state is None) == (i + 1 < Policy().unreachable_polls_to_open)
    es = await entries(ledger)
    assert es[0].stage == "DETECTED" and "unreachable" in es[0].reason


async def test_executed_incident_resolves_on_health_or_reproposes_after_grace():
    clock, ledger, engine = make()
    pipe = Pipeline(engine, clock)
    state = await pipe.observe(T, slow(clock))
    state = await pipe.observe(T, slow(clock))
    assert state is not None and state.stage is Stage.VALIDATED
    iid = state.incident_id
    await engine.transition("acme", iid, Change(Stage.AUTHORIZED, "engineer:web:alice", "ok"))
    await engine.transition("acme", iid, Change(Stage.EXECUTED, "orchestrator", "200"))
    await clock.advance(Policy().post_execution_grace_s + 1)
    state = await pipe.observe(T, slow(clock))
    assert state is not None and state.stage in (Stage.PROPOSED, Stage.VALIDATED)
    assert any(h.stage is Stage.PROPOSED and h.actor == "policy" for h in state.history)
