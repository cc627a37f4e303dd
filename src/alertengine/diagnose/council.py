"""The Diagnostic Council: two diagnosers, two lenses, a deterministic verdict.

Both diagnosers run independently and concurrently. They *agree* when they name the same
category or suggest the same action (compared after normalising case and punctuation);
otherwise it is a dissent, and the human gets both theories and what to check to tell
them apart. Agreement is decided by code, never by asking a model.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from alertengine.diagnose.base import Diagnoser, Diagnosis, DiagnosisContext, failed

#: What to look at to confirm (or rule out) each category.
CHECKS: Mapping[str, str] = {
    "database": "DB slow query log and connection pool usage",
    "latency": "worker/CPU saturation and request queue depth",
    "dependency": "upstream response times and timeout counts",
    "network": "DNS/TLS errors and load balancer health",
    "deployment": "the latest deploy's diff and errors since it",
    "server_errors": "application error logs for the failing routes",
    "client_errors": "4xx responses by client and auth logs",
    "unreachable": "process, host and load balancer status",
    "unknown": "raw request logs around the incident start",
}

_TRUTHY = {"1", "true", "yes", "on"}


def council_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """``COUNCIL_ENABLED`` (1/true/yes/on); off by default."""
    env = os.environ if environ is None else environ
    return env.get("COUNCIL_ENABLED", "").strip().lower() in _TRUTHY


def _norm_action(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def agree(a: Diagnosis, b: Diagnosis) -> bool:
    """Both succeeded and name the same category or the same action."""
    if not (a.ok and b.ok):
        return False
    if a.category == b.category:
        return True
    action_a, action_b = _norm_action(a.suggested_action), _norm_action(b.suggested_action)
    return bool(action_a) and action_a == action_b


@dataclass(frozen=True)
class CouncilVerdict:
    agree: bool
    a: Diagnosis
    b: Diagnosis
    what_to_check: str
    combined: Diagnosis

    @property
    def dissent(self) -> bool:
        """Both answered and disagree: the message becomes a Dissent Alert."""
        return self.a.ok and self.b.ok and not self.agree

    def to_dict(self) -> dict[str, object]:
        return {
            "agree": self.agree,
            "dissent": self.dissent,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "what_to_check": self.what_to_check,
            "combined": self.combined.to_dict(),
        }


def judge(a: Diagnosis, b: Diagnosis) -> CouncilVerdict:
    """The pure verdict over two diagnoses."""
    model = f"council({a.model}+{b.model})"
    if not a.ok and not b.ok:
        combined = failed(model, f"both diagnosers failed: A: {a.error}; B: {b.error}")
        return CouncilVerdict(False, a, b, CHECKS["unknown"], combined)
    if not (a.ok and b.ok):
        good, bad, label = (a, b, "B") if a.ok else (b, a, "A")
        check = (
            f"{CHECKS.get(good.category, CHECKS['unknown'])} (model {label} failed: {bad.error})"
        )
        return CouncilVerdict(False, a, b, check, replace(good, model=model))
    lead, other = (a, b) if a.confidence >= b.confidence else (b, a)
    if agree(a, b):
        evidence = tuple(dict.fromkeys(lead.evidence + other.evidence))
        combined = replace(lead, evidence=evidence, model=model)
        check = CHECKS.get(lead.category, CHECKS["unknown"])
        return CouncilVerdict(True, a, b, check, combined)
    # A strong competing theory lowers belief in the leading one.
    confidence = round(lead.confidence * (1.0 - other.confidence), 2)
    combined = replace(lead, confidence=confidence, model=model)
    check = (
        f"{CHECKS.get(a.category, CHECKS['unknown'])} vs "
        f"{CHECKS.get(b.category, CHECKS['unknown'])}"
    )
    return CouncilVerdict(False, a, b, check, combined)


class Council:
    """Runs ``a`` and ``b`` concurrently and judges them. Never raises."""

    def __init__(self, a: Diagnoser, b: Diagnoser) -> None:
        self.a = a
        self.b = b
        self.name = f"council({a.name}+{b.name})"

    async def convene(self, ctx: DiagnosisContext) -> CouncilVerdict:
        results = await asyncio.gather(
            self.a.diagnose(ctx), self.b.diagnose(ctx), return_exceptions=True
        )
        # Diagnosers promise not to raise; a broken one still must not break the council.
        da, db = (
            r if isinstance(r, Diagnosis) else failed(d.name, f"raised {type(r).__name__}")
            for r, d in zip(results, (self.a, self.b), strict=True)
        )
        return judge(da, db)

    async def diagnose(self, ctx: DiagnosisContext) -> Diagnosis:
        """The council as a plain :class:`Diagnoser` (the combined diagnosis)."""
        return (await self.convene(ctx)).combined
