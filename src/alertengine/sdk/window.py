"""The rolling window: a preallocated ring of 1 s buckets, each holding per-route counters and
latency sketches. Recording is O(1); merging happens on read.

Only this module mutates recorded data. A bucket *closes* when time moves past its second; each
non-empty bucket is handed once, in order, to the ``on_close`` callbacks (baseline learning,
publishing). Closing is driven by the data's own time base (a later record, or a read that
observes the second has passed), so how often anyone polls never changes what is learned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from alertengine.sdk.sketch import _MULTIPLIER, _OFFSET, MIN_MS, LatencySketch

UNMATCHED = "<unmatched>"
OTHER = "<other>"

# sketch.key_of inlined (same constants) so the hot path is one expression, not two calls.
_log2 = math.log2
_ceil = math.ceil


class Stats:
    """Counters and a latency sketch for one route (or all routes) over some span."""

    __slots__ = ("c4xx", "c5xx", "count", "sketch", "sum_ms")

    def __init__(self) -> None:
        self.count = 0
        self.c4xx = 0
        self.c5xx = 0
        self.sum_ms = 0.0
        self.sketch = LatencySketch()

    def add(self, key: int, ms: float, status: int) -> None:
        self.count += 1
        if status >= 500:
            self.c5xx += 1
        elif status >= 400:
            self.c4xx += 1
        self.sum_ms += ms
        bins = self.sketch.bins
        bins[key] = bins.get(key, 0) + 1
        self.sketch.count += 1

    def merge(self, other: Stats) -> None:
        self.count += other.count
        self.c4xx += other.c4xx
        self.c5xx += other.c5xx
        self.sum_ms += other.sum_ms
        self.sketch.merge(other.sketch)

    @property
    def error_rate_5xx(self) -> float:
        return self.c5xx / self.count if self.count else 0.0

    @property
    def error_rate_4xx(self) -> float:
        return self.c4xx / self.count if self.count else 0.0

    def to_wire(self) -> list[Any]:
        return [self.count, self.c4xx, self.c5xx, round(self.sum_ms, 3), self.sketch.to_wire()]

    @classmethod
    def from_wire(cls, wire: list[Any]) -> Stats:
        count, c4, c5, sum_ms, sketch = wire
        s = cls()
        s.count, s.c4xx, s.c5xx, s.sum_ms = int(count), int(c4), int(c5), float(sum_ms)
        s.sketch = LatencySketch.from_wire(sketch)
        if s.sketch.count != s.count or min(s.c4xx, s.c5xx) < 0 or s.c4xx + s.c5xx > s.count:
            raise ValueError("inconsistent bucket counters")
        return s


class Bucket:
    """One second of traffic: per-route stats and their total."""

    __slots__ = ("before", "closed", "lost", "routes", "sec", "total")

    def __init__(self, sec: int = -1, before: int | None = None, lost: int = 0) -> None:
        self.sec = sec
        self.routes: dict[str, Stats] = {}
        self.total = Stats()
        self.closed = False
        # Requests this replica had recorded before this second: consecutive seconds of one
        # replica must chain (before + count = the next one's before), so a reader can tell
        # requests that never reached it (an outage's overflow, a store that lost data).
        self.before = before
        # A marker a publisher sends for a second it had to drop: requests recorded, lost.
        self.lost = lost

    def reset(self, sec: int, before: int | None = None) -> None:
        self.sec = sec
        self.routes = {}
        self.total = Stats()
        self.closed = False
        self.before = before
        self.lost = 0

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "sec": self.sec,
            "routes": {r: s.to_wire() for r, s in self.routes.items()},
        }
        if self.before is not None:
            wire["before"] = self.before
        if self.lost:
            wire["lost"] = self.lost
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Bucket:
        before = wire.get("before")
        b = cls(
            int(wire["sec"]),
            int(before) if before is not None else None,
            max(0, int(wire.get("lost", 0))),
        )
        for route, stats in wire["routes"].items():
            s = Stats.from_wire(stats)
            b.routes[str(route)] = s
            b.total.merge(s)
        b.closed = True
        return b


class RollingWindow:
    """``window_s`` seconds of 1 s buckets in a ring, with at most ``max_routes`` route keys.

    Routes beyond the cap are recorded under ``"<other>"``, so memory stays bounded whatever
    the traffic: at most ``(window_s + 2) × (max_routes + 1)`` stats.
    """

    def __init__(
        self,
        window_s: int = 60,
        *,
        max_routes: int = 1000,
        on_close: Iterable[Callable[[Bucket], None]] = (),
    ) -> None:
        if window_s < 1:
            raise ValueError("window_s must be at least 1")
        self.window_s = window_s
        self.max_routes = max_routes
        self._ring = [Bucket() for _ in range(window_s + 2)]
        self._cur = self._ring[0]
        self._routes: set[str] = set()
        self._on_close = list(on_close)
        self.recorded = 0

    def add_on_close(self, callback: Callable[[Bucket], None]) -> None:
        self._on_close.append(callback)

    def route_key(self, route: str) -> str:
        """The bounded key for a route template (``"<other>"`` once the cap is reached)."""
        if route in self._routes:
            return route
        if len(self._routes) >= self.max_routes:
            return OTHER
        self._routes.add(route)
        return route

    def record(self, route: str, ms: float, status: int, now: float) -> None:
        """Count one request. The hot path: a few integer updates and one ``log2``."""
        sec = int(now)
        cur = self._cur
        if sec > cur.sec or cur.closed:
            # A closed bucket is final (its data was already learned from and published); a
            # record from a clock that stepped back lands in the next second instead.
            cur = self._advance(sec if sec > cur.sec else cur.sec + 1)
        if route not in self._routes:
            route = self.route_key(route)
        key = int(_ceil(_log2(ms if ms > MIN_MS else MIN_MS) * _MULTIPLIER) + _OFFSET)
        stats = cur.routes.get(route)
        if stats is None:
            stats = cur.routes[route] = Stats()
        stats.add(key, ms, status)
        cur.total.add(key, ms, status)
        self.recorded += 1

    def _advance(self, sec: int) -> Bucket:
        self._close(self._cur)
        slot = self._ring[sec % len(self._ring)]
        if slot.sec != sec:
            slot.reset(sec, self.recorded)
        self._cur = slot
        return slot

    def _close(self, bucket: Bucket) -> None:
        if bucket.closed or bucket.sec < 0:
            return
        bucket.closed = True
        if bucket.total.count == 0:
            return
        for callback in self._on_close:
            try:
                callback(bucket)
            except Exception:  # noqa: S112 - a listener's bug must never reach the host app
                continue

    def catch_up(self, now: float) -> None:
        """Close the current bucket if its second has passed (same result as the next record)."""
        if int(now) > self._cur.sec:
            self._close(self._cur)

    def buckets(self, now: float, span_s: int | None = None) -> list[Bucket]:
        """Non-empty buckets in ``(now - span, now]`` (whole seconds), oldest first. Pure."""
        sec = int(now)
        lo = sec - (span_s or self.window_s)
        found = [b for b in self._ring if lo < b.sec <= sec and b.total.count]
        found.sort(key=lambda b: b.sec)
        return found

    def bucket_at(self, sec: int) -> Bucket | None:
        slot = self._ring[sec % len(self._ring)]
        return slot if slot.sec == sec else None

    @property
    def current(self) -> Bucket:
        return self._cur

    @property
    def route_count(self) -> int:
        return len(self._routes)


def merge_total(buckets: Iterable[Bucket], lo: int, hi: int) -> Stats:
    """Total stats of buckets with ``lo < sec <= hi``."""
    out = Stats()
    for b in buckets:
        if lo < b.sec <= hi:
            out.merge(b.total)
    return out


def route_counts(buckets: Iterable[Bucket]) -> dict[str, int]:
    """Requests per route: cheap (no sketch work), to choose which routes to merge."""
    out: dict[str, int] = {}
    for b in buckets:
        for route, s in b.routes.items():
            out[route] = out.get(route, 0) + s.count
    return out


def merge_routes(buckets: Iterable[Bucket], only: set[str] | None = None) -> dict[str, Stats]:
    """Per-route stats merged over ``buckets`` (restricted to ``only`` when given)."""
    out: dict[str, Stats] = {}
    for b in buckets:
        routes = b.routes
        names = routes if only is None else [r for r in only if r in routes]
        for route in names:
            acc = out.get(route)
            if acc is None:
                acc = out[route] = Stats()
            acc.merge(routes[route])
    return out


__all__ = [
    "OTHER",
    "UNMATCHED",
    "Bucket",
    "RollingWindow",
    "Stats",
    "merge_routes",
    "merge_total",
    "route_counts",
]
