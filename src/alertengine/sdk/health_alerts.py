"""The ``/health/alerts`` document, built from buckets by a pure function.

The shape keeps every key of fastapi-alertengine 1.7.0 (``status``, ``health_score{score,
status,trend}``, ``metrics{overall_p95_ms,error_rate,anomaly_score,sample_size}``, ``alerts[{type,
severity,reason_for_trigger,triggered_by}]``) so existing pollers keep working, and adds
``service``, per-route detail, ``window`` and ``generated_at``. The top-level ``status`` *is*
``health_score.status``: derived once, by :func:`alertengine.sdk.scoring.status_of`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alertengine.sdk import compat
from alertengine.sdk.scoring import (
    Baseline,
    Thresholds,
    compute_trend,
    score_health,
)
from alertengine.sdk.sketch import LatencySketch
from alertengine.sdk.window import Bucket, Stats, merge_routes, merge_total, route_counts


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _stats_dict(s: Stats, window_s: int) -> dict[str, Any]:
    p50, p95, p99 = s.sketch.quantiles((0.5, 0.95, 0.99))
    return {
        "count": s.count,
        "request_rate": round(s.count / window_s, 3),
        "p50_ms": _ms(p50),
        "p95_ms": _ms(p95),
        "p99_ms": _ms(p99),
        "mean_ms": _ms(s.sum_ms / s.count) if s.count else None,
        "error_rate": round(s.error_rate_5xx, 4),
        "error_rate_5xx": round(s.error_rate_5xx, 4),
        "error_rate_4xx": round(s.error_rate_4xx, 4),
        "status_5xx_count": s.c5xx,
        "status_4xx_count": s.c4xx,
    }


@dataclass(frozen=True)
class Coverage:
    """Whose data the answer merges, and what it knows is missing from the window."""

    #: ``process`` (this process only), ``host`` (worker processes through a directory) or
    #: ``shared`` (replicas through Redis or another shared store).
    scope: str = "process"
    #: Processes (replicas) the answer covers: running ones, plus exited ones with data left.
    processes: int = 1
    processes_exited: int = 0
    #: Requests recorded by a replica that never reached this answer (see :func:`find_gaps`).
    requests_missing: int = 0
    #: ``[first, last]`` second ranges (inclusive) where those requests were lost.
    gap_spans: tuple[tuple[int, int], ...] = field(default_factory=tuple)


def find_gaps(
    per_replica: Mapping[str, Iterable[Bucket]],
) -> tuple[int, tuple[tuple[int, int], ...]]:
    """Requests missing between a replica's consecutive seconds, and where they were lost.

    Each bucket carries ``before``, the requests its replica had recorded before that second.
    Within one replica, ``before + count`` of a second must equal ``before`` of the next second
    present; any shortfall was recorded but never arrived (buffer overflow during a store
    outage, a store that lost its data). Only losses *between* seconds in the window are
    visible; pure.
    """
    missing = 0
    spans: list[tuple[int, int]] = []
    for buckets in per_replica.values():
        for b in buckets:
            if b.lost:  # the replica itself said it had to drop this second
                missing += b.lost
                spans.append((b.sec, b.sec))
        chain = sorted((b for b in buckets if b.before is not None), key=lambda b: b.sec)
        for prev, nxt in itertools.pairwise(chain):
            assert prev.before is not None and nxt.before is not None
            lost = nxt.before - (prev.before + prev.total.count + prev.lost)
            if lost > 0:
                missing += lost
                # Adjacent seconds: what arrived of ``prev`` was an early (open) version.
                between = nxt.sec - prev.sec > 1
                spans.append((prev.sec + 1, nxt.sec - 1) if between else (prev.sec, prev.sec))
    return missing, _merge_spans(spans)


def _merge_spans(spans: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return tuple(out)


def _window_meta(
    now: float, window_s: int, replicas: int, coverage: Coverage | None = None
) -> dict[str, Any]:
    end = int(now)
    cov = coverage or Coverage(processes=replicas)
    seconds_affected = sum(b - a + 1 for a, b in cov.gap_spans)
    return {
        "seconds": window_s,
        "bucket_seconds": 1,
        "start": end - window_s + 1,
        "end": end + 1,
        "replicas": replicas,
        "scope": cov.scope,
        "processes": cov.processes,
        "processes_exited": cov.processes_exited,
        "gap": {
            "complete": cov.requests_missing == 0,
            "requests_missing": cov.requests_missing,
            "seconds_affected": seconds_affected,
            "spans": [list(s) for s in cov.gap_spans],
        },
    }


def build_report(
    buckets: Sequence[Bucket],
    *,
    now: float,
    service: str,
    window_s: int,
    thresholds: Thresholds,
    baseline: Baseline | None = None,
    route_limit: int = 50,
    replicas: int = 1,
    coverage: Coverage | None = None,
    instance_id: str = "default",
) -> dict[str, Any]:
    """The health document for the seconds ``(now - window_s, now]`` of ``buckets``.

    ``buckets`` may hold several buckets for the same second (one per replica): they merge.
    """
    t = thresholds
    sec = int(now)
    lo = sec - window_s
    in_window = [b for b in buckets if lo < b.sec <= sec]
    total = merge_total(in_window, lo, sec)
    p95 = total.sketch.quantile(0.95)

    # Rate of change: the last roc_recent_s seconds against the rest of the window.
    cut = sec - t.roc_recent_s
    recent = merge_total(in_window, cut, sec)
    prior = merge_total(in_window, lo, cut)
    enough = recent.count >= t.min_samples and prior.count >= t.min_samples
    recent_p95 = recent.sketch.quantile(0.95) if enough else None
    prior_p95 = prior.sketch.quantile(0.95) if enough else None

    # Trend: the score of the last trend_span_s seconds against the span before it; in a
    # window shorter than two spans, the window's two halves (else trend could never move).
    span = max(1, min(t.trend_span_s, window_s // 2))
    late = merge_total(in_window, sec - span, sec)
    early = merge_total(in_window, sec - 2 * span, sec - span)
    late_score = early_score = None
    if late.count >= t.min_samples and early.count >= t.min_samples:
        late_score = score_health(
            late.sketch.quantile(0.95), late.error_rate_5xx, thresholds=t, baseline=baseline
        ).score
        early_score = score_health(
            early.sketch.quantile(0.95), early.error_rate_5xx, thresholds=t, baseline=baseline
        ).score
    trend = compute_trend(late_score, early_score, t)

    health = score_health(
        p95,
        total.error_rate_5xx,
        sample_size=total.count,
        thresholds=t,
        baseline=baseline,
        recent_p95_ms=recent_p95,
        prior_p95_ms=prior_p95,
        trend=trend,
    )

    # Rank by count first (cheap), then merge sketches only for the routes that are shown.
    counts = route_counts(in_window)
    shown = sorted(counts, key=lambda r: (-counts[r], r))[:route_limit]
    per_route = merge_routes(in_window, set(shown))
    routes: dict[str, Any] = {}
    for name in shown:
        s = per_route[name]
        detail = _stats_dict(s, window_s)
        route_health = score_health(
            s.sketch.quantile(0.95), s.error_rate_5xx, sample_size=s.count, thresholds=t
        )
        detail["score"] = route_health.score
        detail["status"] = route_health.status
        routes[name] = detail

    overall = _stats_dict(total, window_s)
    warm = baseline is not None and baseline.warm(t)
    metrics: dict[str, Any] = {
        "overall_p95_ms": overall["p95_ms"],
        "error_rate": overall["error_rate"],
        "anomaly_score": round(health.anomaly_score, 2),
        "sample_size": total.count,
        "p50_ms": overall["p50_ms"],
        "p99_ms": overall["p99_ms"],
        "mean_ms": overall["mean_ms"],
        "request_rate": overall["request_rate"],
        "error_rate_5xx": overall["error_rate_5xx"],
        "error_rate_4xx": overall["error_rate_4xx"],
        "status_5xx_count": total.c5xx,
        "status_4xx_count": total.c4xx,
        "rate_of_change": None if health.roc_ratio is None else round(health.roc_ratio, 3),
        "baseline_p95_ms": _ms(baseline.p95_ms) if warm and baseline is not None else None,
        "baseline_error_rate": (
            round(baseline.error_rate, 4) if warm and baseline is not None else None
        ),
        "p95_warning_ms": _ms(health.p95_warning_ms),
        "p95_critical_ms": _ms(health.p95_critical_ms),
        "routes_tracked": len(counts),
    }
    metrics["webhook_p95_ms"], metrics["api_p95_ms"] = _webhook_and_api_p95(in_window, total)
    p95_fmt = "–" if p95 is None else f"{p95:.0f}"
    return {
        "service": service,
        "service_name": service,
        "instance_id": instance_id,
        "status": health.status,
        "health_score": {
            "score": health.score,
            "status": compat.health_status(health.status),
            "level": health.status,
            "trend": health.trend,
            "components": compat.components(health),
        },
        "metrics": metrics,
        "alerts": [
            compat.alert(
                a,
                h=health,
                p95_ms=p95,
                error_rate=total.error_rate_5xx,
                baseline=baseline,
                thresholds=t,
                recent_p95_ms=recent_p95,
                prior_p95_ms=prior_p95,
            )
            for a in health.alerts
        ],
        "rate_of_change": compat.rate_of_change_events(
            health,
            recent_p95_ms=recent_p95,
            prior_p95_ms=prior_p95,
            thresholds=t,
            window_s=window_s,
            now=now,
        ),
        "adaptive_thresholds": compat.adaptive_thresholds(health, baseline, t, now),
        "routes": routes,
        "window": _window_meta(now, window_s, replicas, coverage),
        "generated_at": round(now, 3),
        "timestamp": int(now),
        "summary": f"{health.status}: score {health.score}, P95 {p95_fmt} ms, "
        f"5xx {total.error_rate_5xx:.1%} over {total.count} requests" + _coverage_note(coverage),
    }


def _webhook_and_api_p95(buckets: Sequence[Bucket], total: Stats) -> tuple[float, float]:
    """1.7.0's split: routes with "webhook" in their path, and the rest; 0.0 when none.

    The rest is the total's sketch minus the webhook routes' bins (sketches are counts, so the
    subtraction is exact), so thousands of API routes are never merged one by one.
    """
    webhook = Stats()
    for b in buckets:
        for route, s in b.routes.items():
            if "webhook" in route.lower():
                webhook.merge(s)
    api = LatencySketch()
    for key, n in total.sketch.bins.items():
        left = n - webhook.sketch.bins.get(key, 0)
        if left > 0:
            api.bins[key] = left
            api.count += left
    w95 = webhook.sketch.quantile(0.95)
    a95 = api.quantile(0.95)
    return (round(w95, 1) if w95 is not None else 0.0, round(a95, 1) if a95 is not None else 0.0)


def _coverage_note(coverage: Coverage | None) -> str:
    if coverage is None:
        return ""
    note = ""
    if coverage.scope != "process":
        note += f" from {coverage.processes} processes"
    if coverage.requests_missing:
        note += f"; {coverage.requests_missing} requests missing from the window (data gap)"
    return note


def unavailable_report(
    *,
    now: float,
    service: str,
    window_s: int,
    reason: str,
    replicas: int = 0,
    instance_id: str = "default",
) -> dict[str, Any]:
    """Fail closed: the store cannot be read, so the SDK says it does not know (never "ok")."""
    text = f"metrics store unreachable: {reason}"
    return {
        "service": service,
        "service_name": service,
        "instance_id": instance_id,
        "status": "unknown",
        "health_score": {
            "score": None,
            "status": "unknown",
            "level": "unknown",
            "trend": "stable",
            "components": {"latency": None, "errors": None, "anomalies": None},
        },
        "metrics": {
            "overall_p95_ms": None,
            "webhook_p95_ms": None,
            "api_p95_ms": None,
            "error_rate": None,
            "anomaly_score": None,
            "sample_size": 0,
            "p50_ms": None,
            "p99_ms": None,
            "request_rate": None,
            "error_rate_5xx": None,
            "error_rate_4xx": None,
            "status_5xx_count": None,
            "status_4xx_count": None,
        },
        "alerts": [
            {
                "type": "store_unavailable",
                "kind": "store_unavailable",
                "message": text,
                "severity": "critical",
                "reason_for_trigger": text,
                "trend_direction": "stable",
                "triggered_by": "store",
            }
        ],
        "rate_of_change": [],
        "adaptive_thresholds": None,
        "routes": {},
        "window": _window_meta(now, window_s, replicas, Coverage(processes=replicas)),
        "generated_at": round(now, 3),
        "timestamp": int(now),
        "summary": f"unknown: metrics store unreachable ({reason})",
    }
