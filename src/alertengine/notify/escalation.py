"""Who to notify next when nobody has approved yet. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Sequence

from alertengine.notify.delivery import Recipient


def escalation_levels(recipients: Sequence[Recipient]) -> list[list[Recipient]]:
    """Group a route by person (``identity``), in order of first appearance: level 0 is the
    first person with all their channels (as fall-overs), level 1 the next person, …"""
    levels: dict[str, list[Recipient]] = {}
    for r in recipients:
        levels.setdefault(r.identity, []).append(r)
    return list(levels.values())


def next_route(recipients: Sequence[Recipient], escalations: int) -> list[Recipient]:
    """The route for escalation number ``escalations`` (0 = first notification); empty when
    everyone has been tried."""
    levels = escalation_levels(recipients)
    if escalations < 0:
        raise ValueError("escalations cannot be negative")
    return levels[escalations] if escalations < len(levels) else []


def escalations_due(notified_at: float, now: float, escalate_after_s: float) -> int:
    """How many escalations should have happened by ``now`` (policy: every N seconds)."""
    if escalate_after_s <= 0:
        raise ValueError("escalate_after_s must be positive")
    return max(0, math.floor((now - notified_at) / escalate_after_s))
