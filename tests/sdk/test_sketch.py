from __future__ import annotations

import math

from ddsketch import DDSketch
from hypothesis import given, settings
from hypothesis import strategies as st

from alertengine.sdk.sketch import RELATIVE_ACCURACY, LatencySketch, key_of, value_of

latencies = st.lists(
    st.floats(min_value=0.01, max_value=120_000, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=400,
)


def exact_quantile(values: list[float], q: float) -> float:
    # DDSketch's rank convention: the value at index floor(q * (n - 1)) of the sorted data.
    s = sorted(values)
    return s[math.floor(q * (len(s) - 1))]


@given(latencies, st.sampled_from([0.5, 0.9, 0.95, 0.99]))
@settings(max_examples=200, deadline=None)
def test_quantile_within_relative_accuracy_of_exact_sort(values: list[float], q: float) -> None:
    sk = LatencySketch()
    for v in values:
        sk.add(v)
    got = sk.quantile(q)
    want = exact_quantile(values, q)
    assert got is not None
    assert abs(got - want) <= RELATIVE_ACCURACY * want * 1.0001


@given(latencies)
@settings(max_examples=100, deadline=None)
def test_agrees_with_the_ddsketch_library(values: list[float]) -> None:
    ours, theirs = LatencySketch(), DDSketch(relative_accuracy=RELATIVE_ACCURACY)
    for v in values:
        ours.add(v)
        theirs.add(v)
    for q in (0.5, 0.95, 0.99):
        a, b = ours.quantile(q), theirs.get_quantile_value(q)
        assert a is not None and b is not None
        # Same mapping; at most one bin apart where log2 and log(., 2) round differently.
        assert abs(a - b) <= 2.1 * RELATIVE_ACCURACY * b


@given(latencies, latencies)
@settings(deadline=None)
def test_merge_equals_adding_everything_to_one(a: list[float], b: list[float]) -> None:
    left, right, both = LatencySketch(), LatencySketch(), LatencySketch()
    for v in a:
        left.add(v)
        both.add(v)
    for v in b:
        right.add(v)
        both.add(v)
    left.merge(right)
    assert left.bins == both.bins and left.count == both.count == len(a) + len(b)


@given(latencies)
@settings(deadline=None)
def test_wire_round_trip(values: list[float]) -> None:
    sk = LatencySketch()
    for v in values:
        sk.add(v)
    back = LatencySketch.from_wire(sk.to_wire())
    assert back.bins == sk.bins and back.quantiles((0.5, 0.99)) == sk.quantiles((0.5, 0.99))


def test_empty_sketch_has_no_quantiles() -> None:
    assert LatencySketch().quantile(0.95) is None
    assert LatencySketch().quantiles((0.5, 0.95)) == [None, None]


def test_bad_wire_is_refused() -> None:
    try:
        LatencySketch.from_wire([[3, 0]])
    except ValueError as exc:
        assert "non-positive" in str(exc)
    else:
        raise AssertionError("a zero count must be refused")


def test_key_and_value_invert_within_accuracy() -> None:
    for v in (0.02, 1.0, 13.7, 250.0, 9999.0):
        assert abs(value_of(key_of(v)) - v) <= RELATIVE_ACCURACY * v
