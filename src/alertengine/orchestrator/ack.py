"""Acknowledge ("I'm on it"): a notified person takes the incident; escalation waits.

An acknowledgement is a ledger entry (``kind="ack"``) by a person of the tenant who was asked
this round (a link was issued to them) while the incident awaits approval. It holds
escalation for the tenant's ``ack_timeout_s``; the others already notified are told who took
it. It never authorizes anything: nothing here touches the authorizer, the approvals or a
transition.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from alertengine.authorize.service import LINKS
from alertengine.authorize.tokens import TokenError, TokenSigner
from alertengine.engine import IncidentEngine
from alertengine.incidents import IncidentState, Stage
from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.approval_routes import SECURITY_HEADERS, _confirm_body
from alertengine.people import PersonRegistry, parse_person_actor
from alertengine.refusals.gate import RefusalGate
from alertengine.stores.base import StateStore
from alertengine.tenants import SYSTEM_TENANT

#: Tell the others who acknowledged (wired to the notifier).
Tell = Callable[[IncidentState, str], Awaitable[None]]


@dataclass(frozen=True)
class AckResult:
    ok: bool
    message: str
    tenant_id: str = ""
    incident_id: str = ""
    actor: str = ""

    @property
    def status(self) -> int:
        return 200 if self.ok else 409 if self.tenant_id else 404


@dataclass(frozen=True)
class LinkRef:
    """What an approval link's id (a button's or a call's ``ref``) points at."""

    jti: str
    tenant_id: str
    incident_id: str
    recipient: str
    expires_at: float


async def link_ref(store: StateStore, ref: str) -> LinkRef | None:
    jti = ref.strip()
    if not jti or len(jti) > 64:
        return None
    doc = await store.get(LINKS, jti)
    if doc is None:
        return None
    return LinkRef(
        jti, str(doc["tenant"]), str(doc["incident"]), str(doc["approver"]), float(doc["exp"])
    )


class Acknowledger:
    def __init__(
        self,
        engine: IncidentEngine,
        people: PersonRegistry,
        store: StateStore,
        tell: Tell | None = None,
    ) -> None:
        self.engine, self.people, self.store, self.tell = engine, people, store, tell
        #: Refusals that name no tenant (a forged link, an unknown button): the budget's.
        self.refusals = RefusalGate.passthrough(engine.record)

    async def refuse(
        self, tenant_id: str, incident_id: str | None, actor: str, why: str, via: str, **data: str
    ) -> None:
        await self.engine.record(
            tenant_id,
            incident_id,
            kind="refused",
            actor=actor,
            decision="ack refused",
            reason=why,
            data={"via": via, **data},
        )

    async def refuse_anonymous(self, actor: str, why: str, via: str, **data: str) -> None:
        """A refusal no tenant can be named for, through the refusal budget (``why`` is a
        code constant: it is the budget's category)."""
        await self.refusals.record(
            why,
            SYSTEM_TENANT,
            None,
            kind="refused",
            actor=actor,
            decision="ack refused",
            reason=why,
            data={"via": via, **data},
        )

    async def _was_asked(self, state: IncidentState, actor: str) -> bool:
        """A link was issued to ``actor`` this round: they were (being) notified."""
        since = state.history[-1].seq if state.history else 0
        issued = await self.engine.ledger.read(
            LedgerQuery(
                tenant_id=state.tenant_id,
                incident_id=state.incident_id,
                after_seq=since,
                kinds=frozenset({"token"}),
            )
        )
        return any(e.data.get("recipient") == actor for e in issued)

    async def by_ref(self, ref: str, actor: str, via: str) -> AckResult:
        """Acknowledge the incident of approval link ``ref`` as ``actor`` (a person)."""
        link = await link_ref(self.store, ref)
        if link is None:
            if parse_person_actor(actor):  # a known person's stale button: their own entry
                await self.refuse(SYSTEM_TENANT, None, actor, "unknown acknowledge button", via)
            else:
                await self.refuse_anonymous(actor, "unknown acknowledge button", via)
            return AckResult(False, "This button is not valid.")
        return await self.acknowledge(link.tenant_id, link.incident_id, actor, via)

    async def acknowledge(
        self, tenant_id: str, incident_id: str, actor: str, via: str
    ) -> AckResult:
        await self.engine.refresh(tenant_id)
        state = await self.engine.get(tenant_id, incident_id)
        if state is None:
            await self.refuse(SYSTEM_TENANT, None, actor, "unknown incident", via)
            return AckResult(False, "Unknown incident.")
        pid = parse_person_actor(actor)
        person = await self.people.get(tenant_id, pid) if pid else None
        if person is None:
            await self.refuse(tenant_id, incident_id, actor, "not a person of this tenant", via)
            return AckResult(
                False, "You are not on call for this service.", tenant_id, incident_id, actor
            )
        if state.stage is not Stage.VALIDATED:
            await self.refuse(tenant_id, incident_id, actor, f"incident is {state.stage}", via)
            return AckResult(
                False, f"This incident is {state.stage}: nothing to acknowledge.", tenant_id
            )
        if not await self._was_asked(state, actor):
            await self.refuse(
                tenant_id, incident_id, actor, "not notified about this incident (yet)", via
            )
            return AckResult(
                False,
                "You have not been asked about this incident yet.",
                tenant_id,
                incident_id,
                actor,
            )
        if state.acked_by:
            who = "You" if state.acked_by == actor else state.acked_by
            return AckResult(
                True, f"{who} already acknowledged this incident.", tenant_id, incident_id, actor
            )
        policy = self.engine.policy_for(tenant_id)
        await self.engine.record(
            tenant_id,
            incident_id,
            kind="ack",
            actor=actor,
            decision="acknowledged",
            reason=f"{actor} is on it (via {via}); escalation waits "
            f"{policy.ack_timeout_s:.0f} s for a decision",
            data={"via": via, "ack_timeout_s": policy.ack_timeout_s},
        )
        fresh = await self.engine.get(tenant_id, incident_id) or state
        if self.tell is not None:
            await self.tell(fresh, actor)
        return AckResult(
            True,
            "Acknowledged: you are on it. Escalation paused; approving is still a separate step.",
            tenant_id,
            incident_id,
            actor,
        )


