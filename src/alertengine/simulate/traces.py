"""Scripted metric traces: a service's health numbers at any moment of the simulation. Pure.

A service starts from its baseline; each active event overrides one number (the latest
event wins when two overlap). A recovery that worked ends every event that started before
it (``cut``); events scripted for later still happen. Numbers become a score through the
SDK's own scoring (:func:`alertengine.sdk.scoring.score_health`), so the simulator scores
exactly as a real target would; a ``score`` in the baseline or an event pins the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alertengine.policy import HealthSnapshot
from alertengine.sdk.scoring import score_health, status_of
from alertengine.simulate.scenario import Service


@dataclass(frozen=True, slots=True)
class Health:
    reachable: bool
    p95_ms: float
    error_rate: float
    traffic: int
    score: float | None
    status: str
    detail: str = ""

    def snapshot(self, at: float) -> HealthSnapshot:
        if not self.reachable:
            return HealthSnapshot(
                observed_at=at,
                reachable=False,
                status="unknown",
                detail=self.detail or "connection refused",
            )
        return HealthSnapshot(
            observed_at=at,
            reachable=True,
            score=self.score,
            status=self.status,
            p95_ms=self.p95_ms,
            error_rate=self.error_rate,
            sample_size=self.traffic,
            source="poll",
            detail=self.detail,
        )


def health_at(service: Service, t: float, *, cut: float | None = None) -> Health:
    """The service's health at ``t`` seconds; events begun before ``cut`` end at ``cut``."""
    b = service.baseline
    p95, err, traffic, score = b.p95_ms, b.error_rate, b.traffic, b.score
    reachable, detail = True, ""
    for e in service.events:
        if not e.active(t):
            continue
        if cut is not None and e.at < cut <= t:
            continue
        if e.kind == "unreachable":
            reachable, detail = False, e.detail or "connection refused"
        elif e.value is None:  # pragma: no cover - the scenario model requires a value
            continue
        elif e.kind == "error_rate":
            err = e.value
        elif e.kind == "p95":
            p95 = e.value
        elif e.kind == "traffic":
            traffic = int(e.value)
        elif e.kind == "score":
            score = e.value
        if e.detail:
            detail = e.detail
    if not reachable:
        return Health(False, p95, err, 0, None, "unknown", detail)
    if score is None:
        hs = score_health(p95, err, sample_size=traffic)
        return Health(True, p95, err, traffic, float(hs.score), hs.status, detail)
    return Health(True, p95, err, traffic, float(score), status_of(score), detail)


def health_body(service: Service, h: Health) -> dict[str, Any]:
    """What the target's ``/health/alerts`` would have said, for the diagnosers."""
    return {
        "status": h.status,
        "reachable": h.reachable,
        "score": h.score,
        "p95_ms": h.p95_ms if h.reachable else None,
        "error_rate": h.error_rate if h.reachable else None,
        "sample_size": h.traffic,
        "metrics": {
            "p95_ms": h.p95_ms,
            "baseline_p95_ms": service.baseline.p95_ms,
            "error_rate": h.error_rate,
            "sample_size": h.traffic,
        },
    }
