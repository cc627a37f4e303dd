"""Alertmanager notifications into incidents, with Alertmanager's semantics.

Per target named by an alert (``service`` label, else ``job``):

- firing alerts are one observation (critical, no numbers) that may open an incident; the
  incident records them (fingerprint, times, labels, annotations, generator URL) in the ledger;
- every later change — a new alert firing, one resolving — is one ``kind="alert"`` entry on
  the incident; re-sends of what is known add nothing;
- a resolved alert is not a health sample: it only ends that alert. An incident opened from
  Alertmanager closes when every alert it tracks has ended (see :mod:`alertengine.alertmanager`);
- alerts for services with no target are ignored, but logged and ledgered, never only answered.

The tracking is ledger data folded into the incident's state, so it survives a restart and is
shared by replicas. A tick hook re-decides incidents whose alerts may have ended meanwhile
(an ``endsAt`` that passed, a resolution that arrived while the recovery was running).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from alertengine.alertmanager import Alert, alerts_snapshot, changes, is_firing
from alertengine.clock import Clock
from alertengine.engine import IncidentEngine
from alertengine.incidents import IncidentState
from alertengine.orchestrator.config import TargetConfig
from alertengine.orchestrator.pipeline import Pipeline, Target
from alertengine.policy import HealthSnapshot

log = logging.getLogger("alertengine.alertmanager")


class Observe(Protocol):
    async def __call__(
        self,
        t: TargetConfig,
        snapshot: HealthSnapshot,
        body: Mapping[str, Any] | None = None,
        *,
        alerts: Sequence[Mapping[str, Any]] = (),
    ) -> IncidentState | None: ...


class AlertIntake:
    def __init__(
        self,
        engine: IncidentEngine,
        pipeline: Pipeline,
        clock: Clock,
        *,
        target_for: Callable[[str, str], TargetConfig | None],
        targets: Callable[[], Sequence[TargetConfig]],
        observe: Observe,
    ) -> None:
        self.engine = engine
        self.pipeline = pipeline
        self.clock = clock
        self.target_for = target_for
        self.targets = targets
        self.observe = observe

    async def receive(self, tenant_id: str, alerts: Sequence[Alert]) -> dict[str, list[Any]]:
        """Take one notification's alerts; the 202 body (accepted and ignored alerts)."""
        known: dict[str, tuple[TargetConfig, list[Alert]]] = {}
        unknown: dict[str, list[Alert]] = {}
        for a in alerts:
            t = self.target_for(tenant_id, a.service) if a.service else None
            if t is None:
                unknown.setdefault(a.service, []).append(a)
            else:
                known.setdefault(a.service, (t, []))[1].append(a)
        ignored = []
        for service, items in unknown.items():
            why = await self._ignore(tenant_id, service, items)
            ignored += [_brief(a) | {"why": why} for a in items]
        accepted = []
        for t, items in known.values():
            state = await self._target(t, items)
            incident = state.incident_id if state is not None else None
            accepted += [_brief(a) | {"incident_id": incident} for a in items]
        return {"accepted": accepted, "ignored": ignored}

    async def _target(self, t: TargetConfig, items: list[Alert]) -> IncidentState | None:
        now = self.clock.now()
        state = await self.engine.open_incident_for(t.tenant, t.service)
        if state is not None:
            await self._track(state, items)
        live = [a.to_data() for a in items if a.status == "firing"]
        live = [a for a in live if is_firing(a, now)]
        if not live:  # only news of alerts ending: no observation, just a fresh decision
            return await self.pipeline.review(Target(t.tenant, t.service, t.action))
        state = await self.observe(t, alerts_snapshot(live, now), {}, alerts=live)
        if state is not None and await self._track(state, items):
            # It was opened meanwhile by something else (a poll): decide again with the alerts.
            state = await self.pipeline.review(Target(t.tenant, t.service, t.action))
        return state

    async def _track(self, state: IncidentState, items: list[Alert]) -> bool:
        """Ledger what is new about these alerts on the incident; whether anything was."""
        news = changes(state.alerts, items, self.clock.now())
        for a in news:
            await self.engine.record(
                state.tenant_id,
                state.incident_id,
                kind="alert",
                actor="orchestrator",
                decision=a.status,
                reason=f"Alertmanager: {a.name} {a.status} (fingerprint {a.fingerprint})",
                data=a.to_data(),
            )
        return bool(news)

    async def _ignore(self, tenant_id: str, service: str, items: list[Alert]) -> str:
        why = (
            f"no target {tenant_id}/{service} in the config"
            if service
            else "no 'service' or 'job' label names a target"
        )
        names = ", ".join(sorted({a.name for a in items}))
        log.warning(
            "ignored %d Alertmanager alert(s) of tenant %s (%s): %s",
            len(items),
            tenant_id,
            names,
            why,
        )
        await self.engine.record(
            tenant_id,
            None,
            kind="alert",
            actor="orchestrator",
            decision="ignored",
            reason=f"Alertmanager alert(s) {names} ignored: {why}",
            data={"service": service, "alerts": [a.to_data() for a in items]},
        )
        return why

    async def review_open(self) -> None:
        """Tick hook: close or move on incidents whose alerts ended since they were last seen."""
        tenants = sorted({t.tenant for t in self.targets()})
        for tenant_id in tenants:
            for s in await self.engine.incidents(tenant_id, open_only=True):
                t = self.target_for(tenant_id, s.service)
                if s.alerts and t is not None:
                    await self.pipeline.review(Target(t.tenant, t.service, t.action))


def _brief(a: Alert) -> dict[str, Any]:
    return {
        "service": a.service,
        "alertname": a.name,
        "fingerprint": a.fingerprint,
        "status": a.status,
        "firing": a.status == "firing",
    }
