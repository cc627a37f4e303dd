"""A discrete-event driver over :class:`~alertengine.clock.VirtualClock`.

Everything the simulation does runs as ordinary asyncio tasks against the virtual clock:
polls, notifications (whose retries sleep on the clock), executions (whose backoff sleeps on
the clock), approvers clicking links. The driver moves time only when the system is
*quiescent* (no task can make progress without time moving), then jumps to the earliest of
the next scheduled event and the next sleeper's deadline. No wall-clock sleeping anywhere.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from alertengine.clock import VirtualClock

Action = Callable[[], Awaitable[None]]


@dataclass(order=True)
class _Scheduled:
    at: float
    priority: int
    seq: int
    action: Action = field(compare=False)


class Scheduler:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._heap: list[_Scheduled] = []
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []

    def at(self, t: float, action: Action, *, priority: int = 5) -> None:
        """Run ``action`` at virtual time ``t`` (now, if ``t`` is in the past)."""
        heapq.heappush(self._heap, _Scheduled(t, priority, next(self._seq), action))

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run ``coro`` as a task now; its exceptions fail the simulation."""

        async def wrapped() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(wrapped())
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._errors.append(task.exception())  # type: ignore[arg-type]

    async def quiesce(self) -> None:
        """Yield until no task is ready to run (all are waiting on the clock or done)."""
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)  # CPython's run queue; spin a while elsewhere
        for _ in range(100_000 if ready is not None else 200):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                break
        if self._errors:
            raise self._errors[0]

    async def run_until(self, end: float) -> None:
        """Process everything due up to and including virtual time ``end``."""
        clock = self.clock
        while True:
            await self.quiesce()
            t_event = self._heap[0].at if self._heap else None
            t_sleep = clock.next_deadline
            if t_sleep is not None and t_sleep <= end and (t_event is None or t_sleep < t_event):
                clock.set(max(clock.now(), t_sleep))
                await clock.advance(0)  # wakes every sleeper due by now, in order
                continue
            if t_event is None or t_event > end:
                break
            item = heapq.heappop(self._heap)
            if item.at > clock.now():
                clock.set(item.at)
            self.spawn(item.action())
        if end > clock.now():
            clock.set(end)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
