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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alertengine.alertmanager import alerts_ended, alerts_snapshot, firing
from alertengine.clock import Clock
from alertengine.engine import Change, IncidentEngine, TransitionRefused
from alertengine.incidents import IncidentState, Stage
from alertengine.policy import (
    Decision,
    HealthSnapshot,
    Policy,
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
            return await self._after_execution(policy, state, st)
        return state

    async def _after_execution(
        self, policy: Policy, state: IncidentState, st: Streaks
    ) -> IncidentState | None:
        ended = self._ended(policy, state, st)
        if ended.yes:
            why = "health returned after the recovery ran"
            if state.alerts:
                why = f"after the recovery ran, {ended.reason}"
            return await self._move(state, Change(Stage.RESOLVED, "policy", why))
        executed_at = state.history[-1].at
        grace = policy.post_execution_grace_s
        if self.clock.now() >= executed_at + grace:
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

    async def _hook(self, hook: IncidentHook, state: IncidentState) -> None:
        try:
            await hook(state)
        except Exception:  # hooks degrade, the pipeline goes on
            log.exception("pipeline hook failed for %s", state.incident_id)
