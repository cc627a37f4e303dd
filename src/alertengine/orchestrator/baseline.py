"""Per-target baseline memory: an EMA of what healthy looks like. Pure.

Updated only from healthy observations, so an incident never teaches the orchestrator that
the incident is normal. Persisted by the orchestrator (collection ``baselines``) so a restart
does not forget a service's normal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from alertengine.policy import HealthSnapshot

DEFAULT_ALPHA = 0.05  # ~20 healthy polls of memory: slow to learn, slow to forget


@dataclass(frozen=True, slots=True)
class Baseline:
    p95_ms: float | None = None
    error_rate: float | None = None
    score: float | None = None
    samples: int = 0
    updated_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Baseline:
        def f(k: str) -> float | None:
            v = d.get(k)
            return float(v) if isinstance(v, (int, float)) else None

        return cls(
            f("p95_ms"),
            f("error_rate"),
            f("score"),
            int(d.get("samples", 0)),
            float(d.get("updated_at", 0.0)),
        )


def _ema(old: float | None, new: float | None, alpha: float) -> float | None:
    if new is None:
        return old
    if old is None:
        return new
    return old + alpha * (new - old)


def learn(b: Baseline | None, s: HealthSnapshot, *, alpha: float = DEFAULT_ALPHA) -> Baseline:
    """The baseline after one more *healthy* observation (callers check healthiness)."""
    b = b or Baseline()
    return Baseline(
        p95_ms=_ema(b.p95_ms, s.p95_ms, alpha),
        error_rate=_ema(b.error_rate, s.error_rate, alpha),
        score=_ema(b.score, s.score, alpha),
        samples=b.samples + 1,
        updated_at=s.observed_at,
    )


def deviation(b: Baseline | None, s: HealthSnapshot) -> dict[str, float]:
    """How far an observation is from normal, as ratios (for diagnosis and messages)."""
    out: dict[str, float] = {}
    if b is None or b.samples == 0:
        return out
    if b.p95_ms and s.p95_ms is not None:
        out["p95_x_baseline"] = round(s.p95_ms / b.p95_ms, 2)
    if b.error_rate is not None and s.error_rate is not None:
        out["error_rate_delta"] = round(s.error_rate - b.error_rate, 4)
    return out
