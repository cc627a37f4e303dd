"""The store's copy of counted refusals: kept while a process lives, ledgered once when it
is certainly dead or silent too long, never while it may still be running."""

from __future__ import annotations

from dataclasses import replace

from alertengine.clock import VirtualClock
from alertengine.engine import IncidentEngine
from alertengine.execute.instance import Instance
from alertengine.ledger import LedgerQuery
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.policy import Policy
from alertengine.refusals.budget import Limits, RefusalKey
from alertengine.refusals.gate import RefusalGate
from alertengine.refusals.keeper import COUNTS, CountKeeper
from alertengine.stores import MemoryStateStore

KEY = RefusalKey("_system", "/twilio/whatsapp", "missing or invalid X-Twilio-Signature")


def process(
    clock: VirtualClock, ledger: MemoryLedgerStore, store: MemoryStateStore, me: Instance
) -> tuple[RefusalGate, CountKeeper]:
    """One orchestrator process's gate and keeper (per_window 2, a window of an hour)."""
    engine = IncidentEngine(ledger, clock, lambda _t: Policy())
    gate = RefusalGate(engine.record, clock, Limits(per_window=2, window_s=3600.0))
    return gate, CountKeeper(gate, store, me, clock, stale_after_s=600.0)


async def refuse(gate: RefusalGate, times: int) -> None:
    for _ in range(times):
        await gate.record(
            KEY.reason, "_system", None, route=KEY.route, kind="refused", actor="anonymous"
        )


async def counted(ledger: MemoryLedgerStore) -> int:
    es = await ledger.read(LedgerQuery(tenant_id="_system"))
    return sum(int(e.data["count"]) if e.data.get("coalesced") else 1 for e in es)


async def test_a_dead_process_count_is_ledgered_once_and_a_live_one_never() -> None:
    clock, ledger = VirtualClock(), MemoryLedgerStore(b"k" * 32)
    store = MemoryStateStore(clock)
    me = Instance.current({})
    # Another machine: nothing here can tell whether it runs, only its silence can.
    remote = replace(Instance.current({}), host="elsewhere", instance="remote1")
    gate, keeper = process(clock, ledger, store, remote)
    await refuse(gate, 25)
    await keeper.save()
    assert await counted(ledger) == 2  # 23 counted, in the store's copy only

    _, living = process(clock, ledger, store, me)
    _, other = process(clock, ledger, store, replace(me, instance="another"))
    assert await living.adopt() == 0  # it may still be running
    await clock.advance(599.0)
    assert await living.adopt() == 0
    await clock.advance(2.0)  # silent for 601 s: its copy is ledgered, by one process only
    assert await living.adopt() + await other.adopt() == 23
    assert await counted(ledger) == 25
    assert await store.list(COUNTS) == {}
    assert (await ledger.verify("_system")).ok


async def test_the_same_replica_restarted_takes_its_predecessors_count_at_once() -> None:
    clock, ledger = VirtualClock(), MemoryLedgerStore(b"k" * 32)
    store = MemoryStateStore(clock)
    old = Instance.current({"ALERTENGINE_REPLICA_ID": "orch-0"})
    gate, keeper = process(clock, ledger, store, old)
    await refuse(gate, 12)
    await keeper.save()
    new = replace(Instance.current({"ALERTENGINE_REPLICA_ID": "orch-0"}), instance="next")
    _, successor = process(clock, ledger, store, new)
    assert await successor.adopt() == 10
    assert await counted(ledger) == 12


async def test_a_graceful_process_leaves_no_copy() -> None:
    clock, ledger = VirtualClock(), MemoryLedgerStore(b"k" * 32)
    store = MemoryStateStore(clock)
    gate, keeper = process(clock, ledger, store, Instance.current({}))
    await refuse(gate, 9)
    await keeper.save()
    assert len(await store.list(COUNTS)) == 1
    await gate.flush_all()
    await keeper.save()
    assert await store.list(COUNTS) == {} and await counted(ledger) == 9
