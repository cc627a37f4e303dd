"""Execution: the tenant's own recovery webhook, signed, retried, dead-lettered, run once.

Only an AUTHORIZED incident is executed. Three layers keep one authorization from running
twice at once:

* in one process, a run marks its incident before its first ``await``, so a second run (the
  sweep's resume racing the run scheduled by the approval) sees it and steps aside;
* across processes, the lease ``exec:<tenant>:<incident>`` names the holder's process
  instance (:mod:`alertengine.execute.instance`) and one run (leases are re-entrant per
  name, so every run has its own). The holder renews it every few seconds while it runs; a
  holder known dead (its process gone, or its replica restarted) is taken over at once, any
  other after :data:`EXEC_LEASE_TTL_S` without a renewal;
* the ledger fences what the lease cannot: before each call the run appends ``execution``
  ``started`` (attempt, holder), and it may record the call's outcome only while that entry
  is still the latest start of this authorization (a guarded compare-and-append). A run that
  was taken over while paused can call the receiver again (same ``Idempotency-Key``) but can
  never ledger a second success, and stops.

The ``Idempotency-Key`` is derived from the incident and the seq of its AUTHORIZED entry, so
a resume after a crash sends the same key and the receiver drops the duplicate. Every attempt
is ledgered (status code or error kind, never a URL query or a secret); the end is EXECUTED,
or WEBHOOK_FAILED plus a dead-letter document (collection ``dlq``) written *before* the
transition so a crash can never lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx

from alertengine.clock import Clock
from alertengine.engine import Change, GuardRefused, IncidentEngine, TransitionRefused
from alertengine.execute.instance import Instance, Probe, known_dead, probe_process
from alertengine.execute.signing import IDEMPOTENCY_HEADER, sign
from alertengine.incidents import IncidentState, Stage
from alertengine.policy import webhook_backoff
from alertengine.stores.base import StateStore

if TYPE_CHECKING:
    from alertengine.execute.receipts import ReceiptBook

log = logging.getLogger(__name__)

DLQ = "dlq"
ACTOR = "orchestrator"
#: An execution lease lives this long without a renewal; a run renews it every third of it
#: (through the webhook call and the backoffs), so only a dead or stuck holder loses it.
EXEC_LEASE_TTL_S = 10.0
#: Process-level fault tests (tests/faults/) stop a run at a named point to SIGKILL it
#: exactly there: ``before_call`` (``started`` ledgered, nothing sent) or ``after_call``
#: (success ledgered, EXECUTED not yet). Never set in production.
FAULT_PAUSE_ENV = "ALERTENGINE_FAULT_PAUSE"

WebhookTarget = tuple[str, str]  # (url, secret)
WebhookFor = Callable[[str, str], "WebhookTarget | Awaitable[WebhookTarget]"]


def idempotency_key(tenant_id: str, incident_id: str, authorized_seq: int) -> str:
    """Deterministic per authorization: the same after a crash, new after a fresh approval."""
    raw = f"alertengine\x00{tenant_id}\x00{incident_id}\x00{authorized_seq}".encode()
    return "ae-" + hashlib.sha256(raw).hexdigest()[:32]


def exec_lease(tenant_id: str, incident_id: str) -> str:
    return f"exec:{tenant_id}:{incident_id}"


def _target_host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def _authorized_seq(state: IncidentState) -> int:
    for change in reversed(state.history):
        if change.stage is Stage.AUTHORIZED:
            return change.seq
    return 0


def _authorized_at(state: IncidentState) -> float:
    for change in reversed(state.history):
        if change.stage is Stage.AUTHORIZED:
            return change.at
    return state.updated_at


def _same_authorization(state: IncidentState | None, auth_seq: int) -> str | None:
    if state is None or state.stage is not Stage.AUTHORIZED:
        return f"incident is {state.stage if state else 'missing'}, not AUTHORIZED"
    if _authorized_seq(state) != auth_seq:
        return "a newer approval replaced this authorization"
    return None


def may_start(auth_seq: int, previous_start: int) -> Callable[[IncidentState | None], str | None]:
    """Guard of a ``started`` entry: still this authorization, no success yet, and (after
    this run's first attempt) nobody else started an attempt since ours."""

    def guard(state: IncidentState | None) -> str | None:
        if (why := _same_authorization(state, auth_seq)) is not None:
            return why
        assert state is not None
        if state.progress.succeeded:
            return "the webhook already succeeded for this authorization"
        if previous_start and state.progress.started_seq != previous_start:
            return f"taken over by {state.progress.holder or 'another run'}"
        return None

    return guard


def may_record(auth_seq: int, my_start: int) -> Callable[[IncidentState | None], str | None]:
    """Guard of an attempt's outcome: our ``started`` entry is still the latest one."""

    def guard(state: IncidentState | None) -> str | None:
        if (why := _same_authorization(state, auth_seq)) is not None:
            return why
        assert state is not None
        if state.progress.started_seq != my_start:
            return f"taken over by {state.progress.holder or 'another run'}"
        if state.progress.succeeded:
            return "the webhook already succeeded for this authorization"
        return None

    return guard


def _succeeded(state: IncidentState | None) -> str | None:
    if state is None or not state.progress.succeeded:
        return "no successful attempt is ledgered for this authorization"
    return None


@dataclass(frozen=True, slots=True)
class ExecutionOutcome:
    tenant_id: str
    incident_id: str
    result: Literal["executed", "failed", "skipped"]
    attempts: int = 0
    status_code: int | None = None
    idempotency_key: str = ""
    dlq_id: str = ""
    reason: str = ""


class _Keepalive:
    """Renews a run's lease every third of its time to live; notes when it was lost."""

    def __init__(self, store: StateStore, lease: str, holder: str, ttl_s: float) -> None:
        self.lost = False
        self._task = asyncio.create_task(self._renew(store, lease, holder, ttl_s))

    async def _renew(self, store: StateStore, lease: str, holder: str, ttl_s: float) -> None:
        while True:
            # Real time, even under a virtual clock: a heartbeat is for other processes, and
            # the simulator is one process (its runs exclude each other before the lease).
            await asyncio.sleep(ttl_s / 3)
            try:
                if not await store.renew_lease(lease, holder, ttl_s):
                    self.lost = True
                    return
            except Exception:  # a store blip: the ledger's fence still holds; try again
                log.warning("could not renew %s", lease)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Executor:
    #: Sends the log's checkpoint with each call and ledgers the receiver's receipt
    #: (execute/receipts.py); set by the runtime.
    receipts: ReceiptBook | None = None

    def __init__(
        self,
        engine: IncidentEngine,
        store: StateStore,
        http_client: httpx.AsyncClient,
        clock: Clock,
        webhook_for: WebhookFor,
        *,
        instance: Instance | None = None,
        holder: str | None = None,
        probe: Probe = probe_process,
        lease_ttl_s: float = EXEC_LEASE_TTL_S,
        fault_pause: str | None = None,
    ) -> None:
        """``holder`` (kept for callers of old) names the replica when no ``instance`` is given."""
        self.engine = engine
        self.store = store
        self.http = http_client
        self.clock = clock
        self.webhook_for = webhook_for
        self.instance = instance or Instance.current(replica=holder or "")
        self.holder = str(self.instance)
        self.probe = probe
        self.lease_ttl_s = lease_ttl_s
        self.fault_pause = (
            os.environ.get(FAULT_PAUSE_ENV, "") if fault_pause is None else fault_pause
        )
        #: Incidents a run of this process is working on: checked and marked with no await
        #: in between, so two runs of one process can never both pass.
        self._running: set[tuple[str, str]] = set()

    async def _target(self, tenant_id: str, service: str) -> WebhookTarget:
        got = self.webhook_for(tenant_id, service)
        if inspect.isawaitable(got):
            return await got
        return got

    async def resume(self, tenant_ids: Iterable[str] | None = None) -> list[ExecutionOutcome]:
        """Run every AUTHORIZED incident (after a restart, or as a periodic sweep)."""
        tenants = list(tenant_ids) if tenant_ids is not None else await self.engine.ledger.tenants()
        todo: list[tuple[str, str]] = []
        for tenant_id in tenants:
            await self.engine.refresh(tenant_id)
            for state in await self.engine.incidents(tenant_id, open_only=True):
                if state.stage is Stage.AUTHORIZED:
                    todo.append((tenant_id, state.incident_id))
        return list(await asyncio.gather(*(self.run(t, i) for t, i in todo)))

    async def run(self, tenant_id: str, incident_id: str) -> ExecutionOutcome:
        """Execute one AUTHORIZED incident, unless another run is doing it or it is done."""
        key = (tenant_id, incident_id)
        if key in self._running:
            return ExecutionOutcome(tenant_id, incident_id, "skipped", reason="already running")
        self._running.add(key)
        try:
            return await self._run_leased(tenant_id, incident_id)
        finally:
            self._running.discard(key)

    async def _take(self, lease: str, me: Instance) -> tuple[bool, str]:
        """(taken, note): the lease, free or from a holder known dead (note says who, why)."""
        if await self.store.acquire_lease(lease, str(me), self.lease_ttl_s):
            return True, ""
        current = await self.store.lease_holder(lease)
        if current is None:  # it lapsed meanwhile
            return await self.store.acquire_lease(lease, str(me), self.lease_ttl_s), ""
        holder = Instance.parse(current)
        why = known_dead(holder, me, self.probe) if holder is not None else None
        shown = holder.describe() if holder is not None else current
        if why is None:
            return False, f"leased by {shown}"
        if not await self.store.take_over_lease(lease, current, str(me), self.lease_ttl_s):
            return False, f"leased by {shown} (someone else took it over first)"
        log.warning("took execution lease %s over from %s: %s", lease, shown, why)
        return True, f"took over from {shown}: {why}"

    async def _run_leased(self, tenant_id: str, incident_id: str) -> ExecutionOutcome:
        lease = exec_lease(tenant_id, incident_id)
        me = self.instance.for_run()
        taken, note = await self._take(lease, me)
        if not taken:
            return ExecutionOutcome(tenant_id, incident_id, "skipped", reason=note)
        keepalive = _Keepalive(self.store, lease, str(me), self.lease_ttl_s)
        try:
            await self.engine.refresh(tenant_id)
            state = await self.engine.get(tenant_id, incident_id)
            if state is None or state.stage is not Stage.AUTHORIZED:
                stage = state.stage if state else "missing"
                return ExecutionOutcome(tenant_id, incident_id, "skipped", reason=f"is {stage}")
            return await self._execute(state, me, note, keepalive)
        finally:
            await keepalive.stop()
            with contextlib.suppress(Exception):  # it lapses on its own
                await self.store.release_lease(lease, str(me))

    async def _pause(self, point: str) -> None:
        if self.fault_pause == point:
            log.warning("fault injection: execution paused at %s in pid %d", point, os.getpid())
            await asyncio.Event().wait()  # until the test kills this process

    async def _execute(
        self, state: IncidentState, me: Instance, took_over: str, keepalive: _Keepalive
    ) -> ExecutionOutcome:
        tenant_id, incident_id = state.tenant_id, state.incident_id
        policy = self.engine.policy_for(tenant_id)
        auth_seq = _authorized_seq(state)
        key = idempotency_key(tenant_id, incident_id, auth_seq)
        url, secret = await self._target(tenant_id, state.service)
        body = json.dumps(
            {
                "incident_id": incident_id,
                "tenant_id": tenant_id,
                "service": state.service,
                "action": state.action or "recover",
                "approvers": list(state.approvers),
                "authorized_at": _authorized_at(state),
                "policy_version": policy.version,
                "idempotency_key": key,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        target = _target_host(url)
        done = state.progress
        if done.succeeded:  # a run died after the webhook answered: just record the outcome
            return await self._finish_executed(state, key, done.attempts, done.status_code)
        budget = max(1, policy.webhook_attempts - done.attempts)
        attempt = done.attempts
        status: int | None = None
        error = ""
        my_start = 0

        def skipped(why: str) -> ExecutionOutcome:
            return ExecutionOutcome(
                tenant_id, incident_id, "skipped", attempt, status, key, reason=why
            )

        for i in range(budget):
            attempt += 1
            if keepalive.lost:
                return skipped("lost the execution lease")
            try:
                started = await self.engine.record(
                    tenant_id,
                    incident_id,
                    kind="execution",
                    actor=ACTOR,
                    decision="started",
                    reason=f"attempt {attempt}: calling {target}"
                    + (f"; {took_over}" if took_over and i == 0 else ""),
                    data={
                        "attempt": attempt,
                        "holder": me.describe(),
                        "target": target,
                        "idempotency_key": key,
                        **({"took_over": took_over} if took_over and i == 0 else {}),
                    },
                    guard=may_start(auth_seq, my_start),
                )
            except GuardRefused as refused:
                fresh = await self.engine.get(tenant_id, incident_id)
                if fresh is not None and fresh.stage is Stage.AUTHORIZED:
                    if fresh.progress.succeeded:  # another run's call got through: finish it
                        p = fresh.progress
                        return await self._finish_executed(fresh, key, p.attempts, p.status_code)
                return skipped(refused.reason)
            my_start = started.seq
            await self._pause("before_call")
            headers = {
                "Content-Type": "application/json",
                IDEMPOTENCY_HEADER: key,
                **sign(secret, body, self.clock.now()),
                **(await self.receipts.headers(tenant_id) if self.receipts else {}),
            }
            status, error = None, ""
            try:
                resp = await self.http.post(
                    url, content=body, headers=headers, timeout=policy.webhook_timeout_s
                )
                status = resp.status_code
                if self.receipts is not None:
                    error = await self.receipts.observe(state, key, body, resp)
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            succeeded = status is not None and 200 <= status < 300
            outcome = f"HTTP {status}" if status else error
            data = {
                "attempt": attempt,
                "status_code": status,
                "error": error,
                "target": target,
                "idempotency_key": key,
                "holder": me.describe(),
            }
            try:
                await self.engine.record(
                    tenant_id,
                    incident_id,
                    kind="execution",
                    actor=ACTOR,
                    decision="succeeded" if succeeded else "attempt_failed",
                    reason=f"attempt {attempt}: {outcome}",
                    data=data,
                    guard=may_record(auth_seq, my_start),
                )
            except GuardRefused as refused:
                # Fenced: another run owns this authorization now. Say what our call got,
                # as a fact that counts for nothing, and stop.
                await self.engine.record(
                    tenant_id,
                    incident_id,
                    kind="execution",
                    actor=ACTOR,
                    decision="superseded",
                    reason=f"attempt {attempt} answered {outcome} after this run was fenced "
                    f"off ({refused.reason}); not counted",
                    data=data,
                )
                return skipped(f"fenced off: {refused.reason}")
            if succeeded:
                await self._pause("after_call")
                fresh = await self.engine.get(tenant_id, incident_id) or state
                return await self._finish_executed(fresh, key, attempt, status)
            if error.startswith("witness_refused"):
                break  # a refused checkpoint stays refused: dead-letter with the reason now
            if i + 1 < budget:
                await self.clock.sleep(webhook_backoff(policy, attempt))
        return await self._finish_failed(state, key, attempt, status, error, target, my_start)

    async def _finish_executed(
        self, state: IncidentState, key: str, attempts: int, status: int | None
    ) -> ExecutionOutcome:
        try:
            await self.engine.transition(
                state.tenant_id,
                state.incident_id,
                Change(
                    Stage.EXECUTED,
                    actor=ACTOR,
                    reason=f"recovery webhook answered HTTP {status}",
                    decision="executed",
                    data={"idempotency_key": key, "attempts": attempts, "status_code": status},
                ),
                expect_stage=Stage.AUTHORIZED,
                guard=_succeeded,
            )
        except TransitionRefused as refused:
            return ExecutionOutcome(
                state.tenant_id, state.incident_id, "skipped", attempts, status, key,
                reason=refused.reason,
            )  # fmt: skip
        return ExecutionOutcome(
            state.tenant_id, state.incident_id, "executed", attempts, status, key
        )

    async def _finish_failed(
        self,
        state: IncidentState,
        key: str,
        attempts: int,
        status: int | None,
        error: str,
        target: str,
        my_start: int,
    ) -> ExecutionOutcome:
        dlq_id = key
        await self.store.put(
            DLQ,
            dlq_id,
            {
                "id": dlq_id,
                "tenant_id": state.tenant_id,
                "incident_id": state.incident_id,
                "service": state.service,
                "action": state.action or "recover",
                "idempotency_key": key,
                "attempts": attempts,
                "last_status": status,
                "last_error": error,
                "target": target,
                "failed_at": self.clock.now(),
                "status": "dead",
            },
        )
        try:
            await self.engine.transition(
                state.tenant_id,
                state.incident_id,
                Change(
                    Stage.WEBHOOK_FAILED,
                    actor=ACTOR,
                    reason=f"recovery webhook failed {attempts} time(s); dead-lettered",
                    decision="dead_lettered",
                    data={
                        "idempotency_key": key,
                        "attempts": attempts,
                        "status_code": status,
                        "error": error,
                        "dlq_id": dlq_id,
                    },
                ),
                expect_stage=Stage.AUTHORIZED,
                guard=may_record(_authorized_seq(state), my_start),
            )
        except TransitionRefused as refused:
            now = await self.engine.get(state.tenant_id, state.incident_id)
            mine = now is not None and now.stage is Stage.WEBHOOK_FAILED
            if not (mine and now is not None and (now.execution or {}).get("dlq_id") == dlq_id):
                await self.store.delete(DLQ, dlq_id)  # nobody dead-lettered it: not dead
            return ExecutionOutcome(
                state.tenant_id, state.incident_id, "skipped", attempts, status, key,
                reason=refused.reason,
            )  # fmt: skip
        return ExecutionOutcome(
            state.tenant_id, state.incident_id, "failed", attempts, status, key, dlq_id
        )


async def dlq_list(store: StateStore, tenant_id: str | None = None) -> list[dict[str, Any]]:
    docs = list((await store.list(DLQ)).values())
    if tenant_id is not None:
        docs = [d for d in docs if d.get("tenant_id") == tenant_id]
    return sorted(docs, key=lambda d: float(d.get("failed_at", 0.0)))


async def dlq_replay(
    engine: IncidentEngine, store: StateStore, dlq_id: str, *, tenant_id: str | None = None
) -> IncidentState:
    """Send a dead-lettered incident back for a FRESH approval (WEBHOOK_FAILED -> VALIDATED).

    Never re-runs the webhook directly. Raises KeyError (unknown id / other tenant) or
    TransitionRefused (ledgered) when the incident is not WEBHOOK_FAILED.
    """
    doc = await store.get(DLQ, dlq_id)
    if doc is None or (tenant_id is not None and doc.get("tenant_id") != tenant_id):
        raise KeyError(dlq_id)
    t, i = str(doc["tenant_id"]), str(doc["incident_id"])
    await engine.refresh(t)
    state = await engine.transition(
        t,
        i,
        Change(
            Stage.VALIDATED,
            actor=ACTOR,
            reason=f"dead-letter {dlq_id} replayed: a fresh approval is required",
            decision="replay",
            data={"dlq_id": dlq_id},
        ),
        expect_stage=Stage.WEBHOOK_FAILED,
    )
    await store.put(DLQ, dlq_id, {**doc, "status": "replayed", "replayed_at": engine.clock.now()})
    return state
