"""Off the request path: batch closed (and the open) seconds to the shared store.

A window closing a second only appends a reference here (O(1) on the request path); the
background task serializes and publishes. While the store fails, a circuit breaker stops
hammering it, closed seconds wait in a bounded buffer, and whatever overflows is counted in
``dropped`` (requests, not buckets): never silent.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from alertengine.sdk.stores import MetricsStore
from alertengine.sdk.window import Bucket

BreakerState = Literal["closed", "open", "half_open"]


def encode_bucket(bucket: Bucket) -> bytes:
    return json.dumps(bucket.to_wire(), separators=(",", ":")).encode()


def decode_bucket(payload: bytes) -> Bucket:
    return Bucket.from_wire(json.loads(payload))


class CircuitBreaker:
    """Closed → (``failures`` in a row) → open → (``reset_s`` later) → half-open: one try."""

    def __init__(
        self, failures: int = 3, reset_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._clock = clock
        self.state: BreakerState = "closed"
        self.consecutive = 0
        self.opened_at: float | None = None
        self.trips = 0

    def allow(self) -> bool:
        if self.state == "open":
            assert self.opened_at is not None
            if self._clock() - self.opened_at < self.reset_s:
                return False
            self.state = "half_open"
        return True

    def success(self) -> None:
        self.state = "closed"
        self.consecutive = 0
        self.opened_at = None

    def failure(self) -> None:
        self.consecutive += 1
        if self.state == "half_open" or self.consecutive >= self.failures:
            if self.state != "open":
                self.trips += 1
            self.state = "open"
            self.opened_at = self._clock()

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "consecutive_failures": self.consecutive,
            "trips": self.trips,
            "failure_threshold": self.failures,
            "reset_s": self.reset_s,
        }


@dataclass
class IngestionCounters:
    published_buckets: int = 0
    publish_batches: int = 0
    dropped: int = 0
    dropped_buckets: int = 0
    store_errors: int = 0
    read_errors: int = 0
    last_error: str | None = None
    last_publish_at: float | None = None


class Publisher:
    """Buffers per-second payloads and publishes them in batches through a breaker."""

    def __init__(
        self,
        store: MetricsStore,
        *,
        service: str,
        replica: str,
        ttl_s: int,
        buffer_max: int,
        breaker: CircuitBreaker,
    ) -> None:
        self.store = store
        self.service = service
        self.replica = replica
        self.ttl_s = ttl_s
        self.buffer_max = buffer_max
        self.breaker = breaker
        self.counters = IngestionCounters()
        self._closed: list[tuple[int, Bucket, int]] = []
        self._befores: dict[int, int | None] = {}
        # second -> (payload, requests in it); ordered oldest first.
        self._pending: OrderedDict[int, tuple[bytes, int]] = OrderedDict()
        # second -> requests already in the store for it: a second published while open and
        # unchanged since needs no second trip (nor a place in the outage buffer).
        self._published: dict[int, int] = {}
        # second -> (requests lost, the bucket's ``before``) for seconds dropped above: a small
        # marker is published for each, so every reader's window says it has a gap there.
        self._lost: dict[int, tuple[int, int | None]] = {}
        self._lost_published: set[int] = set()

    def on_close(self, bucket: Bucket) -> None:
        """Called by the window on the request path: remember the bucket, nothing more."""
        self._closed.append((bucket.sec, bucket, bucket.total.count))

    @property
    def buffered_buckets(self) -> int:
        return len(self._pending)

    @property
    def buffered_requests(self) -> int:
        return sum(n for _, n in self._pending.values())

    def _stage(self, current: Bucket | None) -> None:
        closed, self._closed = self._closed, []
        for sec, bucket, count in closed:
            if bucket.sec != sec:
                # The ring reused the slot before we ran (the loop stalled a whole window).
                self._drop(sec, count, None)
                continue
            if self._published.get(sec) == count:
                self._pending.pop(sec, None)
                continue
            self._pending[sec] = (encode_bucket(bucket), count)
            self._pending.move_to_end(sec)
            self._befores[sec] = bucket.before
        if (
            current is not None
            and current.total.count
            and not current.closed
            and self._published.get(current.sec) != current.total.count
        ):
            self._pending[current.sec] = (encode_bucket(current), current.total.count)
            self._pending.move_to_end(current.sec)
        while len(self._pending) > self.buffer_max:
            sec, (_, count) = self._pending.popitem(last=False)
            self._drop(sec, count, self._befores.get(sec))
        for sec in [s for s in self._befores if s not in self._pending]:
            del self._befores[sec]

    def _drop(self, sec: int, count: int, before: int | None) -> None:
        self.counters.dropped += count
        self.counters.dropped_buckets += 1
        self._lost[sec] = (count, before)

    def _markers(self, now: float) -> dict[int, bytes]:
        """Markers for dropped seconds still inside ``ttl_s`` that no reader has seen yet."""
        horizon = int(now) - self.ttl_s
        for sec in [s for s in self._lost if s <= horizon]:
            del self._lost[sec]
            self._lost_published.discard(sec)
        out: dict[int, bytes] = {}
        for sec, (count, before) in self._lost.items():
            if sec not in self._lost_published:
                out[sec] = encode_bucket(Bucket(sec, before, lost=count))
        return out

    async def tick(self, current: Bucket | None, now: float) -> bool:
        """Stage what closed (plus the open second) and try to publish. Never raises."""
        try:
            self._stage(current)
            markers = self._markers(now)
            if not (self._pending or markers) or not self.breaker.allow():
                return not self._pending
            batch = {sec: payload for sec, (payload, _) in self._pending.items()}
            await self.store.publish(self.service, self.replica, {**markers, **batch}, self.ttl_s)
        except Exception as exc:
            self.counters.store_errors += 1
            self.counters.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self.breaker.failure()
            return False
        self.breaker.success()
        self._lost_published.update(markers)
        for sec in batch:
            _, count = self._pending.pop(sec, (b"", 0))
            self._published[sec] = count
        if len(self._published) > 4 * self.ttl_s:
            newest = max(self._published)
            self._published = {s: c for s, c in self._published.items() if s > newest - self.ttl_s}
        self.counters.published_buckets += len(batch)
        self.counters.publish_batches += 1
        self.counters.last_publish_at = now
        return True
