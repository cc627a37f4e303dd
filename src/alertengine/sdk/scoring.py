"""Health scoring: plain numbers in, a score, a status, a trend and alerts out. No I/O, no state.

The orchestrator's live policy simulator and the governance simulator call these functions
directly, so every formula here is documented (with its defaults) in ``docs/sdk.md``.

One status, derived once: the status is a function of the score alone
(``score < critical_score`` → critical, ``score < warning_score`` → warning, else ok), and each
penalty is shaped so that crossing a threshold moves the score across the matching boundary.
The top-level ``status`` of ``/health/alerts`` is this same value, so the two can never disagree
(the original 1.7.0 could say "critical" at the top and "degraded" in ``health_score``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Status = Literal["ok", "warning", "critical"]
Trend = Literal["improving", "stable", "degrading"]
Severity = Literal["warning", "critical"]


class Thresholds(BaseModel):
    """Every number the score is computed from. Frozen: a set of thresholds is a value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    p95_warning_ms: float = Field(1000.0, gt=0, description="P95 above this is a warning")
    p95_critical_ms: float = Field(2000.0, gt=0, description="P95 above this is critical")
    error_rate_warning: float = Field(0.02, gt=0, le=1, description="5xx share above: warning")
    error_rate_critical: float = Field(0.10, gt=0, le=1, description="5xx share above: critical")
    warning_score: int = Field(70, ge=1, le=100, description="score below this is a warning")
    critical_score: int = Field(40, ge=0, le=99, description="score below this is critical")
    min_samples: int = Field(5, ge=1, description="fewer requests than this: no penalties")
    error_rate_baseline: float = Field(
        0.005,
        ge=0,
        le=1,
        description="normal 5xx share assumed until one is learned (alerts' baseline_comparison)",
    )
    # -- baseline, anomaly and adaptive thresholds -----------------------------------------
    baseline_alpha: float = Field(
        0.02, gt=0, le=1, description="EMA weight of each healthy closed second"
    )
    baseline_warmup: int = Field(
        30, ge=1, description="healthy seconds before the baseline is trusted"
    )
    anomaly_warning: float = Field(
        3.0, gt=0, description="anomaly score (deviations above baseline) that starts a penalty"
    )
    anomaly_floor_ratio: float = Field(
        0.1, gt=0, description="deviation is at least this share of the baseline P95"
    )
    adaptive: bool = Field(True, description="tighten P95 thresholds from the baseline")
    adaptive_warning_factor: float = Field(3.0, gt=1, description="warning = factor × baseline")
    adaptive_critical_factor: float = Field(6.0, gt=1, description="critical = factor × baseline")
    adaptive_floor_ms: float = Field(
        200.0, gt=0, description="adaptive thresholds never go below this"
    )
    # -- rate of change and trend -----------------------------------------------------------
    roc_ratio: float = Field(2.0, gt=1, description="recent P95 ≥ ratio × prior P95 fires")
    roc_recent_s: int = Field(5, ge=1, description="the 'recent' span, seconds")
    roc_min_p95_ms: float = Field(
        50.0, ge=0, description="ignore rate-of-change while recent P95 is below this"
    )
    trend_span_s: int = Field(15, ge=1, description="compare the last span with the one before")
    trend_delta: float = Field(10.0, gt=0, description="score change that counts as a trend")

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.p95_critical_ms <= self.p95_warning_ms:
            raise ValueError("p95_critical_ms must be greater than p95_warning_ms")
        if self.error_rate_critical <= self.error_rate_warning:
            raise ValueError("error_rate_critical must be greater than error_rate_warning")
        if self.critical_score >= self.warning_score - 1:
            raise ValueError("critical_score must be at least 2 below warning_score")
        if self.adaptive_critical_factor <= self.adaptive_warning_factor:
            raise ValueError("adaptive_critical_factor must exceed adaptive_warning_factor")
        return self


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Baseline:
    """An EMA of healthy P95 and 5xx share, with an EMA of the P95's absolute deviation."""

    p95_ms: float = 0.0
    p95_dev_ms: float = 0.0
    error_rate: float = 0.0
    samples: int = 0

    def warm(self, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> bool:
        return self.samples >= thresholds.baseline_warmup


@dataclass(frozen=True)
class Alert:
    type: str
    severity: Severity
    reason_for_trigger: str
    triggered_by: str

    def as_dict(self) -> dict[str, str]:
        return {
            "type": self.type,
            "severity": self.severity,
            "reason_for_trigger": self.reason_for_trigger,
            "triggered_by": self.triggered_by,
        }


@dataclass(frozen=True)
class HealthScore:
    score: int
    status: Status
    trend: Trend = "stable"
    latency_penalty: float = 0.0
    error_penalty: float = 0.0
    anomaly_penalty: float = 0.0
    roc_penalty: float = 0.0
    anomaly_score: float = 0.0
    roc_ratio: float | None = None
    p95_warning_ms: float = DEFAULT_THRESHOLDS.p95_warning_ms
    p95_critical_ms: float = DEFAULT_THRESHOLDS.p95_critical_ms
    alerts: tuple[Alert, ...] = field(default_factory=tuple)

    def components(self) -> dict[str, float]:
        return {
            "latency_penalty": round(self.latency_penalty, 2),
            "error_penalty": round(self.error_penalty, 2),
            "anomaly_penalty": round(self.anomaly_penalty, 2),
            "roc_penalty": round(self.roc_penalty, 2),
        }


def status_of(score: float, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Status:
    """The one status rule: below ``critical_score`` critical, below ``warning_score`` warning."""
    if score < thresholds.critical_score:
        return "critical"
    if score < thresholds.warning_score:
        return "warning"
    return "ok"


def threshold_penalty(
    value: float, warning: float, critical: float, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> float:
    """Penalty (0..100) for one signal against its warning/critical thresholds.

    ``Pw = 100 - warning_score`` and ``Pc = 100 - critical_score``:
    up to warning ``Pw·(v/w)³`` (gentle, exactly ``Pw`` at the threshold, so still ok); above
    warning up to critical ``Pw + 1 + (Pc - Pw - 1)·(v - w)/(c - w)`` (warning, exactly ``Pc``
    at critical); above critical ``Pc + 1 + (99 - Pc)·min(1, (v - c)/c)`` (critical). The ``+1``
    steps make "exceeds a threshold" and "crosses a score boundary" the same event.
    """
    pw = 100.0 - thresholds.warning_score
    pc = 100.0 - thresholds.critical_score
    if value <= 0:
        return 0.0
    if value <= warning:
        return pw * (value / warning) ** 3
    if value <= critical:
        return pw + 1.0 + (pc - pw - 1.0) * (value - warning) / (critical - warning)
    return pc + 1.0 + (99.0 - pc) * min(1.0, (value - critical) / critical)


def update_baseline(
    baseline: Baseline,
    p95_ms: float,
    error_rate: float,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Baseline:
    """One EMA step with weight ``baseline_alpha`` (the first sample seeds it).

    Callers feed only healthy closed seconds, so an incident never becomes the new normal.
    """
    if baseline.samples == 0:
        return Baseline(p95_ms=p95_ms, p95_dev_ms=0.0, error_rate=error_rate, samples=1)
    a = thresholds.baseline_alpha
    mean = baseline.p95_ms + a * (p95_ms - baseline.p95_ms)
    dev = baseline.p95_dev_ms + a * (abs(p95_ms - baseline.p95_ms) - baseline.p95_dev_ms)
    err = baseline.error_rate + a * (error_rate - baseline.error_rate)
    return Baseline(p95_ms=mean, p95_dev_ms=dev, error_rate=err, samples=baseline.samples + 1)


def anomaly_score(
    p95_ms: float | None, baseline: Baseline | None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> float:
    """How many (floored) deviations the P95 sits above the baseline; 0 until it is warm.

    ``max(0, (p95 - mean) / max(dev, anomaly_floor_ratio·mean, 1 ms))``.
    """
    if p95_ms is None or baseline is None or not baseline.warm(thresholds):
        return 0.0
    scale = max(baseline.p95_dev_ms, thresholds.anomaly_floor_ratio * baseline.p95_ms, 1.0)
    return max(0.0, (p95_ms - baseline.p95_ms) / scale)


def adaptive_thresholds(
    baseline: Baseline | None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> tuple[float, float]:
    """Effective (warning, critical) P95 thresholds in ms.

    With a warm baseline: ``min(absolute, max(floor, factor × baseline P95))`` — they only ever
    tighten the absolute thresholds, so a slowly poisoned baseline cannot hide an outage.
    """
    warn, crit = thresholds.p95_warning_ms, thresholds.p95_critical_ms
    if not thresholds.adaptive or baseline is None or not baseline.warm(thresholds):
        return warn, crit
    floor = thresholds.adaptive_floor_ms
    a_warn = min(warn, max(floor, thresholds.adaptive_warning_factor * baseline.p95_ms))
    a_crit = min(crit, max(floor * 2, thresholds.adaptive_critical_factor * baseline.p95_ms))
    return a_warn, max(a_crit, a_warn * 1.01)


def rate_of_change(
    recent_p95_ms: float | None,
    prior_p95_ms: float | None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> float | None:
    """``recent / prior`` P95, or None when either side is missing or recent is negligible."""
    if recent_p95_ms is None or prior_p95_ms is None or prior_p95_ms <= 0:
        return None
    if recent_p95_ms < thresholds.roc_min_p95_ms:
        return None
    return recent_p95_ms / prior_p95_ms


def compute_trend(
    recent_score: float | None,
    prior_score: float | None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Trend:
    """``improving`` / ``degrading`` when the score moved by at least ``trend_delta``."""
    if recent_score is None or prior_score is None:
        return "stable"
    delta = recent_score - prior_score
    if delta >= thresholds.trend_delta:
        return "improving"
    if delta <= -thresholds.trend_delta:
        return "degrading"
    return "stable"


def score_health(
    p95_ms: float | None,
    error_rate: float,
    *,
    sample_size: int | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    baseline: Baseline | None = None,
    recent_p95_ms: float | None = None,
    prior_p95_ms: float | None = None,
    trend: Trend = "stable",
) -> HealthScore:
    """Score 0..100, status and alerts for one window.

    ``score = floor(max(0, 100 - min(100, latency + errors + anomaly + rate_of_change)))``,
    each penalty documented on its function. ``sample_size`` below ``min_samples`` means no
    penalty at all (one failed request out of one is not an outage); ``None`` means "enough".
    """
    warn_ms, crit_ms = adaptive_thresholds(baseline, thresholds)
    adaptive_on = (warn_ms, crit_ms) != (thresholds.p95_warning_ms, thresholds.p95_critical_ms)
    enough = sample_size is None or sample_size >= thresholds.min_samples
    if not enough or p95_ms is None:
        return HealthScore(
            score=100,
            status="ok",
            trend=trend,
            p95_warning_ms=warn_ms,
            p95_critical_ms=crit_ms,
        )
    pw = 100.0 - thresholds.warning_score
    latency = threshold_penalty(p95_ms, warn_ms, crit_ms, thresholds)
    errors = threshold_penalty(
        error_rate, thresholds.error_rate_warning, thresholds.error_rate_critical, thresholds
    )
    anomaly = anomaly_score(p95_ms, baseline, thresholds)
    # Anomaly alone can reach a warning (Pw + 5), never a critical: it is relative, not absolute.
    anomaly_pen = (
        min(
            pw + 5.0,
            (pw + 5.0) * (anomaly - thresholds.anomaly_warning) / thresholds.anomaly_warning,
        )
        if anomaly > thresholds.anomaly_warning
        else 0.0
    )
    roc = rate_of_change(recent_p95_ms, prior_p95_ms, thresholds)
    roc_pen = pw + 1.0 if roc is not None and roc >= thresholds.roc_ratio else 0.0
    total = min(100.0, latency + errors + anomaly_pen + roc_pen)
    score = math.floor(max(0.0, 100.0 - total))
    status = status_of(score, thresholds)

    alerts: list[Alert] = []
    source = "adaptive_threshold" if adaptive_on else "absolute_threshold"
    if p95_ms > crit_ms or p95_ms > warn_ms:
        over = crit_ms if p95_ms > crit_ms else warn_ms
        alerts.append(
            Alert(
                "latency_spike",
                "critical" if p95_ms > crit_ms else "warning",
                f"P95 latency {p95_ms:.0f}ms exceeds threshold {over:.0f}ms",
                source,
            )
        )
    if error_rate > thresholds.error_rate_warning:
        crit = error_rate > thresholds.error_rate_critical
        limit = thresholds.error_rate_critical if crit else thresholds.error_rate_warning
        alerts.append(
            Alert(
                "error_rate",
                "critical" if crit else "warning",
                f"5xx error rate {error_rate:.1%} exceeds threshold {limit:.1%}",
                "absolute_threshold",
            )
        )
    if anomaly_pen > 0 and baseline is not None:
        alerts.append(
            Alert(
                "anomaly",
                "warning",
                f"P95 latency {p95_ms:.0f}ms is {anomaly:.1f} deviations above the "
                f"baseline {baseline.p95_ms:.0f}ms",
                "baseline",
            )
        )
    if roc_pen > 0 and roc is not None:
        alerts.append(
            Alert(
                "rate_of_change",
                "warning",
                f"P95 latency rose {roc:.1f}x in the last {thresholds.roc_recent_s}s "
                f"({prior_p95_ms:.0f}ms → {recent_p95_ms:.0f}ms)",
                "rate_of_change",
            )
        )
    return HealthScore(
        score=score,
        status=status,
        trend=trend,
        latency_penalty=latency,
        error_penalty=errors,
        anomaly_penalty=anomaly_pen,
        roc_penalty=roc_pen,
        anomaly_score=anomaly,
        roc_ratio=roc,
        p95_warning_ms=warn_ms,
        p95_critical_ms=crit_ms,
        alerts=tuple(alerts),
    )
