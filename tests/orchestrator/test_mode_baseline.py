"""Degraded mode is ledgered and returns by itself; baselines learn only from healthy polls."""

from __future__ import annotations

import httpx

from alertengine.clock import VirtualClock
from alertengine.ledger import LedgerQuery
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.mode import Mode, compute_mode
from alertengine.orchestrator.service import SYSTEM_TENANT, Orchestrator
from alertengine.policy import HealthSnapshot
from alertengine.stores import MemoryStateStore

CFG = parse_config({"tenants": [{"id": "t"}], "targets": [{"tenant": "t", "service": "api"}]})


def make():
    clock = VirtualClock()
    ledger = MemoryLedgerStore(b"k" * 32)
    store = MemoryStateStore(clock)
    orch = Orchestrator(CFG, ledger=ledger, store=store, clock=clock, http=httpx.AsyncClient())
    return clock, ledger, store, orch


def test_compute_mode():
    assert compute_mode({"ledger": True, "store": True}) == (Mode.NORMAL, [])
    assert compute_mode({"ledger": True, "provider:slack": False})[0] is Mode.DEGRADED
    assert compute_mode({"ledger": False, "provider:slack": False}) == (
        Mode.EMERGENCY,
        ["ledger", "provider:slack"],
    )


async def test_mode_changes_are_ledgered_and_return_to_normal():
    _, ledger, _, orch = make()
    await orch.set_component("provider:telegram", False, "HTTP 500")
    assert orch.mode is Mode.DEGRADED
    await orch.set_component("provider:telegram", False, "HTTP 500")  # no duplicate entry
    await orch.set_component("provider:telegram", True)
    assert orch.mode is Mode.NORMAL
    entries = await ledger.read(LedgerQuery(tenant_id=SYSTEM_TENANT))
    assert [(e.kind, e.decision) for e in entries] == [("mode", "DEGRADED"), ("mode", "NORMAL")]
    assert entries[0].data["components"] == ["provider:telegram"]
    assert (await ledger.verify(SYSTEM_TENANT)).ok


async def test_baseline_learns_only_from_healthy_and_persists():
    clock, _, store, orch = make()
    t = CFG.targets[0]
    healthy = HealthSnapshot(
        observed_at=clock.now(),
        score=96,
        status="ok",
        p95_ms=100.0,
        error_rate=0.0,
        sample_size=500,
    )
    sick = HealthSnapshot(
        observed_at=clock.now() + 1,
        score=20,
        status="critical",
        p95_ms=5000.0,
        error_rate=0.4,
        sample_size=500,
    )
    await orch.observe(t, healthy)
    await orch.observe(t, sick)
    b = orch.baselines[("t", "api")]
    assert b.samples == 1 and b.p95_ms == 100.0  # the incident taught it nothing
    doc = await store.get("baselines", "t/api")
    assert doc is not None and doc["p95_ms"] == 100.0
    # A new orchestrator (a restart) remembers the service's normal.
    _, _, _, fresh = make()
    fresh.store = store
    await fresh.observe(t, sick)
    assert fresh.baselines[("t", "api")].p95_ms == 100.0
