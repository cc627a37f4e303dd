from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alertengine.sdk.scoring import (
    Baseline,
    Thresholds,
    adaptive_thresholds,
    anomaly_score,
    compute_trend,
    rate_of_change,
    score_health,
    status_of,
    update_baseline,
)

T = Thresholds()
p95s = st.floats(min_value=0, max_value=100_000, allow_nan=False)
rates = st.floats(min_value=0, max_value=1, allow_nan=False)


@given(p95s, rates)
@settings(deadline=None)
def test_score_is_bounded_and_status_is_derived_from_it(p95: float, err: float) -> None:
    h = score_health(p95, err)
    assert 0 <= h.score <= 100
    assert h.status == status_of(h.score)


@given(p95s, p95s, rates)
@settings(deadline=None)
def test_score_never_improves_when_latency_worsens(a: float, b: float, err: float) -> None:
    lo, hi = sorted((a, b))
    assert score_health(hi, err).score <= score_health(lo, err).score


@given(rates, rates, p95s)
@settings(deadline=None)
def test_score_never_improves_when_errors_worsen(a: float, b: float, p95: float) -> None:
    lo, hi = sorted((a, b))
    assert score_health(p95, hi).score <= score_health(p95, lo).score


@given(st.floats(min_value=0, max_value=100_000, allow_nan=False))
@settings(deadline=None)
def test_crossing_a_latency_threshold_is_crossing_a_status(p95: float) -> None:
    status = score_health(p95, 0.0).status
    if p95 > T.p95_critical_ms:
        assert status == "critical"
    elif p95 > T.p95_warning_ms:
        assert status == "warning"
    else:
        assert status == "ok"


@given(st.floats(min_value=0, max_value=1, allow_nan=False))
@settings(deadline=None)
def test_crossing_an_error_threshold_is_crossing_a_status(err: float) -> None:
    status = score_health(0.0, err).status
    if err > T.error_rate_critical:
        assert status == "critical"
    elif err > T.error_rate_warning:
        assert status == "warning"
    else:
        assert status == "ok"


@given(p95s, rates)
@settings(deadline=None)
def test_every_warning_threshold_breach_has_an_alert_naming_it(p95: float, err: float) -> None:
    h = score_health(p95, err)
    types = {a.type for a in h.alerts}
    assert (p95 > T.p95_warning_ms) == ("latency_spike" in types)
    assert (err > T.error_rate_warning) == ("error_rate" in types)
    for a in h.alerts:
        if a.severity == "critical":
            assert h.status == "critical"


def test_original_reason_text_is_now_true() -> None:
    h = score_health(2847.3, 0.19, sample_size=187)
    assert h.status == "critical"
    spike = next(a for a in h.alerts if a.type == "latency_spike")
    assert spike.reason_for_trigger == "P95 latency 2847ms exceeds threshold 2000ms"
    assert spike.severity == "critical"


def test_too_few_samples_are_not_judged() -> None:
    assert score_health(9000.0, 1.0, sample_size=T.min_samples - 1).status == "ok"
    assert score_health(9000.0, 1.0, sample_size=T.min_samples).status == "critical"


def test_thresholds_are_configurable_and_validated() -> None:
    strict = Thresholds(p95_warning_ms=100, p95_critical_ms=200)
    assert score_health(150.0, 0.0, thresholds=strict).status == "warning"
    assert score_health(150.0, 0.0).status == "ok"
    with pytest.raises(ValidationError):
        Thresholds(p95_warning_ms=300, p95_critical_ms=200)
    with pytest.raises(ValidationError):
        Thresholds(warning_score=50, critical_score=60)


def warm(p95: float = 100.0, dev: float = 10.0) -> Baseline:
    return Baseline(p95_ms=p95, p95_dev_ms=dev, error_rate=0.0, samples=T.baseline_warmup)


def test_anomaly_needs_a_warm_baseline() -> None:
    cold = Baseline(p95_ms=100, p95_dev_ms=10, samples=T.baseline_warmup - 1)
    assert anomaly_score(500.0, cold) == 0.0
    assert anomaly_score(500.0, warm()) == pytest.approx(40.0)
    assert anomaly_score(50.0, warm()) == 0.0


def test_anomaly_alone_warns_but_never_goes_critical() -> None:
    relaxed = Thresholds(adaptive=False)
    h = score_health(900.0, 0.0, baseline=warm(), thresholds=relaxed)
    assert h.status == "warning"
    assert [a.type for a in h.alerts] == ["anomaly"]


@given(st.floats(min_value=1, max_value=5000, allow_nan=False))
@settings(deadline=None)
def test_adaptive_thresholds_only_tighten(base: float) -> None:
    w, c = adaptive_thresholds(warm(base))
    assert w <= T.p95_warning_ms and c <= T.p95_critical_ms
    assert c > w >= min(T.adaptive_floor_ms, T.p95_warning_ms)


def test_adaptive_threshold_catches_what_absolute_would_not() -> None:
    h = score_health(700.0, 0.0, baseline=warm(100.0, 50.0))
    assert h.p95_warning_ms == 300.0 and h.p95_critical_ms == 600.0
    assert h.status == "critical"
    assert h.alerts[0].triggered_by == "adaptive_threshold"


def test_rate_of_change_catches_a_spike_below_absolute_thresholds() -> None:
    assert rate_of_change(400.0, 100.0) == 4.0
    h = score_health(400.0, 0.0, recent_p95_ms=400.0, prior_p95_ms=100.0)
    assert h.status == "warning"
    assert {a.type for a in h.alerts} == {"rate_of_change"}
    assert score_health(400.0, 0.0, recent_p95_ms=150.0, prior_p95_ms=100.0).status == "ok"
    # Tiny latencies doubling is noise, not an incident.
    assert rate_of_change(10.0, 2.0) is None


def test_baseline_ema() -> None:
    b = update_baseline(Baseline(), 100.0, 0.0)
    assert (b.p95_ms, b.samples) == (100.0, 1)
    b2 = update_baseline(b, 200.0, 0.5)
    assert b2.p95_ms == pytest.approx(100 + T.baseline_alpha * 100)
    assert b2.p95_dev_ms == pytest.approx(T.baseline_alpha * 100)
    assert b2.error_rate == pytest.approx(T.baseline_alpha * 0.5)


@given(st.floats(0, 100), st.floats(0, 100))
@settings(deadline=None)
def test_trend(recent: float, prior: float) -> None:
    t = compute_trend(recent, prior)
    if recent - prior >= T.trend_delta:
        assert t == "improving"
    elif prior - recent >= T.trend_delta:
        assert t == "degrading"
    else:
        assert t == "stable"
    assert compute_trend(None, prior) == "stable"
