"""Issue 10, health that never lies: hysteresis, a fenced mode-entry flush, blind targets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertengine.clock import VirtualClock
from alertengine.engine import Change
from alertengine.incidents import Stage
from alertengine.ledger import LedgerError, LedgerQuery
from alertengine.ledger.base import BAD_ENTRY
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.sqlite import SqliteLedgerStore
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.mode import RECOVER_AFTER_S, Components, Mode
from alertengine.orchestrator.poller import snapshot_from_health
from alertengine.orchestrator.service import SYSTEM_TENANT, Orchestrator
from alertengine.policy import HealthSnapshot, Policy, blindness, degradation
from alertengine.sdk.health_alerts import unavailable_report
from alertengine.stores import MemoryStateStore

CFG = parse_config({"tenants": [{"id": "t"}], "targets": [{"tenant": "t", "service": "api"}]})
KEY = b"k" * 32


def orchestrator(ledger: object) -> tuple[VirtualClock, Orchestrator]:
    clock = VirtualClock()
    orch = Orchestrator(
        CFG,
        ledger=ledger,  # type: ignore[arg-type]
        store=MemoryStateStore(clock),
        clock=clock,
        http=httpx.AsyncClient(),
    )
    return clock, orch


# -- hysteresis (pure) -----------------------------------------------------------------------


def test_a_flickering_outage_is_one_change_not_one_per_tick() -> None:
    """main's pattern on a full disk: a write fails, a read succeeds, every tick (42 entries)."""
    c = Components()
    changes = 0
    now = 0.0
    last_failure = now
    for _ in range(40):
        changes += c.report("ledger", False, "database or disk is full", now)
        last_failure = now
        now += 0.5
        changes += c.report("ledger", True, "", now)
        now += 0.5
    assert changes == 1 and not c.healthy()["ledger"]
    assert c.causes() == {"ledger": "database or disk is full"}
    # Space returns: back only after RECOVER_AFTER_S of good checks, and then once.
    back_at = None
    while back_at is None:
        now += 0.5
        if c.report("ledger", True, "", now):
            back_at = now
    assert back_at - last_failure >= RECOVER_AFTER_S and c.healthy()["ledger"]


@given(st.lists(st.tuples(st.booleans(), st.floats(0.01, 10.0)), max_size=60))
def test_a_critical_component_is_up_only_after_a_quiet_spell(reports: list[tuple[bool, float]]):
    c = Components(recover_after_s=5.0, recover_checks=2)
    now, last_fail, goods = 0.0, None, 0
    for ok, dt in reports:
        now += dt
        c.report("store", ok, "" if ok else "refused", now)
        if ok:
            goods += 1
        else:
            last_fail, goods = now, 0
        quiet = last_fail is None or (goods >= 2 and now - last_fail >= 5.0)
        assert c.healthy()["store"] is quiet


def test_optional_components_come_back_on_their_first_success() -> None:
    c = Components()
    assert c.report("provider:slack", False, "HTTP 500", 0.0)
    assert c.report("provider:slack", True, "", 0.1)  # a delivery went through: it works


# -- the mode-entry flush is fenced ------------------------------------------------------------


async def test_concurrent_health_reports_write_each_mode_entry_once(tmp_path: Path) -> None:
    """main: tasks reporting at once each flushed the pending entry (written twice), then
    one popped an entry it had not written, or an empty list (IndexError)."""
    ledger = SqliteLedgerStore(tmp_path / "l.db", key=KEY)
    try:
        _, orch = orchestrator(ledger)
        await asyncio.gather(
            *(orch.set_component(f"provider:p{i}", False, "HTTP 500") for i in range(8))
        )
        assert orch.mode is Mode.DEGRADED
        await asyncio.gather(*(orch.set_component(f"provider:p{i}", True) for i in range(8)))
        assert orch.mode is Mode.NORMAL
        modes = await ledger.read(LedgerQuery(tenant_id=SYSTEM_TENANT))
        assert [e.decision for e in modes] == ["DEGRADED", "NORMAL"]
        assert orch.status()["pending_system_entries"] == 0
        assert (await ledger.verify(SYSTEM_TENANT)).ok
    finally:
        await ledger.close()


