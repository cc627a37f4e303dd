"""The incident engine: the only writer of incident history.

Every change goes through here: the transition table is checked, then the entry is appended
with compare-and-append on the tenant's chain head, so two writers (tasks or replicas) cannot
both move the same incident from the same state. A refused move is itself ledgered. The live
state is a cache of ``fold(ledger)``; it can always be rebuilt from the ledger.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alertengine.clock import Clock
from alertengine.incidents import IncidentState, Stage, apply, check_transition
from alertengine.ledger import Entry, EntryDraft, LedgerConflict, LedgerQuery, LedgerStore
from alertengine.policy import Policy

MAX_CONFLICT_RETRIES = 20


class TransitionRefused(Exception):
    """A move the transition table (or a guard) does not allow. It has been ledgered."""

    def __init__(self, reason: str, entry: Entry | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.entry = entry


@dataclass
class _TenantView:
    head_seq: int = 0
    incidents: dict[str, IncidentState] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def apply(self, entries: Sequence[Entry]) -> None:
        for e in entries:
            if e.seq <= self.head_seq:
                continue
            self.head_seq = e.seq
            if e.incident_id is None:
                continue
            new = apply(self.incidents.get(e.incident_id), e)
            if new is not None:
                self.incidents[e.incident_id] = new


def new_incident_id(service: str, now: float) -> str:
    return f"inc-{service}-{int(now)}-{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class Change:
    """A proposed stage change, decided on a state and appended only if the state still holds."""

    target: Stage
    actor: str
    reason: str
    decision: str = ""
    confidence: float | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


class IncidentEngine:
    def __init__(
        self,
        ledger: LedgerStore,
        clock: Clock,
        policy_for: Callable[[str], Policy],
        *,
        id_factory: Callable[[str, float], str] = new_incident_id,
    ) -> None:
        self.ledger = ledger
        self.clock = clock
        self.policy_for = policy_for
        self._id_factory = id_factory
        self._views: dict[str, _TenantView] = {}

    # -- reading ----------------------------------------------------------------------------

    async def _view(self, tenant_id: str, *, refresh: bool = False) -> _TenantView:
        view = self._views.get(tenant_id)
        if view is None:
            view = self._views[tenant_id] = _TenantView()
            refresh = True
        if refresh:
            await self._catch_up(tenant_id, view)
        return view

    async def _catch_up(self, tenant_id: str, view: _TenantView) -> None:
        while True:
            batch = await self.ledger.read(
                LedgerQuery(tenant_id=tenant_id, after_seq=view.head_seq, limit=5000)
            )
            if not batch:
                return
            view.apply(batch)

    async def refresh(self, tenant_id: str) -> None:
        """Pick up entries other replicas appended."""
        await self._view(tenant_id, refresh=True)

    async def get(self, tenant_id: str, incident_id: str) -> IncidentState | None:
        return (await self._view(tenant_id)).incidents.get(incident_id)

    async def incidents(self, tenant_id: str, *, open_only: bool = False) -> list[IncidentState]:
        view = await self._view(tenant_id)
        items = [s for s in view.incidents.values() if s.is_open or not open_only]
        return sorted(items, key=lambda s: s.opened_at, reverse=True)

    async def open_incident_for(self, tenant_id: str, service: str) -> IncidentState | None:
        view = await self._view(tenant_id)
        for s in view.incidents.values():
            if s.service == service and s.is_open:
                return s
        return None

    # -- writing ----------------------------------------------------------------------------

    async def _append(
        self,
        tenant_id: str,
        decide: Callable[[_TenantView], list[EntryDraft] | TransitionRefused],
    ) -> list[Entry]:
        """Decide on the current view and append; on a concurrent append, catch up and re-decide."""
        view = await self._view(tenant_id)
        async with view.lock:
            for _ in range(MAX_CONFLICT_RETRIES):
                outcome = decide(view)
                if isinstance(outcome, TransitionRefused):
                    raise outcome
                if not outcome:
                    return []
                try:
                    entries = await self.ledger.append(tenant_id, outcome, expect_seq=view.head_seq)
                except LedgerConflict:
                    await self._catch_up(tenant_id, view)
                    continue
                view.apply(entries)
                return entries
        raise RuntimeError(f"tenant {tenant_id}: ledger head kept moving; gave up after retries")

    def _draft(
        self,
        tenant_id: str,
        incident_id: str | None,
        *,
        kind: str,
        actor: str,
        stage: Stage | str | None = None,
        decision: str = "",
        reason: str = "",
        confidence: float | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> EntryDraft:
        return EntryDraft(
            tenant_id=tenant_id,
            incident_id=incident_id,
            kind=kind,
            stage=str(stage) if stage is not None else None,
            actor=actor,
            decision=decision,
            reason=reason,
            confidence=confidence,
            policy_version=self.policy_for(tenant_id).version,
            data=dict(data or {}),
            timestamp=self.clock.now(),
        )

    async def open(
        self,
        tenant_id: str,
        service: str,
        *,
        reason: str,
        snapshot: Mapping[str, Any],
        source: str = "poll",
        alerts: Sequence[Mapping[str, Any]] = (),
    ) -> tuple[IncidentState, bool]:
        """Open an incident for (tenant, service) unless one is open. Idempotent under concurrency.

        Returns the open incident and whether this call created it. ``alerts``: the
        Alertmanager alerts that opened it (ledger data), tracked from the first entry on.
        """
        policy = self.policy_for(tenant_id)
        existing: list[IncidentState] = []

        def decide(view: _TenantView) -> list[EntryDraft] | TransitionRefused:
            existing.clear()
            for s in view.incidents.values():
                if s.service == service and s.is_open:
                    existing.append(s)
                    return []
            incident_id = self._id_factory(service, self.clock.now())
            return [
                self._draft(
                    tenant_id,
                    incident_id,
                    kind="transition",
                    stage=Stage.DETECTED,
                    actor="policy",
                    decision="open",
                    reason=reason,
                    data={
                        "service": service,
                        "snapshot": dict(snapshot),
                        "source": source,
                        "approvals_required": policy.approvals_required,
                        **({"alerts": [dict(a) for a in alerts]} if alerts else {}),
                    },
                )
            ]

        entries = await self._append(tenant_id, decide)
        if existing:
            return existing[0], False
        state = await self.get(tenant_id, str(entries[0].incident_id))
        assert state is not None
        return state, True

    async def transition(
        self,
        tenant_id: str,
        incident_id: str,
        change: Change,
        *,
        expect_stage: Stage | None = None,
        also: Sequence[EntryDraft] = (),
    ) -> IncidentState:
        """Move an incident, or ledger the refusal and raise :class:`TransitionRefused`.

        ``expect_stage`` makes the move conditional on the stage the caller decided on (a
        stale decision is refused, not applied). ``also`` are entries appended atomically
        *before* the transition (e.g. the approval that completes a quorum).
        """
        refused_reason: list[str] = []

        def decide(view: _TenantView) -> list[EntryDraft] | TransitionRefused:
            refused_reason.clear()
            state = view.incidents.get(incident_id)
            why: str | None
            if expect_stage is not None and (state is None or state.stage is not expect_stage):
                now = state.stage if state else "missing"
                why = f"incident is {now}, not {expect_stage}"
            else:
                probe = state
                for d in also:  # the quorum check sees the approval being added with it
                    if probe is not None:
                        probe = apply(probe, _provisional(d, view.head_seq)) or probe
                why = check_transition(probe, change.target, change.actor)
            if why is None:
                return [
                    *also,
                    self._draft(
                        tenant_id,
                        incident_id,
                        kind="transition",
                        stage=change.target,
                        actor=change.actor,
                        decision=change.decision,
                        reason=change.reason,
                        confidence=change.confidence,
                        data=change.data,
                    ),
                ]
            refused_reason.append(why)
            return [
                self._draft(
                    tenant_id,
                    incident_id,
                    kind="refused",
                    stage=change.target,
                    actor=change.actor,
                    decision="refused",
                    reason=why,
                    data={"attempted": str(change.target), **dict(change.data)},
                )
            ]

        entries = await self._append(tenant_id, decide)
        if refused_reason:
            raise TransitionRefused(refused_reason[0], entries[-1] if entries else None)
        state = await self.get(tenant_id, incident_id)
        assert state is not None
        return state

    async def record(
        self,
        tenant_id: str,
        incident_id: str | None,
        *,
        kind: str,
        actor: str,
        decision: str = "",
        reason: str = "",
        confidence: float | None = None,
        data: Mapping[str, Any] | None = None,
        stage: Stage | str | None = None,
    ) -> Entry:
        """Ledger a fact that is not a stage change (diagnosis, delivery, refusal, token …)."""

        def decide(view: _TenantView) -> list[EntryDraft] | TransitionRefused:
            st = stage
            if st is None and incident_id is not None and incident_id in view.incidents:
                st = view.incidents[incident_id].stage
            return [
                self._draft(
                    tenant_id,
                    incident_id,
                    kind=kind,
                    stage=st,
                    actor=actor,
                    decision=decision,
                    reason=reason,
                    confidence=confidence,
                    data=data,
                )
            ]

        entries = await self._append(tenant_id, decide)
        return entries[0]

    def draft(
        self,
        tenant_id: str,
        incident_id: str | None,
        *,
        kind: str,
        actor: str,
        decision: str = "",
        reason: str = "",
        data: Mapping[str, Any] | None = None,
        stage: Stage | str | None = None,
    ) -> EntryDraft:
        """A draft to pass as ``also=`` to :meth:`transition`."""
        return self._draft(
            tenant_id,
            incident_id,
            kind=kind,
            actor=actor,
            decision=decision,
            reason=reason,
            data=data,
            stage=stage,
        )


def _provisional(d: EntryDraft, head_seq: int) -> Entry:
    return Entry(
        seq=head_seq + 1,
        timestamp=d.timestamp,
        tenant_id=d.tenant_id,
        incident_id=d.incident_id,
        kind=d.kind,
        stage=d.stage,
        actor=d.actor,
        decision=d.decision,
        reason=d.reason,
        confidence=d.confidence,
        policy_version=d.policy_version,
        data=d.data,
        prev_hash="",
        hash="",
    )
