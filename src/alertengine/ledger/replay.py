"""Rebuild every incident's state from the ledger alone (``alertengine ledger replay``).

This is the same ``fold`` the live engine uses; an auditor running it gets exactly the state
the orchestrator acted on, which is the point of deriving state from history.
"""

from __future__ import annotations

from collections.abc import Callable

from alertengine.incidents import IncidentState, apply
from alertengine.ledger.base import LedgerStore


async def replay(
    ledger: LedgerStore,
    tenant_id: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[str, IncidentState]:
    """Every incident of ``tenant_id`` by id, folded from a full scan of its chain."""
    states: dict[str, IncidentState] = {}
    n = 0
    async for e in ledger.scan(tenant_id):
        n += 1
        if progress is not None and n % 5000 == 0:
            progress(n)
        if e.incident_id is None:
            continue
        new = apply(states.get(e.incident_id), e)
        if new is not None:
            states[e.incident_id] = new
    if progress is not None:
        progress(n)
    return states