async def test_a_write_check_failure_is_emergency_with_its_cause_until_writes_work(
    tmp_path: Path,
) -> None:
    ledger = SqliteLedgerStore(tmp_path / "l.db", key=KEY)
    try:
        clock, orch = orchestrator(ledger)
        await orch.tick()
        assert orch.mode is Mode.NORMAL
        await ledger.close()  # every write now fails
        for _ in range(5):
            await orch.tick()
            await clock.advance(1.0)
        status = orch.status()
        assert status["mode"] == "EMERGENCY" and status["mode_reasons"] == ["ledger"]
        assert "closed" in status["causes"]["ledger"]
        assert status["pending_system_entries"] == 1  # waits, in order, never dropped
    finally:
        await ledger.close()


# -- blind targets -----------------------------------------------------------------------------


def _blind_snapshot(now: float) -> HealthSnapshot:
    body = unavailable_report(now=now, service="api", window_s=60, reason="ConnectionError")
    return snapshot_from_health(body, observed_at=now)


def test_a_target_that_cannot_measure_itself_is_blind_not_down() -> None:
    s = _blind_snapshot(1.0)
    assert blindness(s) == "store_unavailable"
    d = degradation(Policy(), s)
    assert not d.yes and "blind" in d.reason
    unreachable = HealthSnapshot(observed_at=1.0, reachable=False, status="unknown")
    assert blindness(unreachable) is None  # not answering at all is an outage


async def test_a_blind_target_opens_no_incident_and_is_reported_until_it_sees_again() -> None:
    ledger = MemoryLedgerStore(KEY)
    clock, orch = orchestrator(ledger)
    t = CFG.targets[0]
    for _ in range(5):
        assert await orch.observe(t, _blind_snapshot(clock.now())) is None
        await clock.advance(1.0)
    assert await orch.engine.incidents("t") == []
    status = orch.status()
    [blind] = status["blind_targets"]
    assert blind["service"] == "api" and blind["reason"] == "store_unavailable"
    assert status["stats"]["blind_polls"] == {"t/api": 5}
    healthy = HealthSnapshot(
        observed_at=clock.now(), score=97, status="ok", error_rate=0.0, sample_size=500
    )
    await orch.observe(t, healthy)
    assert orch.status()["blind_targets"] == []
    assert await ledger.read(LedgerQuery(tenant_id="t")) == []


async def test_an_entry_that_cannot_be_sealed_is_a_bug_not_a_ledger_outage() -> None:
    ledger = MemoryLedgerStore(KEY)
    _, orch = orchestrator(ledger)
    with pytest.raises(LedgerError) as bad:
        await orch.engine.record("t", None, kind="note", actor="x", data={"x": float("nan")})
    assert bad.value.cause == BAD_ENTRY
    await orch.ledger_failed(bad.value)
    assert orch.mode is Mode.NORMAL and orch.components["ledger"]


async def test_a_blind_target_is_not_judged_after_its_recovery_ran() -> None:
    """Whether the recovery worked is unknown while the target is blind: no re-proposal."""
    ledger = MemoryLedgerStore(KEY)
    clock, orch = orchestrator(ledger)
    t = CFG.targets[0]
    sick = HealthSnapshot(
        observed_at=clock.now(), score=20, status="critical", error_rate=0.5, sample_size=500
    )
    state = await orch.observe(t, sick)
    assert state is not None and state.stage is Stage.VALIDATED
    iid = state.incident_id
    await orch.engine.transition("t", iid, Change(Stage.AUTHORIZED, "engineer:web:alice", "ok"))
    await orch.engine.transition("t", iid, Change(Stage.EXECUTED, "orchestrator", "200"))
    await clock.advance(Policy().post_execution_grace_s + 1)
    state = await orch.observe(t, _blind_snapshot(clock.now()))
    assert state is not None and state.stage is Stage.EXECUTED
    sick = HealthSnapshot(
        observed_at=clock.now(), score=20, status="critical", error_rate=0.5, sample_size=500
    )
    state = await orch.observe(t, sick)  # it sees again, still sick: now it is judged
    assert state is not None and state.stage in (Stage.PROPOSED, Stage.VALIDATED)
