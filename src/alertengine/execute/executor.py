"""Execution: the tenant's own recovery webhook, signed, retried, dead-lettered.

Only an AUTHORIZED incident is executed, by whichever replica holds the lease
``exec:<tenant>:<incident>``. The ``Idempotency-Key`` is derived from the incident and the
seq of its AUTHORIZED entry, so a resume after a crash sends the same key and the receiver
can drop the duplicate. Every attempt is ledgered (status code or error kind, never a URL
query or a secret); the end is EXECUTED, or WEBHOOK_FAILED plus a dead-letter document
(collection ``dlq``) written *before* the transition so a crash can never lose it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import httpx

from alertengine.clock import Clock
from alertengine.engine import Change, IncidentEngine, TransitionRefused
from alertengine.execute.signing import IDEMPOTENCY_HEADER, sign
from alertengine.incidents import IncidentState, Stage
from alertengine.ledger import LedgerQuery
from alertengine.policy import webhook_backoff
from alertengine.stores.base import StateStore

if TYPE_CHECKING:
    from alertengine.execute.receipts import ReceiptBook

log = logging.getLogger(__name__)

DLQ = "dlq"
ACTOR = "orchestrator"
LEASE_MARGIN_S = 30.0

WebhookTarget = tuple[str, str]  # (url, secret)
WebhookFor = Callable[[str, str], "WebhookTarget | Awaitable[WebhookTarget]"]


def idempotency_key(tenant_id: str, incident_id: str, authorized_seq: int) -> str:
    """Deterministic per authorization: the same after a crash, new after a fresh approval."""
    raw = f"alertengine\x00{tenant_id}\x00{incident_id}\x00{authorized_seq}".encode()
    return "ae-" + hashlib.sha256(raw).hexdigest()[:32]


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
        holder: str | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.http = http_client
        self.clock = clock
        self.webhook_for = webhook_for
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        # The lease keeps other replicas out; this keeps a second run in *this* process out
        # (a sweep's resume() while a scheduled run sleeps between retries would re-acquire
        # our own lease and send the webhook twice).
        self._running: set[tuple[str, str]] = set()

    async def _target(self, tenant_id: str, service: str) -> WebhookTarget:
        got = self.webhook_for(tenant_id, service)
        if inspect.isawaitable(got):
            return await got
        return got

    async def resume(self, tenant_ids: Iterable[str] | None = None) -> list[ExecutionOutcome]:
        """Run every AUTHORIZED incident (after a restart, or as a periodic sweep)."""
        tenants = list(tenant_ids) if tenant_ids is not None else await self.engine.ledger.tenants()
        out: list[ExecutionOutcome] = []
        for tenant_id in tenants:
            await self.engine.refresh(tenant_id)
            for state in await self.engine.incidents(tenant_id, open_only=True):
                if state.stage is Stage.AUTHORIZED:
                    out.append(await self.run(tenant_id, state.incident_id))
        return out

    async def run(self, tenant_id: str, incident_id: str) -> ExecutionOutcome:
        """Execute one AUTHORIZED incident, unless another replica is doing it or it is done."""
        policy = self.engine.policy_for(tenant_id)
        lease = f"exec:{tenant_id}:{incident_id}"
        lease_ttl = policy.webhook_timeout_s + 2 * policy.webhook_backoff_s + LEASE_MARGIN_S
        if (tenant_id, incident_id) in self._running:
            return ExecutionOutcome(tenant_id, incident_id, "skipped", reason="already running")
        if not await self.store.acquire_lease(lease, self.holder, lease_ttl):
            return ExecutionOutcome(tenant_id, incident_id, "skipped", reason="leased elsewhere")
        self._running.add((tenant_id, incident_id))
        try:
            await self.engine.refresh(tenant_id)
            state = await self.engine.get(tenant_id, incident_id)
            if state is None or state.stage is not Stage.AUTHORIZED:
                stage = state.stage if state else "missing"
                return ExecutionOutcome(tenant_id, incident_id, "skipped", reason=f"is {stage}")
            return await self._execute(state, lease, lease_ttl)
        finally:
            self._running.discard((tenant_id, incident_id))
            await self.store.release_lease(lease, self.holder)

    async def _previous_attempts(self, state: IncidentState, after_seq: int) -> tuple[int, bool]:
        """Attempts already ledgered for this authorization, and whether one succeeded."""
        entries = await self.engine.ledger.read(
            LedgerQuery(
                tenant_id=state.tenant_id,
                incident_id=state.incident_id,
                after_seq=after_seq,
                kinds=frozenset({"execution"}),
            )
        )
        mine = [e for e in entries if e.incident_id == state.incident_id]
        return len(mine), any(e.decision == "succeeded" for e in mine)

    async def _execute(
        self, state: IncidentState, lease: str, lease_ttl: float
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
        done_before, succeeded_before = await self._previous_attempts(state, auth_seq)
        if succeeded_before:  # crashed after the webhook answered: just record the outcome
            return await self._finish_executed(state, key, done_before, None)
        budget = max(1, policy.webhook_attempts - done_before)
        attempt = done_before
        status: int | None = None
        error = ""
        for i in range(budget):
            attempt += 1
            await self.store.renew_lease(lease, self.holder, lease_ttl)
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
            await self.engine.record(
                tenant_id,
                incident_id,
                kind="execution",
                actor=ACTOR,
                decision="succeeded" if succeeded else "attempt_failed",
                reason=f"attempt {attempt}: " + (f"HTTP {status}" if status else error),
                data={
                    "attempt": attempt,
                    "status_code": status,
                    "error": error,
                    "target": target,
                    "idempotency_key": key,
                },
            )
            if succeeded:
                return await self._finish_executed(state, key, attempt, status)
            if error.startswith("witness_refused"):
                break  # a refused checkpoint stays refused: dead-letter with the reason now
            if i + 1 < budget:
                await self.clock.sleep(webhook_backoff(policy, attempt))
        return await self._finish_failed(state, key, attempt, status, error, target)

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
            )
        except TransitionRefused as refused:
            await self.store.delete(DLQ, dlq_id)
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
