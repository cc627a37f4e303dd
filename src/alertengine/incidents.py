"""Incident stages, the one transition table, and ``fold``: state derived from the ledger.

Nothing stores an incident's stage as truth: it is what folding its ledger entries gives.
Only ``transition`` entries move a stage, and only along :data:`TRANSITIONS` by an actor
:func:`check_transition` allows. A diagnosis is data; an approval is data until the Nth
distinct approver turns it into AUTHORIZED. Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from alertengine.ledger.chain import Entry


class Stage(str, Enum):
    DETECTED = "DETECTED"
    PROPOSED = "PROPOSED"
    VALIDATED = "VALIDATED"
    AUTHORIZED = "AUTHORIZED"
    EXECUTED = "EXECUTED"
    RESOLVED = "RESOLVED"
    RECOVERED = "RECOVERED"
    EXPIRED = "EXPIRED"
    WEBHOOK_FAILED = "WEBHOOK_FAILED"

    def __str__(self) -> str:
        return self.value


S = Stage

#: The only legal moves. Anything else is refused, and the refusal is ledgered.
TRANSITIONS: Mapping[Stage, frozenset[Stage]] = {
    S.DETECTED: frozenset({S.PROPOSED, S.RECOVERED}),
    S.PROPOSED: frozenset({S.VALIDATED, S.RECOVERED}),
    S.VALIDATED: frozenset({S.AUTHORIZED, S.RECOVERED, S.EXPIRED}),
    S.AUTHORIZED: frozenset({S.EXECUTED, S.WEBHOOK_FAILED}),
    # Health did not come back after the recovery ran: propose again (a fresh approval).
    S.EXECUTED: frozenset({S.RESOLVED, S.PROPOSED}),
    # A dead-lettered execution is replayed only after a fresh approval.
    S.WEBHOOK_FAILED: frozenset({S.VALIDATED}),
    S.RESOLVED: frozenset(),
    S.RECOVERED: frozenset(),
    S.EXPIRED: frozenset(),
}

#: Stages in which an incident still occupies its (tenant, service) slot.
OPEN_STAGES = frozenset(
    {S.DETECTED, S.PROPOSED, S.VALIDATED, S.AUTHORIZED, S.EXECUTED, S.WEBHOOK_FAILED}
)
TERMINAL_STAGES = frozenset({S.RESOLVED, S.RECOVERED, S.EXPIRED})
AWAITING_APPROVAL = S.VALIDATED

#: Who may move an incident *into* each stage (actor kinds; ``engineer`` = ``engineer:<ch>:<id>``).
ALLOWED_ACTORS: Mapping[Stage, frozenset[str]] = {
    S.DETECTED: frozenset({"policy"}),
    S.PROPOSED: frozenset({"orchestrator", "policy"}),
    S.VALIDATED: frozenset({"policy", "orchestrator"}),
    S.AUTHORIZED: frozenset({"engineer", "person"}),
    S.EXECUTED: frozenset({"orchestrator"}),
    S.WEBHOOK_FAILED: frozenset({"orchestrator"}),
    S.RESOLVED: frozenset({"policy", "orchestrator"}),
    S.RECOVERED: frozenset({"policy"}),
    S.EXPIRED: frozenset({"policy"}),
}


def actor_kind(actor: str) -> str:
    return actor.split(":", 1)[0]


def is_engineer(actor: str) -> bool:
    """A human approver: ``person:<id>``, or ``engineer:<channel>:<id>`` of older ledgers."""
    if actor.startswith("person:"):
        return len(actor) > len("person:") and ":" not in actor[len("person:") :]
    parts = actor.split(":")
    return len(parts) >= 3 and parts[0] == "engineer" and all(parts[1:])


@dataclass(frozen=True, slots=True)
class Approval:
    actor: str  # engineer:<channel>:<id>
    at: float
    seq: int
    jti: str = ""


@dataclass(frozen=True, slots=True)
class StageChange:
    stage: Stage
    actor: str
    at: float
    seq: int
    reason: str


@dataclass(frozen=True, slots=True)
class ExecutionProgress:
    """The recovery webhook's attempts for the current authorization (reset by AUTHORIZED).

    ``started_seq`` is the seq of the latest ``execution``/``started`` entry: the ledger's
    fencing token. Only the run that wrote it may record an outcome, so a run that was
    taken over (its process paused, or believed dead) can never record a second success.
    """

    attempts: int = 0
    started_seq: int = 0
    holder: str = ""
    succeeded: bool = False
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class IncidentState:
    tenant_id: str
    incident_id: str
    service: str
    stage: Stage
    opened_at: float
    updated_at: float
    policy_version: str
    last_seq: int
    history: tuple[StageChange, ...] = ()
    detection: Mapping[str, Any] = field(default_factory=dict)
    action: str = ""
    diagnosis: Mapping[str, Any] | None = None
    #: Approvals collected since the incident last entered VALIDATED.
    approvals: tuple[Approval, ...] = ()
    approvals_required: int = 1
    #: The approval link currently out (jti, issued_at, expires_at, recipients).
    token: Mapping[str, Any] | None = None
    reproposals: int = 0
    notified_at: float | None = None
    escalations: int = 0
    #: Who said "I'm on it" this round (``person:<id>``) and when: escalation waits for them.
    acked_by: str = ""
    acked_at: float | None = None
    execution: Mapping[str, Any] | None = None
    #: Alertmanager alerts the incident tracks: fingerprint -> the last word about each.
    alerts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    progress: ExecutionProgress = field(default_factory=ExecutionProgress)

    @property
    def is_open(self) -> bool:
        return self.stage in OPEN_STAGES

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(a.actor for a in self.approvals)


def check_transition(state: IncidentState | None, target: Stage, actor: str) -> str | None:
    """Why this move is refused, or None when it is legal. Pure; the guard of every transition."""
    kind = actor_kind(actor)
    if kind in ("engineer", "person") and not is_engineer(actor):
        return f"actor {actor!r} does not name an approver (engineer:<channel>:<id>)"
    if kind not in ALLOWED_ACTORS[target]:
        return f"actor {actor!r} may not move an incident to {target}"
    if state is None:
        if target is not S.DETECTED:
            return f"no such incident; only DETECTED opens one, not {target}"
        return None
    if target is S.DETECTED:
        return f"incident {state.incident_id} already exists (stage {state.stage})"
    if target not in TRANSITIONS[state.stage]:
        return f"{state.stage} -> {target} is not a legal transition"
    if target is S.AUTHORIZED:
        distinct = {a.actor for a in state.approvals} | {actor}
        if len(distinct) < state.approvals_required:
            return (
                f"{len(distinct)} of {state.approvals_required} distinct approvals; "
                "waiting for more approvers"
            )
    return None


def _stage_or_none(value: str | None) -> Stage | None:
    try:
        return Stage(value) if value is not None else None
    except ValueError:
        return None


def apply(state: IncidentState | None, e: Entry) -> IncidentState | None:
    """The state after entry ``e``. Entries that cannot apply leave the state unchanged."""
    if e.kind == "transition":
        target = _stage_or_none(e.stage)
        if target is None or check_transition(state, target, e.actor) is not None:
            return state  # a hand-made ledger may hold an illegal move: it never changes state
        change = StageChange(target, e.actor, e.timestamp, e.seq, e.reason)
        if state is None:
            d = e.data
            return IncidentState(
                tenant_id=e.tenant_id,
                incident_id=str(e.incident_id),
                service=str(d.get("service", "")),
                stage=target,
                opened_at=e.timestamp,
                updated_at=e.timestamp,
                policy_version=e.policy_version,
                last_seq=e.seq,
                history=(change,),
                detection=dict(d.get("snapshot", {})),
                approvals_required=int(d.get("approvals_required", 1)),
                alerts=_alerts(d.get("alerts")),
            )
        new = replace(
            state,
            stage=target,
            updated_at=e.timestamp,
            last_seq=e.seq,
            history=(*state.history, change),
        )
        if target is S.PROPOSED:
            new = replace(new, action=str(e.data.get("action", state.action)))
        if target is S.VALIDATED:
            # A fresh round of approval: earlier approvals and links no longer count.
            new = replace(
                new,
                approvals=(),
                token=None,
                notified_at=None,
                escalations=0,
                acked_by="",
                acked_at=None,
            )
        if target is S.AUTHORIZED:
            # A new authorization (after a re-proposal or a DLQ replay) owes a new call: the
            # previous round's attempts, fence and success say nothing about this one.
            new = replace(new, progress=ExecutionProgress())
        if target in (S.EXECUTED, S.WEBHOOK_FAILED):
            new = replace(new, execution=dict(e.data))
        return new
    if state is None:
        return None
    if e.kind == "diagnosis":
        return replace(state, diagnosis=dict(e.data), last_seq=e.seq)
    if e.kind == "alert" and e.decision in ("firing", "resolved"):
        return replace(state, alerts={**state.alerts, **_alerts([e.data])}, last_seq=e.seq)
    if e.kind == "approval" and state.stage is S.VALIDATED and is_engineer(e.actor):
        if e.actor in state.approvers:
            return state
        a = Approval(e.actor, e.timestamp, e.seq, str(e.data.get("jti", "")))
        return replace(state, approvals=(*state.approvals, a), last_seq=e.seq)
    if e.kind == "token" and e.decision == "issued":
        return replace(state, token=dict(e.data), last_seq=e.seq)
    if e.kind == "token" and e.decision == "reproposed":
        return replace(state, token=dict(e.data), reproposals=state.reproposals + 1, last_seq=e.seq)
    if e.kind == "delivery" and e.decision == "delivered" and state.notified_at is None:
        return replace(state, notified_at=e.timestamp, last_seq=e.seq)
    if e.kind == "ack" and state.stage is S.VALIDATED:
        # An acknowledgement holds escalation; it never counts as an approval.
        if e.decision == "acknowledged" and not state.acked_by:
            return replace(state, acked_by=e.actor, acked_at=e.timestamp, last_seq=e.seq)
        if e.decision == "expired":
            return replace(state, acked_by="", acked_at=None, last_seq=e.seq)
        return state
    if e.kind == "execution" and state.stage is S.AUTHORIZED:
        return replace(state, progress=_progress(state.progress, e), last_seq=e.seq)
    if e.kind == "escalation":
        # A retry of the same route (nobody reachable yet) is not a step up the route.
        step = 0 if e.data.get("retry") else 1
        return replace(
            state, escalations=state.escalations + step, notified_at=e.timestamp, last_seq=e.seq
        )
    return state


def _alerts(items: Any) -> dict[str, Mapping[str, Any]]:
    """Alertmanager alerts from ledger data, by fingerprint (malformed items are skipped)."""
    if not isinstance(items, (list, tuple)):
        return {}
    return {
        str(a["fingerprint"]): dict(a)
        for a in items
        if isinstance(a, Mapping) and a.get("fingerprint")
    }


def _progress(p: ExecutionProgress, e: Entry) -> ExecutionProgress:
    attempt = e.data.get("attempt")
    attempts = max(p.attempts, attempt if isinstance(attempt, int) else 0)
    if e.decision == "started":
        return replace(p, attempts=attempts, started_seq=e.seq, holder=str(e.data.get("holder")))
    if e.decision == "succeeded":
        code = e.data.get("status_code")
        status = code if isinstance(code, int) else None
        return replace(p, attempts=attempts, succeeded=True, status_code=status)
    return replace(p, attempts=attempts)


def fold(entries: Iterable[Entry]) -> dict[str, IncidentState]:
    """Every incident's state from ledger entries in seq order (one or many tenants)."""
    states: dict[str, IncidentState] = {}
    for e in entries:
        if e.incident_id is None:
            continue
        key = f"{e.tenant_id}/{e.incident_id}"
        new = apply(states.get(key), e)
        if new is not None:
            states[key] = new
    return states
