"""A target's recent health, shared through the state store so any replica can chart it.

Each replica keeps the observations it made (polls, pushes it received) in memory, bounded,
and saves them at most every :data:`SAVE_EVERY_S` as one document per (target, replica) in
the collection ``health:<tenant>/<service>``. A chart merges every replica's document with
what the serving replica holds itself, so a page shows the whole line whichever replica a
load balancer picked, and after a restart. Whoever saves deletes the documents of replicas
not heard from for :data:`KEEP_S`. Charts only: the ledger holds everything that matters.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from alertengine.stores.base import StateStore

log = logging.getLogger(__name__)

#: Points kept per target: an hour at the default 5 s loop.
HISTORY_POINTS = 720
#: How often a replica saves a target's points (a chart may lag this much on another replica).
SAVE_EVERY_S = 15.0
#: A replica's document older than this is deleted (the replica is gone).
KEEP_S = 3600.0


@dataclass(frozen=True, slots=True)
class Observation:
    """One point of a target's health history."""

    at: float
    score: float | None
    p95_ms: float | None
    error_rate: float | None
    reachable: bool
    source: str


def collection(tenant_id: str, service: str) -> str:
    return f"health:{tenant_id}/{service}"


def encode(points: Iterable[Observation], saved_at: float) -> dict[str, Any]:
    rows = [[o.at, o.score, o.p95_ms, o.error_rate, o.reachable, o.source] for o in points]
    return {"saved_at": saved_at, "points": rows[-HISTORY_POINTS:]}


def _num(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def decode(doc: Mapping[str, Any]) -> list[Observation]:
    """The points of one saved document; rows that are not well-formed are skipped."""
    out: list[Observation] = []
    rows = doc.get("points")
    for row in rows if isinstance(rows, list) else ():
        if not isinstance(row, list) or len(row) != 6 or _num(row[0]) is None:
            continue
        at, score, p95, err, reachable, source = row
        out.append(
            Observation(float(at), _num(score), _num(p95), _num(err), bool(reachable), str(source))
        )
    return out


def merge(*series: Iterable[Observation]) -> list[Observation]:
    """One time-ordered line from several replicas' points (the same point once)."""
    seen: dict[tuple[float, str], Observation] = {}
    for points in series:
        for o in points:
            seen[(o.at, o.source)] = o
    return sorted(seen.values(), key=lambda o: o.at)[-HISTORY_POINTS:]


class SharedHistory:
    """Saves and loads the points of every (target, replica) in the state store."""

    def __init__(self, store: StateStore, replica: str) -> None:
        self.store = store
        self.replica = replica

    async def save(
        self, tenant_id: str, service: str, points: Iterable[Observation], now: float
    ) -> None:
        """Never raises: a chart that lags is better than a loop that stops."""
        name = collection(tenant_id, service)
        try:
            await self.store.put(name, self.replica, encode(points, now))
            for replica, doc in (await self.store.list(name)).items():
                saved = _num(doc.get("saved_at"))
                if replica != self.replica and (saved is None or now - saved > KEEP_S):
                    await self.store.delete(name, replica)
        except Exception as exc:
            log.warning("could not save the health history of %s: %s", name, type(exc).__name__)

    async def load(self, tenant_id: str, service: str) -> list[Observation]:
        """Every replica's saved points, merged; [] if the store cannot be read."""
        try:
            docs = await self.store.list(collection(tenant_id, service))
        except Exception as exc:
            log.warning("could not load the health history: %s", type(exc).__name__)
            return []
        return merge(*(decode(d) for d in docs.values()))