# -- the web page: GET shows a button, POST acknowledges ----------------------------------

_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width,initial-scale=1">'
    "<title>AlertEngine: acknowledge</title></head>"
    '<body style="font-family:system-ui;max-width:32rem;margin:2rem auto;padding:0 1rem">'
    "{body}</body></html>"
)


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(body=body), status_code=status, headers=SECURITY_HEADERS)


def ack_routes(
    ack: Acknowledger, signer: TokenSigner, paused: Callable[[], str | None]
) -> list[Route]:
    """``GET /action/ack?token=…`` (a page with one button; changes nothing) and
    ``POST /action/ack`` (form or JSON ``{"token": …}``): the approval link's person is on
    it. The token proves who; acknowledging never redeems it."""

    async def page(request: Request) -> Response:
        token = request.query_params.get("token", "")
        return _page(
            "<h1>I'm on it</h1><p>Acknowledging stops the escalation to the next person. "
            "It approves nothing.</p>"
            '<form method="post" action="/action/ack">'
            f'<input type="hidden" name="token" value="{html.escape(token, quote=True)}">'
            '<button type="submit" style="font-size:1.2rem;padding:.6rem 1.2rem">'
            "Acknowledge</button></form>"
        )

    async def post(request: Request) -> Response:
        wants_json = "json" in request.headers.get("content-type", "") or (
            "application/json" in request.headers.get("accept", "")
        )
        if paused() is not None:
            body = {"ok": False, "message": "Acknowledgements are paused; nothing was changed."}
            return JSONResponse(body, status_code=503, headers=SECURITY_HEADERS)
        token, _ = await _confirm_body(request)
        result: AckResult
        try:
            claims = signer.decode(token or "")
        except TokenError as err:
            if err.claims is None:  # nobody signed it: anyone can send these (the budget's)
                await ack.refuse_anonymous("anonymous", f"ack link {err.problem}", "web")
            else:
                await ack.refuse(SYSTEM_TENANT, None, "anonymous", f"ack link {err.problem}", "web")
            result = AckResult(False, "This link is not valid.")
            status = err.status
        else:
            result = await ack.acknowledge(claims.tenant, claims.incident, claims.approver, "web")
            status = result.status
        if wants_json:
            return JSONResponse(
                {"ok": result.ok, "message": result.message, "incident_id": result.incident_id},
                status_code=status,
                headers=SECURITY_HEADERS,
            )
        return _page(
            f"<h1>{'Acknowledged' if result.ok else 'Not acknowledged'}</h1>"
            f"<p>{html.escape(result.message)}</p>",
            status,
        )

    return [
        Route("/action/ack", page, methods=["GET"]),
        Route("/action/ack", post, methods=["POST"]),
    ]
