"""One clock abstraction for the whole control plane.

Everything that needs the time or needs to wait takes a :class:`Clock`. Production code
gets :class:`SystemClock`; the governance simulator passes a :class:`VirtualClock` and runs
the real pipeline on virtual time, without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch (wall time, as recorded in the ledger)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class VirtualClock:
    """A clock that only moves when told to.

    ``sleep`` parks the caller until :meth:`advance` (or :meth:`run_until`) moves time past
    its deadline, so many coroutines can wait on virtual time inside one event loop.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._ids), fut))
        await fut

    def set(self, t: float) -> None:
        if t < self._now:
            raise ValueError("a virtual clock never goes backwards")
        self._now = t

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper due on the way in order."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, due)
            if not fut.done():
                fut.set_result(None)
            # Let the woken coroutine run before time moves on.
            for _ in range(5):
                await asyncio.sleep(0)
        self._now = target

    @property
    def next_deadline(self) -> float | None:
        return self._sleepers[0][0] if self._sleepers else None
