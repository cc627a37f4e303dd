"""An in-process :class:`StateStore`: for the simulator and single-process use.

Takes its time from a :class:`~alertengine.clock.Clock` so claims and leases expire on
virtual time in the simulator.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from alertengine.clock import Clock, SystemClock


class MemoryStateStore:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._claims: dict[str, tuple[str, float]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._docs: dict[str, dict[str, dict[str, Any]]] = {}

    def _live(self, table: dict[str, tuple[str, float]], key: str) -> str | None:
        item = table.get(key)
        if item is None:
            return None
        value, expires = item
        if expires <= self._clock.now():
            del table[key]
            return None
        return value

    async def claim(self, key: str, ttl_s: float, value: str = "1") -> bool:
        if self._live(self._claims, key) is not None:
            return False
        self._claims[key] = (value, self._clock.now() + ttl_s)
        return True

    async def claimed(self, key: str) -> str | None:
        return self._live(self._claims, key)

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        current = self._live(self._leases, name)
        if current is not None and current != holder:
            return False
        self._leases[name] = (holder, self._clock.now() + ttl_s)
        return True

    async def renew_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        if self._live(self._leases, name) != holder:
            return False
        self._leases[name] = (holder, self._clock.now() + ttl_s)
        return True

    async def release_lease(self, name: str, holder: str) -> bool:
        if self._live(self._leases, name) != holder:
            return False
        del self._leases[name]
        return True

    async def take_over_lease(self, name: str, previous: str, holder: str, ttl_s: float) -> bool:
        item = self._leases.get(name)
        if item is None or item[0] != previous:
            return False
        self._leases[name] = (holder, self._clock.now() + ttl_s)
        return True

    async def lease_holder(self, name: str) -> str | None:
        return self._live(self._leases, name)

    async def put(self, collection: str, key: str, doc: Mapping[str, Any]) -> None:
        # Round-trip through JSON: the same values any persistent backend would give back.
        self._docs.setdefault(collection, {})[key] = json.loads(json.dumps(dict(doc)))

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        doc = self._docs.get(collection, {}).get(key)
        return copy.deepcopy(doc) if doc is not None else None

    async def delete(self, collection: str, key: str) -> bool:
        return self._docs.get(collection, {}).pop(key, None) is not None

    async def list(self, collection: str) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self._docs.get(collection, {}))

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
