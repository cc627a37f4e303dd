"""How many anonymous refusals get a ledger entry of their own: the pure core, no I/O.

A refusal nobody can be named for (a bad webhook signature, a forged link, an unknown button)
costs the sender nothing, so ledgering each one would let anyone grow the append-only ledger
without bound. Per key (where it landed, route, reason category; never a raw attacker
string), the first ``per_window`` refusals of a window get their own entry; the rest are
counted, and the window's count becomes ONE summary entry when it closes. Every refusal is
either ledgered on its own or in exactly one summary's count: nothing is dropped, and a key
writes at most ``per_window + 1`` entries per window.

A window opens with a key's first refusal and lasts ``window_s``; it closes at the next
refusal after it (:meth:`RefusalBudget.admit`), at a periodic check (:meth:`due`) or at
shutdown (:meth:`drain`). Distinct keys are capped at ``max_keys`` over the process's life;
later ones share :data:`OTHER_ROUTE`. The clock is passed in with each call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

#: Where the overflow key's entries go: no one tenant's ledger (ours, the orchestrator's).
OVERFLOW_TENANT = "_system"
#: The route and reason of the one key that takes every key past ``max_keys``.
OTHER_ROUTE = "other"
OTHER_REASON = "other"
#: Longest route or reason kept in a key (they are code constants; this is a second guard).
MAX_LABEL = 80


@dataclass(frozen=True, slots=True, order=True)
class RefusalKey:
    """Where a refusal is counted: the ledger (tenant) it belongs in, the route, and the
    reason's category. Every part comes from our code or our registry, never from the
    request."""

    tenant: str
    route: str
    reason: str

    @classmethod
    def of(cls, tenant: str, route: str, reason: str) -> RefusalKey:
        return cls(tenant[:MAX_LABEL], route[:MAX_LABEL], reason[:MAX_LABEL])


@dataclass(frozen=True, slots=True)
class Limits:
    #: Refusals per key and window that get their own entry (0: only summaries).
    per_window: int = 10
    #: Seconds a window lasts.
    window_s: float = 60.0
    #: Distinct keys a process tracks; the rest share the overflow key.
    max_keys: int = 64
    #: Distinct sources (client addresses) a summary names, at most.
    max_sources: int = 5

    def __post_init__(self) -> None:
        if self.per_window < 0 or self.window_s <= 0 or self.max_keys < 1:
            raise ValueError("per_window >= 0, window_s > 0 and max_keys >= 1 are required")
        if self.max_sources < 0:
            raise ValueError("max_sources >= 0 is required")


@dataclass(frozen=True, slots=True)
class Summary:
    """One closed window's coalesced refusals: becomes one ledger entry."""

    key: RefusalKey
    count: int
    first_at: float
    last_at: float
    sources: tuple[str, ...] = ()
    #: For the overflow key: which (route, reason) pairs it took, bounded like ``sources``.
    folded: tuple[tuple[str, str], ...] = ()

    def merged(self, other: Summary, cap: int) -> Summary:
        """Two summaries of one key as one (one that could not be written yet, and the
        next): counts add up, samples stay within ``cap``."""
        return Summary(
            self.key,
            self.count + other.count,
            min(self.first_at, other.first_at),
            max(self.last_at, other.last_at),
            _bounded_union(self.sources, other.sources, cap),
            _bounded_union(self.folded, other.folded, max(cap, 1)),
        )


def _bounded_union(a: tuple[T, ...], b: tuple[T, ...], cap: int) -> tuple[T, ...]:
    out = list(a)
    for x in b:
        if len(out) >= cap:
            break
        if x not in out:
            out.append(x)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Admission:
    """What to do with one refusal: write the ``closed`` summaries first, then this
    refusal's own entry if ``ledger``; ``warn`` on the first refusal a window coalesces."""

    key: RefusalKey
    ledger: bool
    closed: tuple[Summary, ...] = ()
    warn: bool = False


