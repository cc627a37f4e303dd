"""The orchestrator's own degraded mode, from the health of what it depends on. Pure.

NORMAL: everything answers. DEGRADED: something optional fails (a notification provider, a
diagnoser) — incidents still flow, on policy. EMERGENCY: the ledger or state store cannot be
used (unreachable, disk full, read-only) — nothing may advance, because nothing could be
proven. The mode returns to NORMAL by itself when the cause clears; every change is ledgered.

Hysteresis: a critical component goes down on its first failure (a failed write is a fact),
but counts as back only after ``recover_checks`` good checks in a row spanning at least
``recover_after_s`` without a failure. An outage whose edge flickers (a disk that frees a
few bytes, a Redis that is still loading) is one mode change, not one per tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum


class Mode(str, Enum):
    NORMAL = "NORMAL"
    DEGRADED = "DEGRADED"
    EMERGENCY = "EMERGENCY"


CRITICAL_COMPONENTS = frozenset({"ledger", "store"})

#: A critical component is back only after this long without a failure …
RECOVER_AFTER_S = 5.0
#: … and this many good checks in a row (the orchestrator checks once per loop tick).
RECOVER_CHECKS = 2


def compute_mode(components: Mapping[str, bool]) -> tuple[Mode, list[str]]:
    """``components`` maps a component name to whether it is healthy. Returns mode and culprits."""
    down = sorted(name for name, ok in components.items() if not ok)
    if any(name in CRITICAL_COMPONENTS for name in down):
        return Mode.EMERGENCY, down
    if down:
        return Mode.DEGRADED, down
    return Mode.NORMAL, []


@dataclass
class ComponentHealth:
    ok: bool = True
    #: Why it is down (or last was): the failure's own words, e.g. "database or disk is full".
    cause: str = ""
    #: The same in a few secret-free words ("disk full", "unreachable"): for /healthz.
    short: str = ""
    down_since: float | None = None
    last_failure_at: float | None = None
    good_checks: int = 0


class Components:
    """Each dependency's health, with hysteresis on the critical ones. Time is passed in."""

    def __init__(
        self,
        names: Iterable[str] = ("ledger", "store"),
        *,
        recover_after_s: float = RECOVER_AFTER_S,
        recover_checks: int = RECOVER_CHECKS,
    ) -> None:
        self.recover_after_s = recover_after_s
        self.recover_checks = recover_checks
        self.state: dict[str, ComponentHealth] = {n: ComponentHealth() for n in names}

    def report(self, name: str, ok: bool, cause: str, now: float, *, short: str = "") -> bool:
        """One observation of ``name``; returns whether its up/down state changed."""
        c = self.state.setdefault(name, ComponentHealth())
        if not ok:
            c.last_failure_at, c.good_checks = now, 0
            c.cause = cause or c.cause or "failed"
            c.short = short or c.short or "failed"
            if c.ok:
                c.ok, c.down_since = False, now
                return True
            return False
        if c.ok:
            return False
        c.good_checks += 1
        if name in CRITICAL_COMPONENTS:
            quiet = now - (c.last_failure_at if c.last_failure_at is not None else now)
            if c.good_checks < self.recover_checks or quiet < self.recover_after_s:
                return False
        c.ok, c.down_since = True, None
        return True

    def healthy(self) -> dict[str, bool]:
        return {n: c.ok for n, c in self.state.items()}

    def causes(self) -> dict[str, str]:
        """Why each component that is down is down."""
        return {n: c.cause for n, c in sorted(self.state.items()) if not c.ok}

    def short_causes(self) -> dict[str, str]:
        return {n: c.short for n, c in sorted(self.state.items()) if not c.ok}

    def recovering(self) -> dict[str, int]:
        """Down components that have started to answer again: good checks so far."""
        return {n: c.good_checks for n, c in sorted(self.state.items()) if not c.ok}
