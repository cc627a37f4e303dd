"""A small clock-driven circuit breaker (closed → open → half-open → closed).

Pure state over timestamps passed in: the dispatcher keeps one per (tenant, provider), so
one tenant's broken credentials never trip delivery for another tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "half_open"]


@dataclass
class CircuitBreaker:
    failure_threshold: int = 3
    reset_after_s: float = 60.0
    failures: int = 0
    opened_at: float | None = None

    def state(self, now: float) -> State:
        if self.opened_at is None:
            return "closed"
        if now - self.opened_at >= self.reset_after_s:
            return "half_open"
        return "open"

    def allow(self, now: float) -> bool:
        """Closed lets everything through; half-open lets a probe through."""
        return self.state(now) != "open"

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self, now: float) -> None:
        if self.state(now) == "half_open":
            self.opened_at = now  # the probe failed: stay open for another period
            return
        self.failures += 1
        if self.failures >= self.failure_threshold:
            self.opened_at = now
