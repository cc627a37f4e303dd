"""Who to notify next when nobody has approved yet. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


#: A call's final ``CallStatus`` that means nobody picked up (Twilio's Call resource
#: statuses); ``completed`` means the call was answered, so the person was reached.
UNANSWERED = frozenset({"busy", "no-answer", "failed", "canceled"})


@dataclass(frozen=True)
class FallOver:
    """What to do when a person did not answer a call: try ``channels`` (theirs after the
    call, in their order) and, when none delivers, ask level ``next_level`` (``None``: the
    escalation already moved past them, or everyone has been asked)."""

    channels: tuple[Recipient, ...]
    next_level: int | None


def after_unanswered(
    levels: Sequence[Sequence[Recipient]],
    identity: str,
    channel: str,
    address: str,
    escalations: int,
) -> FallOver:
    """Who comes after ``identity``'s unanswered ``channel`` call to ``address``.

    The call's position among the person's channels is their last one with that channel and
    address (digits compared, so ``+1 555…`` matches ``+1555…``); without a match, their
    last channel of that kind: only channels strictly after it are tried, so a chain of
    unanswered calls always ends (a number listed twice is not called twice). The next
    person is the one after the caller; a call to someone escalation already moved past
    (``escalations`` is the level asked last) asks nobody new: that is under way."""
    at = next((i for i, lv in enumerate(levels) if lv and lv[0].identity == identity), None)
    if at is None:  # no longer on the route: whoever escalation would ask next
        nxt = escalations + 1
        return FallOver((), nxt if nxt < len(levels) else None)
    mine = levels[at]
    same = [i for i, r in enumerate(mine) if r.channel == channel]
    exact = [i for i in same if _digits(mine[i].address) == _digits(address) and address]
    pos = (exact or same or [len(mine) - 1])[-1]
    rest = tuple(mine[pos + 1 :])
    if at < escalations:
        return FallOver(rest, None)
    nxt = at + 1
    return FallOver(rest, nxt if nxt < len(levels) else None)


def _digits(address: str) -> str:
    return "".join(c for c in address if c.isdigit())
