"""The incident pipeline: small stages, each with one job, composed explicitly.

``observe`` takes one health snapshot of one target and walks the stages that policy allows:

    detect → diagnose → propose → validate → (notify) … → recover / resolve

Approval is not here: only :mod:`alertengine.authorize` moves an incident to AUTHORIZED,
and only the executor moves it on from there. Nothing in this module can authorize.
Collaborators (diagnoser, notifier, executor …) are passed in; any of them failing degrades
the pipeline (ledgered), never stops it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alertengine.alertmanager import alerts_ended, alerts_snapshot, firing
from alertengine.clock import Clock
from alertengine.engine import Change, GuardRefused, IncidentEngine, TransitionRefused
from alertengine.incidents import IncidentState, Stage
from alertengine.policy import (
    Decision,
    HealthSnapshot,
    Policy,
    blindness,
    degradation,
    is_healthy,
    should_open,
    should_recover,
    should_validate,
)

log = logging.getLogger("alertengine.pipeline")


@dataclass(frozen=True, slots=True)
class Target:
    tenant_id: str
    service: str
    action: str = "restart"


@dataclass
class Streaks:
    """Consecutive observations of each kind, on the target's own poll time base."""

    unreachable: int = 0
    degraded: int = 0
    healthy: int = 0
    last: HealthSnapshot | None = None
    last_body: Mapping[str, Any] = field(default_factory=dict)

    def update(self, policy: Policy, s: HealthSnapshot, body: Mapping[str, Any]) -> None:
        self.last, self.last_body = s, body
        if not s.reachable:
            self.unreachable += 1
            self.healthy = 0
            self.degraded += 1
            return
        self.unreachable = 0
        if is_healthy(policy, s):
            self.healthy += 1
            self.degraded = 0
        elif degradation(policy, s).yes:
            self.degraded += 1
            self.healthy = 0
        else:  # in between: neither worse nor recovered
            self.healthy = 0


class Diagnose(Protocol):
    async def __call__(
        self,
        target: Target,
        state: IncidentState,
        snapshot: HealthSnapshot,
        body: Mapping[str, Any],
    ) -> Mapping[str, Any] | None:
        """Return a diagnosis as data (already ledgered by the callee or not), never raise."""
        ...


IncidentHook = Callable[[IncidentState], Awaitable[None]]


async def _noop(_: IncidentState) -> None:
    return None


def _unasked(state: IncidentState, validated_seq: int) -> bool:
    """Still VALIDATED by that move, no link issued and nobody notified since."""
    return (
        state.stage is Stage.VALIDATED
        and state.history[-1].seq == validated_seq
        and state.token is None
        and state.notified_at is None
    )


def _still_unasked(validated_seq: int) -> Callable[[IncidentState | None], str | None]:
    def guard(state: IncidentState | None) -> str | None:
        ok = state is not None and _unasked(state, validated_seq)
        return None if ok else "someone was already asked"

    return guard


def _unasked_reason(state: IncidentState, replayed: bool) -> str:
    if replayed:
        ex = state.execution or {}
        dlq = ex.get("dlq_id", "")
        tries = ex.get("attempts")
        failed = f" after the recovery webhook failed {tries} time(s)" if tries else ""
        return (
            f"dead-letter {dlq} was replayed{failed}: the old approval no longer counts; "
            "sending fresh approval links to the approvers"
        )
    return (
        "VALIDATED but no approval link was ever sent (the orchestrator stopped before "
        "sending them?): sending them now"
    )


