"""What every diagnoser takes and gives.

A diagnosis is advisory data attached to an incident: it explains and recommends, it never
moves an incident's stage. Diagnosers never raise; a failure is a :class:`Diagnosis` with
``ok=False``, confidence 0 and the reason in ``error``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alertengine.commits import Commit

#: The closed vocabulary of causes; agreement between diagnosers is judged on it.
CATEGORIES: tuple[str, ...] = (
    "database",  # slow/locked queries, pool exhaustion, a migration
    "latency",  # saturation without errors: workers, CPU, GC, a shared slow path
    "dependency",  # an upstream/downstream service or third-party API
    "network",  # DNS, TLS, connectivity, load balancer
    "deployment",  # a code change broke requests
    "server_errors",  # 5xx without a clearer signature
    "client_errors",  # 4xx: bad clients, auth/config changes, abuse
    "unreachable",  # the service itself does not answer
    "unknown",
)


@dataclass(frozen=True)
class DiagnosisContext:
    """Everything a diagnoser may look at. ``snapshot`` carries the health numbers
    (score, status, p95_ms, error_rate, sample_size, reachable) plus the SDK's
    ``metrics``, ``routes`` and ``alerts`` when present."""

    tenant_id: str
    service: str
    incident_id: str
    snapshot: Mapping[str, Any]
    commits: Sequence[Commit] = ()
    opened_at: float = 0.0


@dataclass(frozen=True)
class Diagnosis:
    category: str
    cause: str
    evidence: tuple[str, ...] = field(default=())
    suggested_action: str = ""
    confidence: float = 0.0
    model: str = ""
    ok: bool = True
    error: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, got {self.confidence}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "cause": self.cause,
            "evidence": list(self.evidence),
            "suggested_action": self.suggested_action,
            "confidence": self.confidence,
            "model": self.model,
            "ok": self.ok,
            "error": self.error,
        }


def failed(model: str, error: str) -> Diagnosis:
    """The one shape of a diagnoser failure."""
    return Diagnosis(
        category="unknown",
        cause="",
        suggested_action="",
        confidence=0.0,
        model=model,
        ok=False,
        error=error,
    )


class Diagnoser(Protocol):
    name: str

    async def diagnose(self, ctx: DiagnosisContext) -> Diagnosis:
        """Explain ``ctx``. Never raises: failures come back as ``ok=False``."""
        ...
