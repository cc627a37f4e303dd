"""find_gaps: a replica's seconds chain (``before + count + lost`` = the next ``before``); a
shortfall is data recorded that never reached the reader. Pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alertengine.sdk.health_alerts import find_gaps
from alertengine.sdk.window import Bucket, RollingWindow


def _replica_seconds(counts: list[int]) -> list[Bucket]:
    w = RollingWindow(600)
    for i, n in enumerate(counts):
        for _ in range(n):
            w.record("/r", 5.0, 200, 1000.0 + i)
    w.catch_up(1000.0 + len(counts))
    return w.buckets(1000.0 + len(counts), 600)


@given(st.lists(st.integers(min_value=1, max_value=5), min_size=3, max_size=30), st.data())
def test_any_second_lost_between_others_is_found(counts: list[int], data: st.DataObject) -> None:
    buckets = _replica_seconds(counts)
    assert find_gaps({"a": buckets}) == (0, ())
    gone = data.draw(st.integers(min_value=1, max_value=len(buckets) - 2))
    kept = buckets[:gone] + buckets[gone + 1 :]
    missing, spans = find_gaps({"a": kept})
    assert missing == counts[gone]
    assert spans == ((1000 + gone, 1000 + gone),)


def test_a_drop_marker_counts_even_at_the_edge() -> None:
    buckets = _replica_seconds([3, 4, 5])
    marker = Bucket(999, None, lost=7)
    assert find_gaps({"a": [marker, *buckets]}) == (7, ((999, 999),))