@dataclass(slots=True)
class Totals:
    """Since the process started, per key: for status pages and metrics."""

    ledgered: int = 0
    coalesced: int = 0
    summaries: int = 0


@dataclass(slots=True)
class _Window:
    started_at: float
    ledgered: int = 0
    count: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    sources: list[str] = field(default_factory=list)
    folded: list[tuple[str, str]] = field(default_factory=list)

    def summary(self, key: RefusalKey) -> Summary | None:
        if self.count == 0:
            return None
        return Summary(
            key, self.count, self.first_at, self.last_at, tuple(self.sources), tuple(self.folded)
        )


class RefusalBudget:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._windows: dict[RefusalKey, _Window] = {}
        #: Every key this process has counted (bounded by ``max_keys`` + the overflow key).
        self.totals: dict[RefusalKey, Totals] = {}

    def _key(self, key: RefusalKey) -> RefusalKey:
        if key in self.totals or len(self.totals) < self.limits.max_keys:
            return key
        return RefusalKey(OVERFLOW_TENANT, OTHER_ROUTE, OTHER_REASON)

    def admit(self, key: RefusalKey, now: float, source: str = "") -> Admission:
        """Count one refusal under ``key`` at ``now``."""
        counted = self._key(key)
        totals = self.totals.setdefault(counted, Totals())
        closed: tuple[Summary, ...] = ()
        w = self._windows.get(counted)
        if w is not None and now >= w.started_at + self.limits.window_s:
            done = w.summary(counted)
            closed = (done,) if done is not None else ()
            totals.summaries += len(closed)
            w = None
        if w is None:
            w = self._windows[counted] = _Window(started_at=now)
        if w.ledgered < self.limits.per_window:
            w.ledgered += 1
            totals.ledgered += 1
            return Admission(counted, True, closed)
        self._count(w, counted, key, now, source)
        totals.coalesced += 1
        return Admission(counted, False, closed, warn=w.count == 1)

    def _count(
        self, w: _Window, counted: RefusalKey, key: RefusalKey, now: float, source: str
    ) -> None:
        w.first_at = now if w.count == 0 else min(w.first_at, now)
        w.last_at = now if w.count == 0 else max(w.last_at, now)
        w.count += 1
        cap = self.limits.max_sources
        if source and source not in w.sources and len(w.sources) < cap:
            w.sources.append(source)
        pair = (key.route, key.reason)
        if counted != key and pair not in w.folded and len(w.folded) < max(cap, 1):
            w.folded.append(pair)

    def unledger(self, key: RefusalKey, now: float, source: str = "") -> None:
        """The entry ``admit`` allowed for ``key`` could not be written: count it instead,
        so it still reaches the ledger in the window's summary."""
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = _Window(started_at=now, ledgered=self.limits.per_window)
        self._count(w, key, key, now, source)
        totals = self.totals.setdefault(key, Totals())
        totals.ledgered -= 1
        totals.coalesced += 1

    def due(self, now: float) -> list[Summary]:
        """Close every window that ended by ``now``; the summaries of those that counted."""
        out: list[Summary] = []
        for key in sorted(self._windows):
            w = self._windows[key]
            if now >= w.started_at + self.limits.window_s:
                del self._windows[key]
                if (s := w.summary(key)) is not None:
                    self.totals[key].summaries += 1
                    out.append(s)
        return out

    def drain(self) -> list[Summary]:
        """Close every window now (shutdown): the summaries of those that counted."""
        return self.due(float("inf"))

    def open_summaries(self) -> list[Summary]:
        """What the open windows would summarize if they closed now (nothing is closed)."""
        return [s for k in sorted(self._windows) if (s := self._windows[k].summary(k))]

    def pending(self) -> dict[RefusalKey, int]:
        """Refusals counted in open windows, not yet in any entry."""
        return {k: w.count for k, w in sorted(self._windows.items()) if w.count}
