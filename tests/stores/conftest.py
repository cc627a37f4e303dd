"""The StateStore contract, run unchanged against memory, SQLite and Redis.

Expiry: memory and SQLite judge it on an injected clock (moved by hand here); Redis on
its server's clock, so for Redis ``pass_time`` really waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from alertengine.stores.base import StateStore
from alertengine.stores.memory import MemoryStateStore
from alertengine.stores.redis import RedisStateStore
from alertengine.stores.sqlite import SqliteStateStore


class HandClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class StateBackend:
    name: str
    open: Callable[[], StateStore]
    pass_time: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def state_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateBackend]:
    clock = HandClock()
    if request.param == "memory":
        shared = MemoryStateStore(clock)
        yield StateBackend("memory", lambda: shared, clock.sleep)
    elif request.param == "sqlite":
        path = tmp_path / "state.db"
        yield StateBackend("sqlite", lambda: SqliteStateStore(path, clock=clock), clock.sleep)
    else:
        url = request.getfixturevalue("redis_server").url
        yield StateBackend("redis", lambda: RedisStateStore(url), asyncio.sleep)


@pytest.fixture
async def state(state_backend: StateBackend) -> AsyncIterator[StateStore]:
    s = state_backend.open()
    yield s
    await s.close()
