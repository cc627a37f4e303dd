"""The rolling window and the report agree with a brute-force count of what was recorded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertengine.sdk.health_alerts import build_report
from alertengine.sdk.publisher import CircuitBreaker
from alertengine.sdk.scoring import Thresholds
from alertengine.sdk.window import RollingWindow

T0 = 1_000_000.0
events = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=1.5, allow_nan=False),  # gap since the previous one
        st.sampled_from(["/a", "/b/{id}", "/c"]),
        st.floats(min_value=0.1, max_value=5000, allow_nan=False),
        st.sampled_from([200, 201, 404, 429, 500, 503]),
    ),
    max_size=300,
)


@given(events, st.floats(min_value=0, max_value=120, allow_nan=False))
@settings(deadline=None, max_examples=80)
def test_report_counts_exactly_the_requests_in_the_window(
    evs: list[tuple[float, str, float, int]], read_after: float
) -> None:
    w = RollingWindow(60)
    t = T0
    stamped = []
    for gap, route, ms, status in evs:
        t += gap
        w.record(route, ms, status, t)
        stamped.append((t, route, ms, status))
    now = t + read_after
    doc = build_report(w.buckets(now), now=now, service="s", window_s=60, thresholds=Thresholds())
    inside = [e for e in stamped if int(now) - 60 < int(e[0]) <= int(now)]
    m = doc["metrics"]
    assert m["sample_size"] == len(inside)
    assert m["status_5xx_count"] == sum(1 for e in inside if e[3] >= 500)
    assert m["status_4xx_count"] == sum(1 for e in inside if 400 <= e[3] < 500)
    for route in {e[1] for e in inside}:
        assert doc["routes"][route]["count"] == sum(1 for e in inside if e[1] == route)
    assert doc["status"] == doc["health_score"]["level"]
    if inside:
        worst = max(e[2] for e in inside)
        assert m["p99_ms"] <= worst * 1.01 + 0.005  # reported rounded to 0.01 ms
    else:
        assert m["overall_p95_ms"] is None and doc["status"] == "ok"


def test_circuit_breaker_opens_waits_and_half_opens() -> None:
    now = [0.0]
    b = CircuitBreaker(failures=2, reset_s=5.0, clock=lambda: now[0])
    assert b.allow()
    b.failure()
    assert b.state == "closed" and b.allow()
    b.failure()
    assert b.state == "open" and not b.allow()
    now[0] = 4.9
    assert not b.allow()
    now[0] = 5.0
    assert b.allow() and b.state == "half_open"
    b.failure()  # one failed try in half-open re-opens at once
    assert b.state == "open" and b.trips == 2 and not b.allow()
    now[0] = 10.0
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.consecutive == 0


@pytest.mark.parametrize("window_s", [4, 5, 10, 60])
def test_trend_moves_in_short_windows_too(window_s: int) -> None:
    """A window shorter than two trend spans compares its halves: latency that climbs within
    it reads as degrading, latency that falls as improving."""

    def trend(first_ms: float, then_ms: float) -> str:
        w = RollingWindow(window_s)
        span = min(Thresholds().trend_span_s, window_s // 2)  # the last span vs the one before
        for sec in range(window_s):
            for _ in range(20):
                w.record("/a", first_ms if sec < window_s - span else then_ms, 200, T0 + sec)
        now = T0 + window_s - 0.5
        doc = build_report(
            w.buckets(now), now=now, service="s", window_s=window_s, thresholds=Thresholds()
        )
        return str(doc["health_score"]["trend"])

    assert trend(50, 3000) == "degrading"
    assert trend(3000, 50) == "improving"
    assert trend(50, 50) == "stable"
