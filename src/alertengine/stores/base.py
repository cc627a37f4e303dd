"""The control plane's small state store: single-use claims, leases and documents.

The ledger is the source of truth for incidents; this store holds what is not history:
redeemed-token claims (single use), leases (which replica drives what), tenants and their
hashed API keys, recent commits, baselines, the dead-letter queue. Backends: memory (the
simulator and single-process tests), SQLite (embedded default), Redis (scale-out).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


class StoreUnavailable(Exception):
    """The backing store is unreachable; callers degrade, never crash."""


@runtime_checkable
class StateStore(Protocol):
    # -- single use ------------------------------------------------------------------------
    async def claim(self, key: str, ttl_s: float, value: str = "1") -> bool:
        """Atomically take ``key`` if nobody holds it (SQLite unique insert / Redis SET NX).

        True exactly once per key while the claim lives (at least ``ttl_s`` seconds).
        """
        ...

    async def claimed(self, key: str) -> str | None:
        """The value a live claim was taken with, or None."""
        ...

    # -- leases (one holder at a time, renewable, expire on their own) -----------------------
    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take ``name`` if it is free or expired; the holder itself may take it again (an
        extension). Tasks that must exclude each other use distinct holder names."""
        ...

    async def renew_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Extend only if ``holder`` still holds it (compare-and-set)."""
        ...

    async def release_lease(self, name: str, holder: str) -> bool:
        """Delete only if ``holder`` still holds it (compare-and-delete)."""
        ...

    async def take_over_lease(self, name: str, previous: str, holder: str, ttl_s: float) -> bool:
        """Give ``name`` to ``holder`` if ``previous`` still holds it (False once it is gone).

        For a holder known to be dead (its process is gone, its replica restarted): the
        lease moves at once instead of after its time to live. Compare-and-set on the
        holder, so of several takers exactly one wins, and a live holder that renewed
        under a new name is never displaced.
        """
        ...

    async def lease_holder(self, name: str) -> str | None: ...

    # -- documents: small JSON objects in named collections -----------------------------------
    async def put(self, collection: str, key: str, doc: Mapping[str, Any]) -> None: ...

    async def get(self, collection: str, key: str) -> dict[str, Any] | None: ...

    async def delete(self, collection: str, key: str) -> bool: ...

    async def list(self, collection: str) -> dict[str, dict[str, Any]]:
        """Every document of a collection, by key."""
        ...

    async def ping(self) -> bool:
        """True when the store answers (for degraded-mode detection); never raises."""
        ...

    async def close(self) -> None: ...
