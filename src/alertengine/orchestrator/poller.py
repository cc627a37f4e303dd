"""Turn a target's ``/health/alerts`` answer (or its silence) into a :class:`HealthSnapshot`.

Tolerant of shape drift (the original 1.7.0 shape, ours, missing fields): anything that is
not a usable answer becomes an unreachable/unknown snapshot with the reason, never a crash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import httpx

from alertengine.policy import HealthSnapshot


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def snapshot_from_health(
    body: Mapping[str, Any], *, observed_at: float, source: str = "poll"
) -> HealthSnapshot:
    hs = body.get("health_score")
    hs = hs if isinstance(hs, Mapping) else {}
    metrics = body.get("metrics")
    metrics = metrics if isinstance(metrics, Mapping) else {}
    status = body.get("status", hs.get("status", "unknown"))
    status = status if isinstance(status, str) else "unknown"
    if status == "degraded":  # the original's word for what it also calls critical
        status = "warning"
    elif status == "healthy":  # 1.7.0's health_score.status word for ok
        status = "ok"
    err = _num(metrics.get("error_rate_5xx"))
    if err is None:
        err = _num(metrics.get("error_rate"))
    sample = _num(metrics.get("sample_size"))
    return HealthSnapshot(
        observed_at=observed_at,
        reachable=True,
        score=_num(hs.get("score")),
        status=status,
        p95_ms=_num(metrics.get("overall_p95_ms")),
        error_rate=err,
        sample_size=int(sample) if sample is not None else 0,
        source=source,
        detail=_alert_summary(body.get("alerts")),
    )


def _alert_summary(alerts: Any) -> str:
    if not isinstance(alerts, list):
        return ""
    parts = []
    for a in alerts[:5]:
        if isinstance(a, Mapping):
            parts.append(str(a.get("type", "alert")))
    return ", ".join(parts)


async def poll(
    client: httpx.AsyncClient, url: str, *, timeout_s: float, now: float
) -> tuple[HealthSnapshot, dict[str, Any]]:
    """One poll. Returns the snapshot and the raw body (empty when unreachable)."""
    try:
        resp = await client.get(url, timeout=timeout_s, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
        return HealthSnapshot(observed_at=now, reachable=False, detail=reason), {}
    if resp.status_code >= 500 and resp.status_code != 503:
        return (
            HealthSnapshot(observed_at=now, reachable=False, detail=f"HTTP {resp.status_code}"),
            {},
        )
    try:
        body = resp.json()
    except ValueError:
        return (
            HealthSnapshot(observed_at=now, reachable=False, detail="answer is not JSON"),
            {},
        )
    if not isinstance(body, dict):
        return HealthSnapshot(
            observed_at=now, reachable=False, detail="answer is not an object"
        ), {}
    return snapshot_from_health(body, observed_at=now), body