class Pipeline:
    def __init__(
        self,
        engine: IncidentEngine,
        clock: Clock,
        *,
        diagnose: Diagnose | None = None,
        on_validated: IncidentHook = _noop,
        monthly_quota_left: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.diagnose = diagnose
        self.on_validated = on_validated
        self.monthly_quota_left = monthly_quota_left
        self.streaks: dict[tuple[str, str], Streaks] = {}
        #: A silence holds an incident (alertengine.oncall): detected, ledgered, not proposed.
        self.held: Callable[[IncidentState], Awaitable[bool]] | None = None

    def streaks_for(self, target: Target) -> Streaks:
        return self.streaks.setdefault((target.tenant_id, target.service), Streaks())

    async def observe(
        self,
        target: Target,
        snapshot: HealthSnapshot,
        body: Mapping[str, Any] | None = None,
        *,
        alerts: Sequence[Mapping[str, Any]] = (),
    ) -> IncidentState | None:
        """Feed one observation; returns the target's open incident afterwards, if any.

        ``alerts``: the firing Alertmanager alerts this observation stands for (ledger data);
        an incident it opens tracks them.
        """
        policy = self.engine.policy_for(target.tenant_id)
        st = self.streaks_for(target)
        st.update(policy, snapshot, body or {})
        state = await self.engine.open_incident_for(target.tenant_id, target.service)
        if state is None:
            state = await self._detect(target, policy, snapshot, st, alerts)
            if state is None:
                return None
        return await self._advance(target, policy, state, snapshot, st)

    async def review(self, target: Target) -> IncidentState | None:
        """Re-decide an open incident that tracks Alertmanager alerts, without an observation.

        Alerts end by a notification or by time (``endsAt``), neither of which is a health
        sample: an incident opened from Alertmanager is closed here, not by a poll.
        """
        state = await self.engine.open_incident_for(target.tenant_id, target.service)
        if state is None or not state.alerts:
            return state
        policy = self.engine.policy_for(target.tenant_id)
        st = self.streaks_for(target)
        now = self.clock.now()
        last = st.last or alerts_snapshot(firing(state.alerts, now), now)
        return await self._advance(target, policy, state, last, st)

    def _ended(self, policy: Policy, state: IncidentState, st: Streaks) -> Decision:
        """Is the trouble over? Tracked alerts must all have ended; and unless Alertmanager
        opened the incident, health must be back too (a resolved alert is not a health sample).
        """
        if state.alerts:
            a = alerts_ended(state.alerts, self.clock.now())
            if not a.yes or state.detection.get("source") == "alertmanager":
                return a
        return should_recover(policy, st.healthy)

    # -- stages -----------------------------------------------------------------------------

    async def _detect(
        self,
        target: Target,
        policy: Policy,
        s: HealthSnapshot,
        st: Streaks,
        alerts: Sequence[Mapping[str, Any]] = (),
    ) -> IncidentState | None:
        d = should_open(policy, s, unreachable_streak=st.unreachable)
        if not d.yes:
            return None
        state, created = await self.engine.open(
            target.tenant_id,
            target.service,
            reason=d.reason,
            snapshot=s.summary(),
            source=s.source,
            alerts=alerts,
        )
        if created:
            log.info("incident opened", extra={"incident": state.incident_id, "reason": d.reason})
        return state

    async def _advance(
        self,
        target: Target,
        policy: Policy,
        state: IncidentState,
        s: HealthSnapshot,
        st: Streaks,
    ) -> IncidentState | None:
        # Recovery first: policy saw health return, whatever any diagnosis said.
        if state.stage in (Stage.DETECTED, Stage.PROPOSED, Stage.VALIDATED):
            r = self._ended(policy, state, st)
            if r.yes:
                return await self._move(state, Change(Stage.RECOVERED, "policy", r.reason))
        if state.stage in (Stage.DETECTED, Stage.PROPOSED) and await self._is_held(state):
            return state  # silenced: nothing is proposed or validated while it lasts
        if state.stage is Stage.DETECTED:
            state = await self._diagnose_and_propose(target, state, s, st) or state
        if state.stage is Stage.PROPOSED:
            quota = True
            if self.monthly_quota_left is not None:
                quota = await self.monthly_quota_left(target.tenant_id)
            v = should_validate(
                policy,
                s,
                st.degraded,
                quota_left=quota,
                firing_alerts=len(firing(state.alerts, self.clock.now())),
            )
            if v.yes:
                moved, ours = await self._attempt(
                    state, Change(Stage.VALIDATED, "policy", v.reason)
                )
                if ours and moved is not None:
                    # Only the move that won notifies: another replica (or task) that lost
                    # the compare-and-append must not send a second set of links.
                    await self._hook(self.on_validated, moved)
                return moved
            if not quota:
                await self.engine.record(
                    target.tenant_id,
                    state.incident_id,
                    kind="limit",
                    actor="policy",
                    decision="held",
                    reason=v.reason,
                )
        if state.stage is Stage.EXECUTED:
            return await self._after_execution(policy, state, s, st)
        return state

    async def _after_execution(
        self, policy: Policy, state: IncidentState, s: HealthSnapshot, st: Streaks
    ) -> IncidentState | None:
        ended = self._ended(policy, state, st)
        if ended.yes:
            why = "health returned after the recovery ran"
            if state.alerts:
                why = f"after the recovery ran, {ended.reason}"
            return await self._move(state, Change(Stage.RESOLVED, "policy", why))
        executed_at = state.history[-1].at
        grace = policy.post_execution_grace_s
        # A blind target cannot say whether the recovery worked: wait until it can.
        if self.clock.now() >= executed_at + grace and blindness(s) is None:
            why = f"health did not return within {grace:.0f} s of the recovery"
            if state.alerts:
                why = f"{grace:.0f} s after the recovery, {ended.reason}"
            return await self._move(
                state,
                Change(
                    Stage.PROPOSED,
                    "policy",
                    f"{why}; proposing again",
                    data={"action": state.action},
                ),
            )
        return state

    async def _diagnose_and_propose(
        self, target: Target, state: IncidentState, s: HealthSnapshot, st: Streaks
    ) -> IncidentState | None:
        diagnosis: Mapping[str, Any] | None = None
        if self.diagnose is not None:
            try:
                diagnosis = await self.diagnose(target, state, s, st.last_body)
            except Exception as exc:  # a diagnoser must never stop the pipeline
                log.warning("diagnoser failed: %s", type(exc).__name__)
                await self.engine.record(
                    target.tenant_id,
                    state.incident_id,
                    kind="diagnosis",
                    actor="orchestrator",
                    decision="failed",
                    reason=f"diagnoser raised {type(exc).__name__}; going ahead on policy",
                    confidence=0.0,
                )
        suggested = str((diagnosis or {}).get("suggested_action") or "")
        reason = f"recovery action {target.action!r} proposed"
        if suggested:
            reason += f"; diagnosis suggests: {suggested}"
        return await self._move(
            state,
            Change(Stage.PROPOSED, "orchestrator", reason, data={"action": target.action}),
        )

    async def ask_unasked(
        self, tenant_ids: Iterable[str], *, grace_s: float = 10.0
    ) -> list[IncidentState]:
        """Notify for VALIDATED incidents nobody was asked about; returns those notified.

        The pipeline notifies when *its* move reaches VALIDATED. Two other ways in leave
        nobody asked: ``alertengine dlq replay`` (another process moves WEBHOOK_FAILED ->
        VALIDATED) and a crash between the VALIDATED move and its links. Run each sweep and
        at start-up: an incident VALIDATED by a replay, or by policy more than ``grace_s``
        ago, with no link issued and no notification since, gets the ``on_validated`` hook
        (fresh links to the route from the top). Before that an ``escalation`` entry saying
        what happened is appended under a guard (still VALIDATED by the same move, still
        nobody asked), so of several replicas and restarts exactly one notifies.
        """
        notified: list[IncidentState] = []
        now = self.clock.now()
        for tenant_id in tenant_ids:
            await self.engine.refresh(tenant_id)
            for state in await self.engine.incidents(tenant_id, open_only=True):
                moved = state.history[-1]
                if state.stage is not Stage.VALIDATED or not _unasked(state, moved.seq):
                    continue
                replayed = moved.actor == "orchestrator"  # only a DLQ replay does that
                if not replayed and now < moved.at + grace_s:
                    continue  # the pipeline's own hook is still sending them
                try:
                    await self.engine.record(
                        tenant_id,
                        state.incident_id,
                        kind="escalation",
                        actor="orchestrator",
                        decision="replayed" if replayed else "unasked",
                        reason=_unasked_reason(state, replayed),
                        data={"level": 0, "retry": True, "validated_seq": moved.seq},
                        guard=_still_unasked(moved.seq),
                    )
                except GuardRefused:
                    continue  # another replica (or an earlier sweep) asked
                fresh = await self.engine.get(tenant_id, state.incident_id) or state
                await self._hook(self.on_validated, fresh)
                notified.append(fresh)
        return notified

    async def _move(self, state: IncidentState, change: Change) -> IncidentState | None:
        return (await self._attempt(state, change))[0]

    async def _attempt(
        self, state: IncidentState, change: Change
    ) -> tuple[IncidentState | None, bool]:
        """(the incident now, whether *this* call moved it)."""
        try:
            moved = await self.engine.transition(
                state.tenant_id, state.incident_id, change, expect_stage=state.stage
            )
            return moved, True
        except TransitionRefused as exc:
            # Someone else moved it first (another replica, an approval): re-read next time.
            log.info("transition refused: %s", exc.reason)
            return await self.engine.get(state.tenant_id, state.incident_id), False

    async def _is_held(self, state: IncidentState) -> bool:
        if self.held is None:
            return False
        try:
            return await self.held(state)
        except Exception:  # a failing silence check pages rather than hides
            log.exception("silence check failed for %s", state.incident_id)
            return False

    async def _hook(self, hook: IncidentHook, state: IncidentState) -> None:
        try:
            await hook(state)
        except Exception:  # hooks degrade, the pipeline goes on
            log.exception("pipeline hook failed for %s", state.incident_id)
