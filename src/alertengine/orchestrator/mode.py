"""The orchestrator's own degraded mode, from the health of what it depends on. Pure.

NORMAL: everything answers. DEGRADED: something optional fails (a notification provider, a
diagnoser, a target's health endpoint) — incidents still flow, on policy. EMERGENCY: the
ledger or state store is unreachable — nothing may advance, because nothing could be proven.
The mode returns to NORMAL by itself when the cause clears; every change is ledgered.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum


class Mode(str, Enum):
    NORMAL = "NORMAL"
    DEGRADED = "DEGRADED"
    EMERGENCY = "EMERGENCY"


CRITICAL_COMPONENTS = frozenset({"ledger", "store"})


def compute_mode(components: Mapping[str, bool]) -> tuple[Mode, list[str]]:
    """``components`` maps a component name to whether it is healthy. Returns mode and culprits."""
    down = sorted(name for name, ok in components.items() if not ok)
    if any(name in CRITICAL_COMPONENTS for name in down):
        return Mode.EMERGENCY, down
    if down:
        return Mode.DEGRADED, down
    return Mode.NORMAL, []
