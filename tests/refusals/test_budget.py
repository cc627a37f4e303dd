"""The refusal budget's promises, for any arrival sequence and any clock (even one that goes
backwards): every refusal is ledgered on its own or in exactly one summary's count; a key
writes at most ``per_window`` entries of its own per window and one summary per window;
keys are capped; samples stay bounded."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from alertengine.refusals.budget import (
    OTHER_ROUTE,
    OVERFLOW_TENANT,
    Limits,
    RefusalBudget,
    RefusalKey,
    Summary,
)

KEYS = [
    RefusalKey("_system", "/twilio/whatsapp", "missing or invalid X-Twilio-Signature"),
    RefusalKey("_system", "/action/recover/confirm", "forged"),
    RefusalKey("acme", "/action/recover/confirm", "forged"),
    RefusalKey("_system", "/telegram/webhook", "invalid secret token"),
    RefusalKey("beta", "/action/ack", "ack link malformed"),
]

limits_st = st.builds(
    Limits,
    per_window=st.integers(0, 5),
    window_s=st.floats(0.5, 100.0),
    max_keys=st.integers(1, 6),
    max_sources=st.integers(0, 4),
)
arrival = st.tuples(
    st.sampled_from(KEYS),
    st.floats(-1000.0, 1000.0, allow_nan=False),  # the clock, in any order
    st.sampled_from(["", "203.0.113.7", "198.51.100.1", "192.0.2.9", "2001:db8::1", "10.0.0.1"]),
    st.booleans(),  # does the periodic flush run after this arrival?
    st.booleans(),  # does writing this refusal's own entry fail (ledger down)?
)


@settings(max_examples=400, deadline=None)
@given(limits=limits_st, arrivals=st.lists(arrival, max_size=200))
def test_every_refusal_is_in_exactly_one_entry_or_count(
    limits: Limits, arrivals: list[tuple[RefusalKey, float, str, bool, bool]]
) -> None:
    b = RefusalBudget(limits)
    individual, summaries = 0, []
    for key, now, source, tick, fails in arrivals:
        a = b.admit(key, now, source)
        summaries.extend(a.closed)
        if a.ledger and fails:
            b.unledger(a.key, now, source)  # not written: its window's summary counts it
        else:
            individual += a.ledger
        if tick:
            summaries.extend(b.due(now))
    summaries.extend(b.drain())
    assert individual + sum(s.count for s in summaries) == len(arrivals)
    assert b.pending() == {}
    totals = b.totals.values()
    assert sum(t.ledgered for t in totals) == individual
    assert sum(t.coalesced for t in totals) == sum(s.count for s in summaries)
    assert sum(t.summaries for t in totals) == len(summaries)
    # Keys are capped (plus the overflow key), and samples stay bounded.
    assert len(b.totals) <= limits.max_keys + 1
    for s in summaries:
        assert s.count > 0 and s.first_at <= s.last_at
        assert len(s.sources) <= limits.max_sources and len(set(s.sources)) == len(s.sources)
        assert len(s.folded) <= max(limits.max_sources, 1)


@settings(max_examples=400, deadline=None)
@given(limits=limits_st, arrivals=st.lists(arrival, max_size=200))
def test_a_key_writes_at_most_per_window_plus_one_entries_per_window(
    limits: Limits, arrivals: list[tuple[RefusalKey, float, str, bool, bool]]
) -> None:
    """On a clock that only moves forward, a key's windows open at least ``window_s`` apart,
    so over a span of time T a key writes at most (T / window_s + 1) x (per_window + 1)
    entries, however many refusals arrive."""
    arrivals = sorted(arrivals, key=lambda a: a[1])
    b = RefusalBudget(limits)
    own: dict[RefusalKey, list[int]] = {}  # per key: own entries per window, in order
    summaries: dict[RefusalKey, int] = {}
    starts: dict[RefusalKey, list[float]] = {}
    for key, now, source, tick, _fails in arrivals:
        before = dict(b._windows)
        a = b.admit(key, now, source)
        for s in a.closed:
            summaries[s.key] = summaries.get(s.key, 0) + 1
        if a.key not in before or b._windows[a.key] is not before[a.key]:
            starts.setdefault(a.key, []).append(now)
            own.setdefault(a.key, []).append(0)
        if a.ledger:
            own[a.key][-1] += 1
        if tick:
            for s in b.due(now):
                summaries[s.key] = summaries.get(s.key, 0) + 1
    for s in b.drain():
        summaries[s.key] = summaries.get(s.key, 0) + 1
    for key, per_window in own.items():
        assert all(n <= limits.per_window for n in per_window)
        assert summaries.get(key, 0) <= len(per_window)  # one summary per window at most
        opened = starts[key]
        assert all(b - a >= limits.window_s for a, b in itertools.pairwise(opened))
        span = max(opened) - min(opened)
        assert len(opened) <= math.floor(span / limits.window_s) + 1


def test_the_first_n_are_ledgered_then_counted_then_one_summary() -> None:
    b = RefusalBudget(Limits(per_window=3, window_s=60.0))
    key = KEYS[0]
    got = [b.admit(key, 1000.0 + i, f"198.51.100.{i % 7}") for i in range(50)]
    assert [a.ledger for a in got] == [True] * 3 + [False] * 47
    assert [a.warn for a in got].count(True) == 1 and got[3].warn
    assert b.pending() == {key: 47}
    assert b.due(1059.0) == []  # the window is still open
    (s,) = b.due(1060.0)
    assert (s.count, s.first_at, s.last_at) == (47, 1003.0, 1049.0)
    assert len(s.sources) == 5
    # A new window starts afresh: its first refusals are ledgered again.
    assert b.admit(key, 1061.0).ledger


def test_the_next_refusal_after_a_window_closes_it() -> None:
    b = RefusalBudget(Limits(per_window=1, window_s=10.0))
    key = KEYS[1]
    assert b.admit(key, 0.0).ledger
    assert not b.admit(key, 5.0).ledger
    a = b.admit(key, 10.0)
    assert a.ledger and [s.count for s in a.closed] == [1]


def test_keys_past_the_cap_share_the_overflow_key_in_the_system_ledger() -> None:
    b = RefusalBudget(Limits(per_window=0, window_s=10.0, max_keys=2))
    for key in KEYS:
        b.admit(key, 0.0)
    assert set(b.totals) == {*KEYS[:2], RefusalKey(OVERFLOW_TENANT, OTHER_ROUTE, "other")}
    summaries = {s.key.route: s for s in b.drain()}
    assert summaries[OTHER_ROUTE].count == 3
    assert set(summaries[OTHER_ROUTE].folded) == {(k.route, k.reason) for k in KEYS[2:]}


def test_an_entry_that_could_not_be_written_is_counted_instead() -> None:
    b = RefusalBudget(Limits(per_window=2, window_s=10.0))
    key = KEYS[3]
    a = b.admit(key, 0.0)
    assert a.ledger
    b.unledger(a.key, 0.0, "192.0.2.9")
    (s,) = b.drain()
    assert s.count == 1 and s.sources == ("192.0.2.9",)
    assert b.totals[key].ledgered == 0 and b.totals[key].coalesced == 1


def test_merged_summaries_add_up_and_stay_bounded() -> None:
    k = KEYS[0]
    a = Summary(k, 3, 10.0, 20.0, ("a", "b"))
    b = Summary(k, 4, 5.0, 15.0, ("b", "c", "d"))
    m = a.merged(b, 3)
    assert (m.count, m.first_at, m.last_at, m.sources) == (7, 5.0, 20.0, ("a", "b", "c"))


def test_limits_refuse_nonsense() -> None:
    for bad in ({"per_window": -1}, {"window_s": 0}, {"max_keys": 0}, {"max_sources": -1}):
        try:
            Limits(**bad)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")
