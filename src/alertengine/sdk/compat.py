"""The keys and value vocabularies of fastapi-alertengine 1.7.0's ``/health/alerts``, kept.

Pollers written for 1.7.0 read ``health_score.status`` as ``healthy | degraded | critical``,
alert ``type`` as ``latency_spike | error_anomaly``, ``health_score.components.{latency,
errors,anomalies}`` as 0–100 scores (100 = perfect), and expect ``message``,
``trend_direction``, ``baseline_comparison`` (when a baseline exists) on each alert. This module
derives those from our one status and our alerts; our own values sit beside them
(``health_score.level``, ``alerts[].kind``, the ``*_penalty`` components). Pure.

Checked against a response recorded from the real 1.7.0 package
(``tests/sdk/fixtures/fastapi_alertengine_1_7_0.json``).
"""

from __future__ import annotations

from typing import Any

from alertengine.sdk.scoring import Alert, Baseline, HealthScore, Thresholds

#: Our status → 1.7.0's ``health_score.status`` word. ``unknown`` (fail closed) has no 1.7.0
#: equivalent: 1.7.0 could not say "I cannot measure".
HEALTH_STATUS = {"ok": "healthy", "warning": "degraded", "critical": "critical"}

#: Our alert type → 1.7.0's ``type`` (ours stays in ``kind``).
ALERT_TYPE = {
    "latency_spike": "latency_spike",
    "error_rate": "error_anomaly",
    "anomaly": "latency_spike",
    "rate_of_change": "latency_spike",
}

#: Our ``triggered_by`` → 1.7.0's (absolute_threshold | adaptive_threshold | rate_of_change).
TRIGGERED_BY = {"baseline": "adaptive_threshold"}


def health_status(status: str) -> str:
    return HEALTH_STATUS.get(status, status)


def components(h: HealthScore) -> dict[str, float]:
    """1.7.0's per-signal scores (100 = perfect) beside our penalties."""

    def score(penalty: float) -> float:
        return round(max(0.0, min(100.0, 100.0 - penalty)), 1)

    return {
        "latency": score(h.latency_penalty),
        "errors": score(h.error_penalty),
        "anomalies": score(h.anomaly_penalty + h.roc_penalty),
        **h.components(),
    }


def _comparison(baseline_value: float, current_value: float) -> dict[str, float] | None:
    if baseline_value <= 0:
        return None
    return {
        "baseline_value": round(baseline_value, 2),
        "current_value": round(current_value, 2),
        "deviation_pct": round((current_value - baseline_value) / baseline_value * 100, 1),
    }


def alert(
    a: Alert,
    *,
    h: HealthScore,
    p95_ms: float | None,
    error_rate: float,
    baseline: Baseline | None,
    thresholds: Thresholds,
    recent_p95_ms: float | None,
    prior_p95_ms: float | None,
) -> dict[str, Any]:
    """One alert in 1.7.0's shape (type, message, severity, reason_for_trigger,
    trend_direction, triggered_by, baseline_comparison when a baseline exists) plus ``kind``."""
    warm = baseline is not None and baseline.warm(thresholds)
    trend: str = h.trend
    comparison = None
    if a.type == "error_rate":
        limit = (
            thresholds.error_rate_critical
            if a.severity == "critical"
            else thresholds.error_rate_warning
        )
        # Like 1.7.0's error_rate_baseline_pct: an assumed normal until a baseline is learned
        # (never below it, so the comparison is always defined); in percent, as 1.7.0 has it.
        normal = thresholds.error_rate_baseline
        if warm and baseline is not None:
            normal = max(normal, baseline.error_rate)
        message = (
            f"Error rate elevated: {error_rate:.1%} (threshold {limit:.1%}, Baseline: {normal:.1%})"
        )
        comparison = _comparison(normal * 100, error_rate * 100)
    elif a.type == "rate_of_change" and recent_p95_ms is not None and prior_p95_ms is not None:
        message = (
            f"Sudden {(recent_p95_ms / prior_p95_ms - 1) * 100:.0f}% spike in p95_latency_ms "
            f"({prior_p95_ms:.1f} → {recent_p95_ms:.1f})"
        )
        trend = "increasing"  # 1.7.0's word for a rate-of-change alert
        comparison = _comparison(prior_p95_ms, recent_p95_ms)
    elif a.type in ("latency_spike", "anomaly") and p95_ms is not None:
        over = h.p95_critical_ms if p95_ms > h.p95_critical_ms else h.p95_warning_ms
        message = (
            f"P95 latency ({p95_ms:.0f}ms) exceeds threshold ({over:.0f}ms)"
            if a.type == "latency_spike"
            else a.reason_for_trigger
        )
        if warm and baseline is not None:
            comparison = _comparison(baseline.p95_ms, p95_ms)
    else:
        message = a.reason_for_trigger
    out: dict[str, Any] = {
        "type": ALERT_TYPE.get(a.type, a.type),
        "kind": a.type,
        "message": message,
        "severity": a.severity,
        "reason_for_trigger": a.reason_for_trigger,
        "trend_direction": trend,
        "triggered_by": TRIGGERED_BY.get(a.triggered_by, a.triggered_by),
    }
    if comparison is not None:  # 1.7.0 omits the key when there is nothing to compare
        out["baseline_comparison"] = comparison
    return out


def rate_of_change_events(
    h: HealthScore,
    *,
    recent_p95_ms: float | None,
    prior_p95_ms: float | None,
    thresholds: Thresholds,
    window_s: int,
    now: float,
) -> list[dict[str, Any]]:
    """1.7.0's top-level ``rate_of_change`` list: one event while our rate-of-change fires."""
    if (
        h.roc_ratio is None
        or h.roc_ratio < thresholds.roc_ratio
        or recent_p95_ms is None
        or prior_p95_ms is None
    ):
        return []
    return [
        {
            "metric": "p95_latency_ms",
            "previous_value": round(prior_p95_ms, 2),
            "current_value": round(recent_p95_ms, 2),
            "delta_pct": round((recent_p95_ms / prior_p95_ms - 1) * 100, 1),
            "window_s": window_s,
            "timestamp": round(now, 3),
        }
    ]


def adaptive_thresholds(
    h: HealthScore, baseline: Baseline | None, thresholds: Thresholds, now: float
) -> dict[str, Any] | None:
    """1.7.0's ``adaptive_thresholds``: null until there is a baseline. ``median_p95_ms`` is
    our baseline P95 (an EMA of healthy seconds, not a median), ``calibrated_from`` the healthy
    seconds it learned from; ``active`` once it is warm and tightens the thresholds."""
    if baseline is None or baseline.samples == 0:
        return None
    n = baseline.samples
    return {
        "warning_ms": round(h.p95_warning_ms, 1),
        "critical_ms": round(h.p95_critical_ms, 1),
        "median_p95_ms": round(baseline.p95_ms, 1),
        "calibrated_from": n,
        "confidence": "high" if n >= 60 else "medium" if n >= 10 else "low",
        "active": thresholds.adaptive and baseline.warm(thresholds),
        "computed_at": round(now, 3),
    }
