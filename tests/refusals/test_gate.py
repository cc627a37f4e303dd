"""The gate over a real engine and ledger: what reaches the ledger, when summaries are written,
and that nothing is lost while the ledger refuses writes (the failure is injected at the
gate's one dependency, the record function; the engine and ledger under it are real)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from alertengine.clock import VirtualClock
from alertengine.engine import IncidentEngine
from alertengine.ledger import Entry, LedgerQuery, LedgerUnavailable
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.policy import Policy
from alertengine.refusals.budget import Limits, RefusalKey
from alertengine.refusals.gate import RefusalGate

KEY = RefusalKey("_system", "/slack/interactions", "invalid signature")


class Flaky:
    """engine.record, but the ledger is down while ``down`` is set."""

    def __init__(self, engine: IncidentEngine) -> None:
        self.engine, self.down = engine, False

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise LedgerUnavailable("the ledger is unreachable")
        return await self.engine.record(*args, **kwargs)


def setup(limits: Limits) -> tuple[RefusalGate, Flaky, MemoryLedgerStore, VirtualClock]:
    clock = VirtualClock()
    ledger = MemoryLedgerStore(b"k" * 32)
    flaky = Flaky(IncidentEngine(ledger, clock, lambda _t: Policy()))
    return RefusalGate(flaky, clock, limits), flaky, ledger, clock


async def entries(ledger: MemoryLedgerStore) -> list[Entry]:
    return list(await ledger.read(LedgerQuery(tenant_id="_system")))


def counted(es: list[Entry]) -> int:
    """Refusals an auditor can count: one per own entry, a summary's count for a summary."""
    return sum(int(e.data["count"]) if e.data.get("coalesced") else 1 for e in es)


async def test_a_slack_style_callback_is_gated_by_wrapping_it() -> None:
    gate, flaky, ledger, clock = setup(Limits(per_window=2, window_s=60.0))
    calls: list[tuple[str, str]] = []

    async def on_refused(path: str, why: str) -> None:  # the route's own ledgering
        calls.append((path, why))
        await flaky.engine.record(
            "_system", None, kind="refused", actor="anonymous", decision="refused", reason=why
        )

    gated = gate.wrap(on_refused)
    await asyncio.gather(*(gated(KEY.route, KEY.reason) for _ in range(40)))
    assert len(calls) == 2
    await gate.flush()  # the window is still open: nothing yet
    assert len(await entries(ledger)) == 2
    await clock.advance(60.0)
    await gate.flush()
    es = await entries(ledger)
    assert len(es) == 3 and counted(es) == 40
    assert es[-1].data["route"] == KEY.route and es[-1].data["reason"] == KEY.reason


async def test_a_summary_waits_while_the_ledger_is_down_and_is_written_after() -> None:
    gate, flaky, ledger, clock = setup(Limits(per_window=1, window_s=10.0))
    for _ in range(20):
        await gate.refuse(KEY, lambda: flaky("_system", None, kind="refused", actor="a"))
    await clock.advance(10.0)
    flaky.down = True
    with pytest.raises(LedgerUnavailable):
        await gate.flush()
    # Refusals while it is down: the one that would have had its own entry fails (the
    # request answers 503) and is counted instead; the others are counted as usual.
    with pytest.raises(LedgerUnavailable):
        await gate.refuse(KEY, lambda: flaky("_system", None, kind="refused", actor="a"))
    for _ in range(4):
        await gate.refuse(KEY, lambda: flaky("_system", None, kind="refused", actor="a"))
    assert gate.status()["pending"] == 19 + 5
    flaky.down = False
    await clock.advance(10.0)
    await gate.flush()
    es = await entries(ledger)
    assert counted(es) == 25 and gate.status()["pending"] == 0
    assert len(es) <= 1 + 2  # the first own entry, then at most a summary per window
    assert (await ledger.verify("_system")).ok


async def test_shutdown_writes_every_open_window() -> None:
    gate, flaky, ledger, _clock = setup(Limits(per_window=3, window_s=3600.0))
    other = RefusalKey("acme", "/action/recover/confirm", "forged")
    for key in (KEY, other) * 10:
        await gate.refuse(
            key, lambda k=key: flaky(k.tenant, None, kind="refused", actor="anonymous")
        )
    await gate.flush_all()
    sys_entries = await entries(ledger)
    acme = list(await ledger.read(LedgerQuery(tenant_id="acme")))
    assert (len(sys_entries), counted(sys_entries)) == (4, 10)
    assert (len(acme), counted(acme)) == (4, 10)
    assert gate.status()["pending"] == 0


async def test_a_passthrough_gate_writes_everything() -> None:
    clock = VirtualClock()
    ledger = MemoryLedgerStore(b"k" * 32)
    engine = IncidentEngine(ledger, clock, lambda _t: Policy())
    gate = RefusalGate.passthrough(engine.record)
    rec = gate.recorder("forged")
    for _ in range(25):
        await rec("_system", None, kind="refused", actor="anonymous", decision="refused")
    await gate.flush_all()
    assert len(await entries(ledger)) == 25
    assert gate.status() == {"coalescing": False}
