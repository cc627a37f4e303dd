"""Where replicas share their windows. A store moves opaque per-second payloads; it knows
nothing about sketches, so a new backend is two methods.

Layout in Redis: one hash per service and second, ``{prefix}:{service}:s:{second}``, field = the
replica id, value = that replica's serialized bucket for that second. Re-publishing a second
overwrites the same field, so publishing the open second every tick and again when it closes
is idempotent. Keys expire ``ttl`` seconds after their last write (relative, so a replica's
clock skew against Redis cannot expire fresh data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import redis.asyncio as aioredis


class StoreUnavailable(Exception):
    """The store could not be reached or answered in time."""


@runtime_checkable
class MetricsStore(Protocol):
    """A shared place for per-second bucket payloads of every replica of a service."""

    name: str

    async def publish(
        self, service: str, replica: str, payloads: Mapping[int, bytes], ttl_s: int
    ) -> None:
        """Store ``payloads`` (second → bytes) for ``replica``. Raise on any failure."""
        ...

    async def fetch(self, service: str, lo: int, hi: int) -> list[tuple[str, int, bytes]]:
        """Every ``(replica, second, payload)`` with ``lo < second <= hi``. Raise on failure."""
        ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """An in-process store: lets several apps in one process share a view (and tests)."""

    name = "memory"

    def __init__(self) -> None:
        self._data: dict[tuple[str, int], dict[str, bytes]] = {}

    async def publish(
        self, service: str, replica: str, payloads: Mapping[int, bytes], ttl_s: int
    ) -> None:
        for sec, payload in payloads.items():
            self._data.setdefault((service, sec), {})[replica] = payload
        newest = max((s for _, s in self._data), default=0)
        for key in [k for k in self._data if k[1] <= newest - ttl_s]:
            del self._data[key]

    async def fetch(self, service: str, lo: int, hi: int) -> list[tuple[str, int, bytes]]:
        out: list[tuple[str, int, bytes]] = []
        for (svc, sec), by_replica in self._data.items():
            if svc == service and lo < sec <= hi:
                out.extend((r, sec, p) for r, p in by_replica.items())
        return out

    async def aclose(self) -> None:
        return None


class RedisStore:
    """Redis backend (``redis.asyncio``), short timeouts so an outage is detected quickly."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str = "alertengine", timeout_s: float = 0.5) -> None:
        self.url = url
        self.prefix = prefix
        self._timeout_s = timeout_s
        self._client: aioredis.Redis | None = None

    def _redis(self) -> aioredis.Redis:
        # Created lazily, inside the running event loop that will use it.
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.url,
                socket_timeout=self._timeout_s,
                socket_connect_timeout=self._timeout_s,
                retry_on_timeout=False,
            )
        return self._client

    def _key(self, service: str, sec: int) -> str:
        return f"{self.prefix}:{service}:s:{sec}"

    async def publish(
        self, service: str, replica: str, payloads: Mapping[int, bytes], ttl_s: int
    ) -> None:
        try:
            # MULTI/EXEC on both sides: a reader sees all of one publish or none of it, so a
            # closed second and the next one never look like a gap between them.
            pipe = self._redis().pipeline(transaction=True)
            for sec, payload in payloads.items():
                key = self._key(service, sec)
                pipe.hset(key, replica, payload)
                pipe.expire(key, ttl_s)
            await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            await self._reset()
            raise StoreUnavailable(f"redis publish failed: {type(exc).__name__}") from exc

    async def fetch(self, service: str, lo: int, hi: int) -> list[tuple[str, int, bytes]]:
        try:
            pipe = self._redis().pipeline(transaction=True)
            secs = list(range(lo + 1, hi + 1))
            for sec in secs:
                pipe.hgetall(self._key(service, sec))
            answers = await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            await self._reset()
            raise StoreUnavailable(f"redis read failed: {type(exc).__name__}") from exc
        out: list[tuple[str, int, bytes]] = []
        for sec, fields in zip(secs, answers, strict=True):
            for replica, payload in fields.items():
                out.append((replica.decode(), sec, payload))
        return out

    async def _reset(self) -> None:
        # Drop the pool after a failure: its sockets may be dead, and a fresh pool reconnects.
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception:  # noqa: S110 - closing a broken client may fail; nothing to do
                pass

    async def aclose(self) -> None:
        await self._reset()
