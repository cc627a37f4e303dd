"""The scale-out :class:`~alertengine.stores.base.StateStore` on Redis.

* claims: ``SET ae:claim:<key> <value> NX PX <ttl>`` — one winner, however many callers;
* leases: ``ae:lease:<name>`` holds the holder; acquire, renew and take-over
  (compare-and-set) and release (compare-and-delete) are each one Lua script, so check and
  write are atomic;
* documents: one hash per collection, ``ae:docs:<collection>``, values JSON.

Expiry runs on the Redis server's clock (no virtual time here; the simulator uses memory).
Every Redis failure is raised as :class:`StoreUnavailable`; :meth:`ping` never raises.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from alertengine.ledger.redis import client_from_url
from alertengine.stores.base import StoreUnavailable

T = TypeVar("T")

_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1
end
return 0
"""
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""


def _ms(ttl_s: float) -> int:
    return max(1, round(ttl_s * 1000))


def _text(v: Any) -> str | None:
    return None if v is None else v.decode() if isinstance(v, bytes) else str(v)


class RedisStateStore:
    """``redis`` is a URL (owned, closed on :meth:`close`) or an existing asyncio client."""

    def __init__(self, redis: str | aioredis.Redis, *, prefix: str = "ae:") -> None:
        if isinstance(redis, str):
            self._r: aioredis.Redis = client_from_url(redis)
            self._owns = True
        else:
            self._r = redis
            self._owns = False
        self._p = prefix
        self._acquire = self._r.register_script(_ACQUIRE)
        self._renew = self._r.register_script(_RENEW)
        self._release = self._r.register_script(_RELEASE)
        self._take_over = self._r.register_script(_TAKE_OVER)

    async def _call(self, op: Awaitable[T]) -> T:
        try:
            return await op
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis state store: {exc}") from exc

    async def claim(self, key: str, ttl_s: float, value: str = "1") -> bool:
        done = await self._call(self._r.set(f"{self._p}claim:{key}", value, nx=True, px=_ms(ttl_s)))
        return bool(done)

    async def claimed(self, key: str) -> str | None:
        return _text(await self._call(self._r.get(f"{self._p}claim:{key}")))

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        keys = [f"{self._p}lease:{name}"]
        return bool(await self._call(self._acquire(keys=keys, args=[holder, _ms(ttl_s)])))

    async def renew_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        keys = [f"{self._p}lease:{name}"]
        return bool(await self._call(self._renew(keys=keys, args=[holder, _ms(ttl_s)])))

    async def release_lease(self, name: str, holder: str) -> bool:
        keys = [f"{self._p}lease:{name}"]
        return bool(await self._call(self._release(keys=keys, args=[holder])))

    async def take_over_lease(self, name: str, previous: str, holder: str, ttl_s: float) -> bool:
        keys = [f"{self._p}lease:{name}"]
        args: list[str | int] = [previous, holder, _ms(ttl_s)]
        return bool(await self._call(self._take_over(keys=keys, args=args)))

    async def lease_holder(self, name: str) -> str | None:
        return _text(await self._call(self._r.get(f"{self._p}lease:{name}")))

    async def put(self, collection: str, key: str, doc: Mapping[str, Any]) -> None:
        body = json.dumps(dict(doc), separators=(",", ":"), allow_nan=False)
        await self._call(self._r.hset(f"{self._p}docs:{collection}", key, body))

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        raw = await self._call(self._r.hget(f"{self._p}docs:{collection}", key))
        if raw is None:
            return None
        doc: dict[str, Any] = json.loads(raw)
        return doc

    async def delete(self, collection: str, key: str) -> bool:
        n = await self._call(self._r.hdel(f"{self._p}docs:{collection}", key))
        return bool(n)

    async def list(self, collection: str) -> dict[str, dict[str, Any]]:
        raw = await self._call(self._r.hgetall(f"{self._p}docs:{collection}"))
        return {str(_text(k)): json.loads(v) for k, v in sorted(raw.items())}

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        if self._owns:
            try:
                await self._r.aclose()
            except RedisError:
                pass
