"""On-call in the running pipeline: who is asked first, and whether anyone is paged at all.

:class:`OnCallHooks` is what the notifier and the pipeline consult:

- ``order_levels``: the escalation levels (one per person) reordered so that whoever the
  tenant's schedules have on call comes first, then the rest of the chain in its order. The
  order is taken at the instant the incident entered VALIDATED, so a hand-off in the middle
  of one approval round does not make the escalation skip or repeat anyone.
- ``held``: a matching active silence holds the incident: it stays detected and ledgered
  (one ``kind="silenced"`` entry naming the silence), nobody is paged and nothing is
  proposed; the first check after the silence ends ledgers ``resumed`` and lets the flow go
  on at once. If the silences cannot be read, nothing is held (paging is the safe side).
  Whether a hold is in force is read back from the incident's ledger the first time a
  process looks at an incident, so a restart neither ledgers a second ``held`` nor misses
  the ``resumed`` of a silence that ended while it was down.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from alertengine.clock import Clock
from alertengine.incidents import IncidentState, Stage
from alertengine.ledger import LedgerQuery
from alertengine.oncall.registry import OnCallRegistry
from alertengine.oncall.schedule import utc_at
from alertengine.oncall.silences import incident_labels

log = logging.getLogger("alertengine.oncall")

#: Incidents whose hold state one process keeps in memory before reading back the ledger.
_MAX_REMEMBERED = 10_000


class _HasIdentity(Protocol):
    @property
    def identity(self) -> str: ...


R = TypeVar("R", bound=_HasIdentity)


def person_of(identity: str) -> str:
    """The person id a route identity names: ``person:<id>`` (the person registry) or
    ``engineer:<channel>:<id>`` (a flat approver) -> ``<id>``."""
    if identity.startswith("person:"):
        return identity[len("person:") :]
    parts = identity.split(":", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "engineer" else identity


def reorder(levels: Sequence[list[R]], wanted: Sequence[str]) -> list[list[R]]:
    """``levels`` in the order of person ids ``wanted``; levels it does not name keep their
    place after those it does. Pure."""
    rank = {pid: i for i, pid in enumerate(wanted)}
    indexed = list(enumerate(levels))
    indexed.sort(key=lambda il: (rank.get(person_of(il[1][0].identity), len(rank)), il[0]))
    return [lv for _, lv in indexed if lv]


def validated_at(state: IncidentState) -> float | None:
    return next((h.at for h in reversed(state.history) if h.stage is Stage.VALIDATED), None)


class OnCallHooks:
    def __init__(self, registry: OnCallRegistry, engine: Any, clock: Clock) -> None:
        self.registry = registry
        self.engine = engine
        self.clock = clock
        #: (tenant, incident) -> the silence last ledgered as holding it (None: no hold).
        self._held: dict[tuple[str, str], str | None] = {}

    async def _ledgered_hold(self, state: IncidentState) -> str | None:
        """The silence the ledger last says holds this incident (None when none does)."""
        key = (state.tenant_id, state.incident_id)
        if key not in self._held:
            if len(self._held) >= _MAX_REMEMBERED:
                self._held.clear()  # a cache: anything forgotten is read back from the ledger
            entries = await self.engine.ledger.read(
                LedgerQuery(
                    tenant_id=state.tenant_id,
                    incident_id=state.incident_id,
                    kinds=frozenset({"silenced"}),
                )
            )
            last = entries[-1] if entries else None
            held = last is not None and last.decision == "held"
            self._held[key] = str(last.data.get("silence", "")) if last and held else None
        return self._held[key]

    async def order_levels(self, state: IncidentState, levels: Sequence[list[R]]) -> list[list[R]]:
        at = validated_at(state) or self.clock.now()
        try:
            ids = [person_of(lv[0].identity) for lv in levels if lv]
            wanted = await self.registry.order(state.tenant_id, ids, utc_at(at))
        except Exception as exc:  # schedules unreadable: the configured chain as it is
            log.warning("on-call schedules unavailable (%s); using the route's order", exc)
            return [lv for lv in levels if lv]
        return reorder(levels, wanted)

    async def held(self, state: IncidentState) -> bool:
        """Is a silence holding this incident now? Ledgers when a hold starts and ends."""
        key = (state.tenant_id, state.incident_id)
        now = self.clock.now()
        labels = incident_labels(state.tenant_id, state.service, state.alerts.values())
        try:
            s = await self.registry.silencing(state.tenant_id, labels, now)
        except Exception as exc:
            log.warning("silences unavailable (%s); paging as usual", exc)
            return False
        try:
            previous = await self._ledgered_hold(state)
        except Exception as exc:  # the ledger will say so louder when we try to write
            log.warning("cannot read the incident's silence history (%s)", exc)
            previous = None
        if s is not None:
            if previous != s.id:
                await self.engine.record(
                    state.tenant_id,
                    state.incident_id,
                    kind="silenced",
                    actor="orchestrator",
                    decision="held",
                    reason=f"silence {s.id} by {s.created_by} ({s.comment}) matches until "
                    f"{utc_at(s.ends_at):%Y-%m-%d %H:%M:%S} UTC: nobody is paged and nothing "
                    "is proposed",
                    data={
                        "silence": s.id,
                        "matchers": [m.to_dict() for m in s.matchers],
                        "ends_at": s.ends_at,
                        "labels": labels,
                    },
                )
                self._held[key] = s.id
            return True
        self._held[key] = None
        if previous is not None:
            await self.engine.record(
                state.tenant_id,
                state.incident_id,
                kind="silenced",
                actor="orchestrator",
                decision="resumed",
                reason=f"silence {previous} no longer matches: the normal flow resumes",
                data={"silence": previous},
            )
        return False
