"""The orchestrator's HTTP API: tenant-scoped reads of incidents and the ledger, and intake.

Every tenant-scoped endpoint needs the tenant's API key (``Authorization: Bearer …`` or
``X-API-Key``). Touching another tenant's incident answers 403 *and* is ledgered under the
tenant whose resource was reached for. GET never changes state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import BaseRoute, Route

from alertengine.alertmanager import PayloadError, parse_notification
from alertengine.incidents import IncidentState
from alertengine.ledger import LedgerError, LedgerQuery
from alertengine.ledger.checkpoint import NoteSigner
from alertengine.ledger.tlog import TransparencyLog
from alertengine.orchestrator.http import bool_param, float_param, int_param, json_body
from alertengine.orchestrator.key_refusals import unauthenticated
from alertengine.orchestrator.service import Orchestrator
from alertengine.refusals.gate import RefusalGate
from alertengine.tenants import (
    Principal,
    TenantRegistry,
    access_refusal,
    authenticate_request,
)


def incident_json(s: IncidentState) -> dict[str, Any]:
    return {
        "tenant_id": s.tenant_id,
        "incident_id": s.incident_id,
        "service": s.service,
        "stage": s.stage.value,
        "open": s.is_open,
        "opened_at": s.opened_at,
        "updated_at": s.updated_at,
        "policy_version": s.policy_version,
        "action": s.action,
        "detection": dict(s.detection),
        "diagnosis": dict(s.diagnosis) if s.diagnosis else None,
        "approvals": [{"actor": a.actor, "at": a.at} for a in s.approvals],
        "approvals_required": s.approvals_required,
        "token": (
            {k: v for k, v in s.token.items() if k in ("jti", "expires_at", "recipient")}
            if s.token
            else None
        ),
        "reproposals": s.reproposals,
        "escalations": s.escalations,
        "execution": dict(s.execution) if s.execution else None,
        "alerts": [dict(a) for a in s.alerts.values()],
        "history": [
            {"stage": h.stage.value, "actor": h.actor, "at": h.at, "seq": h.seq, "reason": h.reason}
            for h in s.history
        ],
    }


class OrchestratorAPI:
    def __init__(
        self,
        orch: Orchestrator,
        registry: TenantRegistry,
        admin_key: str | None,
        checkpoint_signer: NoteSigner | None = None,
        refusals: RefusalGate | None = None,
    ) -> None:
        self.orch = orch
        self.registry = registry
        self.admin_key = admin_key
        self._signer = checkpoint_signer
        #: A missing or wrong key is ledgered (``_system``) through the runtime's budget;
        #: built alone, every such refusal gets its own entry.
        self.refusals = refusals or RefusalGate.passthrough(orch.engine.record)

    @property
    def tlog(self) -> TransparencyLog:
        """Checkpoints and proofs; the signing key is loaded (or, on a first start, made)
        once, as docs/ledger.md says, on the first request that needs it."""
        if self._signer is None:
            from alertengine.ledger.keys import load_signer, state_dir_for
            from alertengine.ledger.tools import store_url_from_env

            self._signer = load_signer(state_dir=state_dir_for(store_url_from_env()))
        from alertengine.ledger.base import TreeStore

        if not isinstance(self.orch.ledger, TreeStore):
            raise HTTPException(501, "this ledger store keeps no Merkle tree")
        return TransparencyLog(self.orch.ledger, self._signer)

    async def principal(self, request: Request) -> Principal:
        return await authenticate_request(request, self.registry, self.admin_key)

    async def tenant_of(self, request: Request) -> str:
        """The tenant this request acts for: the key's own, or ``?tenant=`` for the admin."""
        p = await self.principal(request)
        if p.admin:
            t = request.query_params.get("tenant")
            if not t:
                raise HTTPException(400, "the admin key must name a tenant with ?tenant=")
            return t
        if p.tenant_id is None:
            raise await self.unauthenticated(request)
        asked = request.query_params.get("tenant")
        if asked and asked != p.tenant_id:
            await self.ledger_refusal(p, asked, None, request)
            raise HTTPException(403, f"this key may not access tenant {asked!r}")
        return p.tenant_id

    async def unauthenticated(self, request: Request) -> HTTPException:
        """Ledger a missing or wrong key (``_system``, through the budget); the 401."""
        return await unauthenticated(self.refusals, request)

    async def ledger_refusal(
        self, p: Principal, owner: str, incident_id: str | None, request: Request
    ) -> None:
        reason = access_refusal(p, owner) or "forbidden"
        if not await self.registry.exists(owner):
            owner = "_system"
        await self.orch.engine.record(
            owner,
            incident_id,
            kind="refused",
            actor=f"tenant:{p.tenant_id or 'anonymous'}",
            decision="forbidden",
            reason=reason,
            data={"method": request.method, "path": request.url.path},
        )

    # -- reads ------------------------------------------------------------------------------

    async def list_incidents(self, request: Request) -> JSONResponse:
        tenant = await self.tenant_of(request)
        open_only = bool_param(request, "open")
        items = await self.orch.engine.incidents(tenant, open_only=open_only)
        limit = int_param(request, "limit", 100, lo=1, hi=1000)
        return JSONResponse(
            {"tenant_id": tenant, "incidents": [incident_json(s) for s in items[:limit]]}
        )

    async def get_incident(self, request: Request) -> JSONResponse:
        tenant = await self.tenant_of(request)
        incident_id = request.path_params["incident_id"]
        state = await self.orch.engine.get(tenant, incident_id)
        if state is None:
            owner = await self._owner_of(incident_id)
            if owner is not None and owner != tenant:
                await self.ledger_refusal(
                    await self.principal(request), owner, incident_id, request
                )
                raise HTTPException(403, "this incident belongs to another tenant")
            raise HTTPException(404, f"no incident {incident_id!r}")
        timeline = await self.orch.ledger.read(
            LedgerQuery(tenant_id=tenant, incident_id=incident_id)
        )
        return JSONResponse({**incident_json(state), "timeline": [e.to_dict() for e in timeline]})

    async def _owner_of(self, incident_id: str) -> str | None:
        for t in await self.orch.ledger.tenants():
            if await self.orch.engine.get(t, incident_id) is not None:
                return t
        return None

    async def ledger_page(self, request: Request) -> JSONResponse:
        tenant = await self.tenant_of(request)
        after = int_param(request, "after_seq", 0, lo=0, hi=2**62)
        limit = int_param(request, "limit", 100, lo=1, hi=1000)
        q = LedgerQuery(
            tenant_id=tenant,
            incident_id=request.query_params.get("incident") or None,
            since=float_param(request, "since"),
            until=float_param(request, "until"),
            after_seq=after,
            limit=limit,
        )
        entries = await self.orch.ledger.read(q)
        nxt = entries[-1].seq if len(entries) == limit else None
        return JSONResponse(
            {"tenant_id": tenant, "entries": [e.to_dict() for e in entries], "next_after_seq": nxt}
        )

    async def ledger_verify(self, request: Request) -> JSONResponse:
        tenant = await self.tenant_of(request)
        result = await self.orch.ledger.verify(tenant)
        return JSONResponse(result.to_dict(), status_code=200 if result.ok else 409)

    async def ledger_public_key(self, request: Request) -> JSONResponse:
        """The verifier key of the log's checkpoints: public, the same for every tenant."""
        log = self.tlog
        return JSONResponse({"public_key": log.verifier.vkey, "origin_prefix": f"{log.log_name}/"})

    async def ledger_checkpoint(self, request: Request) -> PlainTextResponse:
        """The tenant's current tree head, as a signed C2SP checkpoint (text/plain)."""
        tenant = await self.tenant_of(request)
        return PlainTextResponse(await self.tlog.checkpoint(tenant))

    async def ledger_inclusion_proof(self, request: Request) -> JSONResponse:
        tenant = await self.tenant_of(request)
        log = self.tlog
        seq = int_param(request, "seq", 0, lo=1, hi=2**62)
        if seq == 0:
            raise HTTPException(400, "query parameter 'seq' is required")
        size = int_param(request, "tree_size", 0, lo=1, hi=2**62) or None
        try:
            proof = await log.inclusion_proof(tenant, seq, size)
        except LedgerError as exc:
            raise HTTPException(404, str(exc)) from None
        entries = await self.orch.ledger.read(
            LedgerQuery(tenant_id=tenant, after_seq=seq - 1, limit=1)
        )
        return JSONResponse(
            {
                "proof": proof.to_dict(),
                "entry": entries[0].to_dict() if entries else None,
                "checkpoint": await log.checkpoint(tenant, proof.tree_size),
            }
        )

    async def ledger_consistency_proof(self, request: Request) -> JSONResponse:
        tenant = await self.tenant_of(request)
        log = self.tlog
        if not request.query_params.get("from_size"):
            raise HTTPException(400, "query parameter 'from_size' is required")
        old = int_param(request, "from_size", 0, lo=0, hi=2**62)
        new = int_param(request, "to_size", -1, lo=0, hi=2**62)
        try:
            proof = await log.consistency_proof(tenant, old, None if new < 0 else new)
        except LedgerError as exc:
            raise HTTPException(404, str(exc)) from None
        return JSONResponse(
            {
                "proof": proof.to_dict(),
                "old_checkpoint": await log.checkpoint(tenant, proof.from_size),
                "checkpoint": await log.checkpoint(tenant, proof.to_size),
            }
        )

    async def status(self, request: Request) -> JSONResponse:
        p = await self.principal(request)
        if not p.authenticated:
            raise await self.unauthenticated(request)
        if not p.admin:
            # Status spans every tenant (targets, leases, replicas): the operator's view only.
            await self.ledger_refusal(p, "_system", None, request)
            raise HTTPException(403, "the status endpoint needs the admin key")
        return JSONResponse(self.orch.status())

    # -- intake -----------------------------------------------------------------------------

    async def intake_health(self, request: Request) -> JSONResponse:
        tenant = await self.tenant_of(request)
        service = request.query_params.get("service", "")
        body = await json_body(request)
        if not isinstance(body, dict):
            raise HTTPException(400, "body must be a JSON object (the /health/alerts answer)")
        service = service or str(body.get("service", ""))
        if not service:
            raise HTTPException(400, "name the service: ?service=… or a 'service' field")
        try:
            state = await self.orch.push_health(tenant, service, body)
        except KeyError:
            raise HTTPException(404, f"no target {tenant}/{service} in the config") from None
        return JSONResponse(
            {"accepted": True, "incident": incident_json(state) if state else None}, status_code=202
        )

    async def intake_alertmanager(self, request: Request) -> JSONResponse:
        tenant = await self.tenant_of(request)
        body = await json_body(request)
        try:
            alerts = parse_notification(body)
        except PayloadError as exc:
            raise HTTPException(400, str(exc)) from None
        try:
            outcome = await self.orch.alertmanager_alerts(tenant, alerts)
        except LedgerError:
            raise HTTPException(
                503, "the ledger cannot record these alerts now; retry", {"Retry-After": "5"}
            ) from None
        return JSONResponse(outcome, status_code=202)

    def routes(self) -> Sequence[BaseRoute]:
        return [
            Route("/incidents", self.list_incidents, methods=["GET"]),
            Route("/incidents/{incident_id}", self.get_incident, methods=["GET"]),
            Route("/ledger", self.ledger_page, methods=["GET"]),
            Route("/ledger/verify", self.ledger_verify, methods=["GET"]),
            Route("/ledger/public-key", self.ledger_public_key, methods=["GET"]),
            Route("/ledger/checkpoint", self.ledger_checkpoint, methods=["GET"]),
            Route("/ledger/proof/inclusion", self.ledger_inclusion_proof, methods=["GET"]),
            Route("/ledger/proof/consistency", self.ledger_consistency_proof, methods=["GET"]),
            Route("/__alertengine/status", self.status, methods=["GET"]),
            Route("/intake/health", self.intake_health, methods=["POST"]),
            Route("/intake/alertmanager", self.intake_alertmanager, methods=["POST"]),
        ]
