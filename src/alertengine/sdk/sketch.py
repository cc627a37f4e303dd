"""A mergeable latency sketch: DDSketch's logarithmic mapping over a sparse store.

The key of a value and the value of a key are exactly those of
``ddsketch.LogarithmicMapping(relative_accuracy)``, and :meth:`LatencySketch.quantile` follows
``DDSketch.get_quantile_value`` (rank ``q * (n - 1)``, first key whose cumulative count exceeds
it), so every quantile is within the relative accuracy of an exact sort. The store is a plain
``dict`` instead of ddsketch's dense list: a route hit a few times in one second then costs a
few dict entries, not a 128-slot chunk, and adding a value is one ``log`` and one dict update.
Serialization to and from JSON-able lists also lives here, so the wire format has one owner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
#: Latencies are recorded in milliseconds; anything faster than this is recorded as this,
#: because the logarithmic mapping needs a positive value.
MIN_MS = 0.001

_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
# The mapping's key is ceil(log2(v) * multiplier) + offset; reading the two constants once lets
# the hot path compute it inline, without two method calls per request.
_MULTIPLIER: float = _MAPPING._multiplier
_OFFSET: float = _MAPPING._offset

WireSketch = list[list[int]]
"""``[[key, count], ...]``: the JSON form of a sketch's bins."""


def key_of(ms: float) -> int:
    """The bin key of a latency in milliseconds (equal to ``LogarithmicMapping.key``)."""
    return int(math.ceil(math.log2(ms if ms > MIN_MS else MIN_MS) * _MULTIPLIER) + _OFFSET)


def value_of(key: int) -> float:
    """The representative value of a bin (equal to ``LogarithmicMapping.value``)."""
    return float(_MAPPING.value(key))


class LatencySketch:
    """Counts of latencies per logarithmic bin. Merge by adding counts."""

    __slots__ = ("bins", "count")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.count = 0

    def add(self, ms: float) -> None:
        k = key_of(ms)
        self.bins[k] = self.bins.get(k, 0) + 1
        self.count += 1

    def merge(self, other: LatencySketch) -> None:
        bins = self.bins
        for k, c in other.bins.items():
            bins[k] = bins.get(k, 0) + c
        self.count += other.count

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0..1), or ``None`` when empty. DDSketch semantics."""
        if not 0.0 <= q <= 1.0 or self.count == 0:
            return None
        rank = q * (self.count - 1)
        running = 0
        keys = sorted(self.bins)
        for k in keys:
            running += self.bins[k]
            if running > rank:
                return value_of(k)
        return value_of(keys[-1])

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several quantiles with one sort of the bins."""
        if self.count == 0:
            return [None for _ in qs]
        keys = sorted(self.bins)
        out: list[float | None] = []
        for q in qs:
            if not 0.0 <= q <= 1.0:
                out.append(None)
                continue
            rank = q * (self.count - 1)
            running = 0
            chosen = keys[-1]
            for k in keys:
                running += self.bins[k]
                if running > rank:
                    chosen = k
                    break
            out.append(value_of(chosen))
        return out

    def to_wire(self) -> WireSketch:
        return [[k, c] for k, c in self.bins.items()]

    @classmethod
    def from_wire(cls, wire: WireSketch) -> LatencySketch:
        s = cls()
        for k, c in wire:
            ik, ic = int(k), int(c)
            if ic <= 0:
                raise ValueError(f"sketch bin {ik} has a non-positive count {ic}")
            s.bins[ik] = s.bins.get(ik, 0) + ic
            s.count += ic
        return s

    def copy(self) -> LatencySketch:
        s = LatencySketch()
        s.bins = dict(self.bins)
        s.count = self.count
        return s
