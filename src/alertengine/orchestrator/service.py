"""The orchestrator: wires config, stores, engine, pipeline and collaborators, and runs the loop.

One instance per process. Polls every target concurrently each ``loop_interval_s``, takes
pushed health and Alertmanager alerts, tracks its own degraded mode, and never lets a failing
target, provider, diagnoser or store crash the loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from alertengine.alertmanager import Alert
from alertengine.clock import Clock
from alertengine.engine import IncidentEngine
from alertengine.incidents import IncidentState
from alertengine.ledger import LedgerError, LedgerStore
from alertengine.ledger.base import BAD_ENTRY, WriteCheck
from alertengine.orchestrator.alert_intake import AlertIntake
from alertengine.orchestrator.baseline import Baseline, learn
from alertengine.orchestrator.config import Config, TargetConfig
from alertengine.orchestrator.history import (
    HISTORY_POINTS,
    SAVE_EVERY_S,
    Observation,
    SharedHistory,
    merge,
)
from alertengine.orchestrator.leases import SWEEP, Leases, target_lease
from alertengine.orchestrator.mode import Components, Mode, compute_mode
from alertengine.orchestrator.pipeline import Diagnose, Pipeline, Target
from alertengine.orchestrator.poller import poll, snapshot_from_health
from alertengine.policy import HealthSnapshot, Policy, blindness, is_healthy
from alertengine.stores import StateStore

log = logging.getLogger("alertengine.orchestrator")

SYSTEM_TENANT = "_system"
BASELINES = "baselines"
BASELINE_PERSIST_EVERY_S = 60.0
#: While EMERGENCY lasts, the log says so again this often (the cause with it).
EMERGENCY_REMINDER_S = 60.0


@dataclass
class LoopStats:
    polls: int = 0
    poll_failures: int = 0
    ticks: int = 0
    last_tick_at: float | None = None
    last_tick_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


class Orchestrator:
    def __init__(
        self,
        config: Config,
        *,
        ledger: LedgerStore,
        store: StateStore,
        clock: Clock,
        http: httpx.AsyncClient,
        environ: Mapping[str, str] | None = None,
        diagnose: Diagnose | None = None,
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.store = store
        self.clock = clock
        self.http = http
        self._environ = dict(environ) if environ is not None else None
        self._policies: dict[str, Policy] = {}
        self.engine = IncidentEngine(ledger, clock, self.policy_for)
        self.pipeline = Pipeline(
            self.engine,
            clock,
            diagnose=diagnose,
            on_validated=self._on_validated,
            monthly_quota_left=self._quota_left,
        )
        self.mode = Mode.NORMAL
        self.mode_reasons: list[str] = []
        self.mode_since = clock.now()
        #: Each dependency's health, with hysteresis (see :mod:`.mode`).
        self.health = Components()
        #: Targets that answer but cannot measure themselves: (tenant, service) -> since/why.
        self.blind: dict[tuple[str, str], dict[str, Any]] = {}
        self.blind_polls: dict[str, int] = {}
        self._lease_errors_seen = 0
        self._reminded_at = clock.now()
        #: One flush at a time: two tasks flushing together wrote one entry twice.
        self._flush_lock = asyncio.Lock()
        self.stats = LoopStats()
        #: Called when an incident reaches VALIDATED (issue links, notify approvers).
        self.validated_hooks: list[Callable[[IncidentState], Awaitable[None]]] = []
        #: Called once per loop tick after polling (expiry, escalation, execution sweep).
        self.tick_hooks: list[Callable[[], Awaitable[None]]] = []
        #: Called once per loop tick on every replica, sweep lease or not (this process's own
        #: housekeeping, e.g. writing the summaries of its refusal windows).
        self.replica_hooks: list[Callable[[], Awaitable[None]]] = []
        #: Extra sections of status(), by key (e.g. the notifier's unreachable approvers).
        self.status_sections: dict[str, Callable[[], Any]] = {}
        self._pending_system: list[dict[str, Any]] = []
        #: Recent observations per (tenant, service), bounded, newest last.
        self.history: dict[tuple[str, str], deque[Observation]] = {}
        #: Set by the runtime: where every replica's history is saved for charts.
        self.shared_history: SharedHistory | None = None
        self._history_saved_at: dict[tuple[str, str], float] = {}
        self._history_dirty: set[tuple[str, str]] = set()
        #: What healthy looks like per (tenant, service); learned only from healthy polls.
        self.baselines: dict[tuple[str, str], Baseline] = {}
        self._baselines_loaded: set[tuple[str, str]] = set()
        self._baseline_saved_at: dict[tuple[str, str], float] = {}
        #: Set when replicas share a store: only targets whose lease we hold are polled.
        self.leases: Leases | None = None
        self._stop = asyncio.Event()
        self.alert_intake = AlertIntake(
            self.engine,
            self.pipeline,
            clock,
            target_for=self.target_for,
            targets=lambda: self.config.targets,
            observe=self.observe,
        )
        self.tick_hooks.append(self.alert_intake.review_open)

    # -- policy -----------------------------------------------------------------------------

    def policy_for(self, tenant_id: str) -> Policy:
        p = self._policies.get(tenant_id)
        if p is None:
            p = self._policies[tenant_id] = self.config.policy_for(tenant_id, self._environ)
        return p

    def target_for(self, tenant_id: str, service: str) -> TargetConfig | None:
        return self.config.target(tenant_id, service)

    @staticmethod
    def _target(t: TargetConfig) -> Target:
        return Target(t.tenant, t.service, t.action)

    # -- observing --------------------------------------------------------------------------

    @property
    def components(self) -> dict[str, bool]:
        return self.health.healthy()

    def _see_blind(self, t: TargetConfig, s: HealthSnapshot) -> None:
        """Track targets that answer without being able to measure themselves."""
        key, name = (t.tenant, t.service), f"{t.tenant}/{t.service}"
        why = blindness(s)
        if why is not None:
            self.blind_polls[name] = self.blind_polls.get(name, 0) + 1
            if key not in self.blind:
                log.warning(
                    "target %s is blind: it answers but cannot measure itself (%s); "
                    "no incident opens on that",
                    name,
                    why,
                )
                self.blind[key] = {"since": s.observed_at, "reason": why}
            self.blind[key]["last_seen"] = s.observed_at
        elif key in self.blind:
            since = self.blind.pop(key)["since"]
            log.warning(
                "target %s can measure itself again after %.1f s blind",
                name,
                s.observed_at - since,
            )

    async def observe(
        self,
        t: TargetConfig,
        snapshot: HealthSnapshot,
        body: Mapping[str, Any] | None = None,
        *,
        alerts: Sequence[Mapping[str, Any]] = (),
    ) -> IncidentState | None:
        self._see_blind(t, snapshot)
        self._history_dirty.add((t.tenant, t.service))
        self.history.setdefault((t.tenant, t.service), deque(maxlen=HISTORY_POINTS)).append(
            Observation(
                snapshot.observed_at,
                snapshot.score,
                snapshot.p95_ms,
                snapshot.error_rate,
                snapshot.reachable,
                snapshot.source,
            )
        )
        await self._learn_baseline(t, snapshot)
        try:
            return await self.pipeline.observe(self._target(t), snapshot, body, alerts=alerts)
        except LedgerError as exc:
            # A failed write is proof the ledger is down; a success proves nothing (most
            # observations only read), so only the tick's write check brings it back.
            await self.ledger_failed(exc)
            return None

    async def _learn_baseline(self, t: TargetConfig, s: HealthSnapshot) -> None:
        key = (t.tenant, t.service)
        doc_id = f"{t.tenant}/{t.service}"
        if key not in self._baselines_loaded:
            self._baselines_loaded.add(key)
            try:
                doc = await self.store.get(BASELINES, doc_id)
            except Exception:  # a store outage must not stop observing
                doc = None
            if doc is not None:
                self.baselines[key] = Baseline.from_dict(doc)
        if not is_healthy(self.policy_for(t.tenant), s):
            return  # never learn from an incident
        self.baselines[key] = b = learn(self.baselines.get(key), s)
        if s.observed_at - self._baseline_saved_at.get(key, 0.0) >= BASELINE_PERSIST_EVERY_S:
            try:
                await self.store.put(BASELINES, doc_id, b.to_dict())
                self._baseline_saved_at[key] = s.observed_at
            except Exception:
                log.warning("could not persist the baseline of %s", doc_id)

    async def poll_target(self, t: TargetConfig) -> IncidentState | None:
        snapshot, body = await poll(
            self.http, t.health_url, timeout_s=t.poll_timeout_s, now=self.clock.now()
        )
        self.stats.polls += 1
        if not snapshot.reachable:
            self.stats.poll_failures += 1
        return await self.observe(t, snapshot, body)

    async def push_health(
        self, tenant_id: str, service: str, body: Mapping[str, Any]
    ) -> IncidentState | None:
        t = self.target_for(tenant_id, service)
        if t is None:
            raise KeyError(service)
        snap = snapshot_from_health(body, observed_at=self.clock.now(), source="push")
        if self.leases is not None:  # pushes reach any replica: start from the shared ledger
            try:
                await self.engine.refresh(tenant_id)
            except LedgerError as exc:
                await self.ledger_failed(exc)
                return None
        return await self.observe(t, snap, body)

    async def alertmanager_alerts(
        self, tenant_id: str, alerts: Sequence[Alert]
    ) -> dict[str, list[Any]]:
        """One Alertmanager notification (see :mod:`alertengine.orchestrator.alert_intake`).

        Raises LedgerError when what it says cannot be ledgered (answer 503: Alertmanager
        retries), after reporting the ledger down.
        """
        try:
            if self.leases is not None:  # any replica takes alerts: start from the shared ledger
                await self.engine.refresh(tenant_id)
            outcome = await self.alert_intake.receive(tenant_id, alerts)
        except LedgerError as exc:
            await self._component("ledger", False, f"ledger: {exc}")
            raise
        if not self.components.get("ledger", True):  # observe() degraded instead of raising
            raise LedgerError("the ledger is down: the alerts could not all be recorded")
        return outcome

    # -- the loop ---------------------------------------------------------------------------

    async def tick(self) -> None:
        """One loop iteration: poll every polled target concurrently, then run tick hooks."""
        started = time.perf_counter()
        try:
            await self._tick()
        finally:  # whatever failed above, the mode must still say so
            await self._check_dependencies()
        self.stats.ticks += 1
        self.stats.last_tick_at = self.clock.now()
        self.stats.last_tick_ms = (time.perf_counter() - started) * 1000

    async def _tick(self) -> None:
        polled = [t for t in self.config.targets if t.health_url]
        sweep = True
        if self.leases is not None:
            polled, sweep = await self._leased(polled)
        results = await asyncio.gather(
            *(self.poll_target(t) for t in polled), return_exceptions=True
        )
        for t, r in zip(polled, results, strict=True):
            if isinstance(r, BaseException):
                key = f"{t.tenant}/{t.service}"
                self.stats.errors[key] = self.stats.errors.get(key, 0) + 1
                log.error("poll of %s failed: %r", key, r)
        for hook in [*(self.tick_hooks if sweep else ()), *self.replica_hooks]:
            try:
                await hook()
            except LedgerError as exc:
                await self.ledger_failed(exc)
            except Exception:
                log.exception("tick hook failed")
        await self.save_history()

    async def _leased(self, targets: list[TargetConfig]) -> tuple[list[TargetConfig], bool]:
        """The targets (and whether the sweep) this replica holds; renews its leases."""
        assert self.leases is not None
        held, new = await self.leases.hold(
            [*(target_lease(t.tenant, t.service) for t in targets), SWEEP]
        )
        mine = [t for t in targets if target_lease(t.tenant, t.service) in held]
        for t in targets:
            if target_lease(t.tenant, t.service) in new:  # taken over: its streaks are stale
                self.pipeline.streaks.pop((t.tenant, t.service), None)
        tenants = {t.tenant for t in mine} | (
            {t.id for t in self.config.tenants} if SWEEP in held else set()
        )
        for tenant_id in sorted(tenants):  # other replicas may have appended meanwhile
            try:
                await self.engine.refresh(tenant_id)
            except LedgerError as exc:
                await self.ledger_failed(exc)
        return mine, SWEEP in held

    async def save_history(self, *, force: bool = False) -> None:
        """Save the points of targets observed since their last save (every SAVE_EVERY_S)."""
        if self.shared_history is None:
            return
        now = self.clock.now()
        for key in sorted(self._history_dirty):
            if not force and now - self._history_saved_at.get(key, -math.inf) < SAVE_EVERY_S:
                continue
            self._history_dirty.discard(key)
            self._history_saved_at[key] = now
            await self.shared_history.save(*key, self.history.get(key, ()), now)

    async def history_of(self, tenant_id: str, service: str) -> list[Observation]:
        """What every replica observed of a target (for charts), merged with our own."""
        local = list(self.history.get((tenant_id, service), ()))
        if self.shared_history is None:
            return local
        return merge(await self.shared_history.load(tenant_id, service), local)

    async def run(self) -> None:
        interval = self.config.orchestrator.loop_interval_s
        while not self._stop.is_set():
            started = self.clock.now()
            try:
                await self.tick()
            except Exception:  # the loop outlives any one bad iteration
                log.exception("loop iteration failed")
            delay = max(0.0, interval - (self.clock.now() - started))
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
        await self.save_history(force=True)  # a restart (or another replica) charts it all
        if self.leases is not None:  # hand our targets over now, not after the lease time
            await self.leases.release_all()

    def stop(self) -> None:
        self._stop.set()

    # -- hooks ------------------------------------------------------------------------------

    async def _on_validated(self, state: IncidentState) -> None:
        for hook in self.validated_hooks:
            try:
                await hook(state)
            except Exception:
                log.exception("validated hook failed for %s", state.incident_id)

    async def _quota_left(self, tenant_id: str) -> bool:
        policy = self.policy_for(tenant_id)
        now = self.clock.now()
        month = time.strftime("%Y-%m", time.gmtime(now))
        opened = sum(
            1
            for s in await self.engine.incidents(tenant_id)
            if time.strftime("%Y-%m", time.gmtime(s.opened_at)) == month
        )
        return opened <= policy.max_incidents_per_month

    # -- degraded mode ----------------------------------------------------------------------

    async def _check_dependencies(self) -> None:
        """Once per tick: can the store and the ledger still do their job? Then ledger any
        mode change that waits. Reads prove little (a full disk still reads): the store must
        also have taken this tick's lease writes, the ledger must commit a write check."""
        ok = await self.store.ping()
        cause, short = ("", "") if ok else ("the state store does not answer", "unreachable")
        if self.leases is not None:
            errors = self.leases.errors
            if ok and errors > self._lease_errors_seen:
                ok, short = False, "refuses writes"
                cause = f"the state store refused writes: {self.leases.last_error}"
            self._lease_errors_seen = errors
        self._note("store", ok, cause, short)
        try:
            if isinstance(self.ledger, WriteCheck):
                await self.ledger.check_writable()
            else:
                await self.ledger.head(SYSTEM_TENANT)
        except LedgerError as exc:
            self._note("ledger", False, _ledger_cause(exc), exc.cause)
        else:
            self._note("ledger", True)
        await self._flush_system()
        now = self.clock.now()
        if self.mode is Mode.EMERGENCY and now - self._reminded_at >= EMERGENCY_REMINDER_S:
            # Whoever starts watching the log mid-outage learns what is wrong, and since when.
            self._reminded_at = now
            log.warning(
                "orchestrator still EMERGENCY after %.0f s (%s)",
                now - self.mode_since,
                "; ".join(f"{n}: {c}" for n, c in self.health.causes().items()),
            )

    async def set_component(self, name: str, ok: bool, detail: str = "") -> None:
        """For collaborators (providers, diagnosers) to report their health."""
        await self._component(name, ok, detail)

    async def _component(self, name: str, ok: bool, detail: str = "", short: str = "") -> None:
        if self._note(name, ok, detail, short):
            await self._flush_system()

    async def ledger_failed(self, exc: LedgerError) -> None:
        """A ledger write failed (here or in a collaborator): the ledger is down, with why."""
        if exc.cause == BAD_ENTRY:  # the entry was at fault, not the ledger: a bug, not a mode
            log.error("a ledger entry could not be sealed: %s", exc)
            return
        await self._component("ledger", False, _ledger_cause(exc), exc.cause)

    def _note(self, name: str, ok: bool, detail: str = "", short: str = "") -> bool:
        """Record one observation of a component; queue a mode entry if the mode changed."""
        now = self.clock.now()
        if not self.health.report(name, ok, detail, now, short=short):
            return False
        mode, culprits = compute_mode(self.health.healthy())
        causes = self.health.causes()
        if mode is self.mode:  # the mode stands, but what it stands on changed: say so
            self.mode_reasons = culprits
            state = f"down: {causes[name]}" if name in causes else "back"
            log.warning("component %s %s (mode stays %s)", name, state, mode.value)
            return False
        entry = {
            "from": str(self.mode.value),
            "to": str(mode.value),
            "components": culprits,
            "causes": causes,
            "detail": detail,
            "at": now,
            "replica": self.leases.holder if self.leases is not None else "",
        }
        because = "; ".join(f"{n}: {c}" for n, c in causes.items()) or f"{name} is back"
        log.warning("orchestrator mode %s -> %s (%s)", self.mode.value, mode.value, because)
        self.mode, self.mode_reasons, self.mode_since = mode, culprits, now
        self._reminded_at = now
        self._pending_system.append(entry)
        return True

    async def _flush_system(self) -> None:
        """Ledger mode changes; while the ledger is down they wait here, in order, not dropped.

        Under a lock: two tasks flushing at once (concurrent polls reporting health) each
        wrote the head entry, and the second then popped one it had not written.
        """
        async with self._flush_lock:
            while self._pending_system:
                e = self._pending_system[0]
                down = e["components"]
                try:
                    await self.engine.record(
                        SYSTEM_TENANT,
                        None,
                        kind="mode",
                        actor="orchestrator",
                        decision=str(e["to"]),
                        reason=f"mode {e['from']} -> {e['to']}"
                        + (f": {', '.join(down)} down" if down else "")
                        + "".join(f"; {n}: {c}" for n, c in e["causes"].items()),
                        data=e,
                    )
                except LedgerError as exc:
                    self._note("ledger", False, _ledger_cause(exc), exc.cause)
                    return
                self._pending_system.pop(0)

    def status(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "mode_reasons": self.mode_reasons,
            "mode_since": self.mode_since,
            "causes": self.health.causes(),
            "recovering": self.health.recovering(),
            "components": dict(self.components),
            "pending_system_entries": len(self._pending_system),
            "blind_targets": self.blind_targets(),
            "targets": len(self.config.targets),
            "loop_interval_s": self.config.orchestrator.loop_interval_s,
            "leases": self.leases.status() if self.leases is not None else None,
            "stats": {
                "polls": self.stats.polls,
                "poll_failures": self.stats.poll_failures,
                "ticks": self.stats.ticks,
                "last_tick_at": self.stats.last_tick_at,
                "last_tick_ms": round(self.stats.last_tick_ms, 2),
                "errors": dict(self.stats.errors),
                "blind_polls": dict(self.blind_polls),
            },
            **{key: section() for key, section in self.status_sections.items()},
        }

    def blind_targets(self) -> list[dict[str, Any]]:
        """Targets that answer but cannot measure themselves, as this replica last saw them."""
        return [
            {"tenant": tenant, "service": service, **info}
            for (tenant, service), info in sorted(self.blind.items())
        ]


def _ledger_cause(exc: LedgerError) -> str:
    """For status and the mode entry: the classified cause first, then the store's words."""
    return f"{exc.cause}: {exc}" if exc.cause not in str(exc) else str(exc)
