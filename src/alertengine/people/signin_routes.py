"""HTTP routes of person sign-in, person tokens, and acknowledging as a signed-in person.

- ``POST /people/signin`` (tenant key): ``{"person": "alice", "client": "cli"}`` -> 201 with
  the device code (keep secret), the user code (show it) and where the link went.
- ``POST /people/signin/poll`` (tenant key): ``{"device_code": …}`` -> 202 pending, then 200
  with the person token exactly once; 403 denied, 404 unknown, 409 reused, 410 expired.
- ``GET /people/signin/confirm?c=…``: the person's page (changes nothing: chat apps
  prefetch links). ``POST`` it with ``decision=confirm`` or ``deny``.
- ``GET /people/whoami`` and ``DELETE /people/signin/token`` (person token): who am I; log out.
- ``DELETE /people/{person_id}/tokens`` (tenant key): revoke all of a person's tokens.
- ``POST /incidents/{incident_id}/ack`` (person token): "I'm on it". A tenant or admin key
  alone is refused (403, ledgered) with how to sign in: a key names no person.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from alertengine.engine import IncidentEngine
from alertengine.orchestrator.ack import Acknowledger
from alertengine.orchestrator.api import OrchestratorAPI
from alertengine.orchestrator.approval_routes import SECURITY_HEADERS
from alertengine.orchestrator.http import json_body
from alertengine.people.model import person_id_problem
from alertengine.people.signin import (
    TOKEN_PREFIX,
    ConfirmView,
    PersonToken,
    SignInError,
    SignIns,
)
from alertengine.tenants import SYSTEM_TENANT, presented_key

CONFIRM_PATH = "/people/signin/confirm"
#: Bodies here are a few short fields.
MAX_BODY = 4_096

_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width,initial-scale=1">'
    '<meta name="referrer" content="no-referrer">'
    "<title>AlertEngine: sign-in request</title></head>"
    '<body style="font-family:system-ui;max-width:34rem;margin:2rem auto;padding:0 1rem">'
    "{body}</body></html>"
)
_CLIENT_WORDS = {"cli": "the command line", "dashboard": "the dashboard", "api": "the API"}


def _page(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(body=body), status_code=status, headers=SECURITY_HEADERS)


def _err(exc: SignInError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


def origin(request: Request) -> dict[str, str]:
    """The requester's address and user agent: data fields of the ``requested`` entry."""
    return {
        "address": request.client.host if request.client else "",
        "user_agent": request.headers.get("user-agent", ""),
    }


def describe(request: Request, client: str) -> str:
    """Who asks, as the person will read it: the client, the address, the user agent."""
    ip = request.client.host if request.client else "?"
    agent = request.headers.get("user-agent", "")[:60] or "unknown client"
    return f"{client} from {ip}, {agent}"


def confirm_view_html(view: ConfirmView, code: str) -> str:
    e = html.escape
    client = _CLIENT_WORDS.get(view.client, view.client)
    if view.state != "pending":
        return (
            f"<h1>Sign-in request {e(view.state)}</h1>"
            "<p>This link was already answered or is no longer valid. Nothing to do.</p>"
        )
    return (
        f"<h1>Sign in as {e(view.person_name)}?</h1>"
        f'<p id="who"><b>{e(view.requester)}</b> asks to act as <b>{e(view.person_name)}</b> '
        f"(person:{e(view.person)}, tenant {e(view.tenant_id)}) from {e(client)} "
        f"({e(view.describe)}).</p>"
        "<p>Confirm only if the screen where <em>you</em> asked shows this code:</p>"
        f'<p id="user-code" style="font-size:2rem;font-family:monospace;letter-spacing:.1em">'
        f"{e(view.user_code)}</p>"
        f'<form method="post" action="{CONFIRM_PATH}">'
        f'<input type="hidden" name="c" value="{e(code, quote=True)}">'
        '<button type="submit" name="decision" value="confirm" id="confirm" '
        'style="font-size:1.2rem;padding:.6rem 1.2rem">Yes, this is me</button> '
        '<button type="submit" name="decision" value="deny" id="deny" '
        'style="font-size:1.2rem;padding:.6rem 1.2rem">Not me</button></form>'
        "<p>Signing in lets that screen acknowledge incidents as you. It never approves a "
        "recovery by itself.</p>"
    )


class SignInRoutes:
    def __init__(
        self,
        signins: SignIns,
        api: OrchestratorAPI,
        engine: IncidentEngine,
        acknowledger: Acknowledger,
        base_url: str,
        paused: Callable[[], str | None],
    ) -> None:
        self.signins, self.api, self.engine = signins, api, engine
        self.ack, self.base_url, self.paused = acknowledger, base_url.rstrip("/"), paused

    def confirm_url(self, code: str) -> str:
        return f"{self.base_url}{CONFIRM_PATH}?c={code}"

    async def _requester(self, request: Request) -> tuple[str, str]:
        """(tenant, actor) of a tenant key, or the admin key naming ``?tenant=``."""
        tenant = await self.api.tenant_of(request)
        if not await self.api.registry.exists(tenant):
            raise HTTPException(404, f"no such tenant: {tenant!r}")
        p = await self.api.principal(request)
        return tenant, "admin" if p.admin else f"tenant:{tenant}"

    async def _body(self, request: Request, allowed: set[str]) -> dict[str, Any]:
        body = await json_body(request, max_bytes=MAX_BODY)
        if not isinstance(body, dict):
            raise HTTPException(400, "the body must be a JSON object")
        extra = sorted(set(body) - allowed)
        if extra:
            raise HTTPException(400, f"unknown field(s) {extra}")
        return body

    # -- the requester -------------------------------------------------------------------------

    async def start(self, request: Request) -> Response:
        tenant, actor = await self._requester(request)
        body = await self._body(request, {"person", "client"})
        person = body.get("person")
        if not isinstance(person, str) or person_id_problem(person):
            raise HTTPException(400, "person: a person id of this tenant (e.g. alice)")
        client = body.get("client", "cli")
        if client not in ("cli", "api"):
            raise HTTPException(400, "client: cli or api (the dashboard signs in on its pages)")
        try:
            pending = await self.signins.request(
                tenant,
                person,
                requester=actor,
                client=str(client),
                describe=describe(request, str(client)),
                **origin(request),
                confirm_url=self.confirm_url,
            )
        except SignInError as exc:
            raise _err(exc) from None
        return JSONResponse(
            pending.to_json(), status_code=201, headers={"Cache-Control": "no-store"}
        )

    async def poll(self, request: Request) -> Response:
        tenant, actor = await self._requester(request)
        body = await self._body(request, {"device_code"})
        code = body.get("device_code")
        if not isinstance(code, str):
            raise HTTPException(400, "device_code: the code POST /people/signin answered")
        try:
            out = await self.signins.poll(code, tenant, actor)
        except SignInError as exc:
            raise _err(exc) from None
        if out.status == "pending":
            return JSONResponse({"status": "pending"}, status_code=202)
        return JSONResponse(
            {
                "status": "confirmed",
                "tenant_id": out.tenant_id,
                "person": out.person,
                "token": out.token,
                "expires_at": out.expires_at,
            },
            headers={"Cache-Control": "no-store"},
        )

    # -- the person ----------------------------------------------------------------------------

    async def confirm_page(self, request: Request) -> Response:
        code = request.query_params.get("c", "")
        view = await self.signins.view(code)
        if view is None:
            return _page("<h1>Unknown link</h1><p>This sign-in link is not valid.</p>", 404)
        return _page(confirm_view_html(view, code))

    async def confirm_post(self, request: Request) -> Response:
        if self.paused() is not None:
            return _page("<h1>Try again soon</h1><p>Nothing can be recorded right now.</p>", 503)
        if "form" not in request.headers.get("content-type", ""):
            raise HTTPException(415, "send the page's form (application/x-www-form-urlencoded)")
        form = await request.form(max_files=0, max_fields=4)
        code = str(form.get("c") or "")
        decision = str(form.get("decision") or "")
        if decision not in ("confirm", "deny"):
            raise HTTPException(400, "decision: confirm or deny")
        try:
            view = await self.signins.answer(code, confirm=decision == "confirm")
        except SignInError as exc:
            return _page(
                f'<h1>Not accepted</h1><p id="result">{html.escape(exc.message)}</p>', exc.status
            )
        if view.state == "confirmed":
            text = (
                f"Confirmed: {view.requester} may now act as {view.person_name} "
                "(it approves nothing by itself). You can close this page."
            )
        else:
            text = "Denied: nobody was signed in. The attempt is recorded in the ledger."
        return _page(f'<h1>Thank you</h1><p id="result">{html.escape(text)}</p>')

    # -- person tokens -------------------------------------------------------------------------

    async def person(self, request: Request) -> PersonToken:
        """The person a request's token names; a tenant or admin key is refused (403)."""
        key = presented_key(request) or ""
        if not key:
            raise HTTPException(
                401,
                "a person token is required (Authorization: Bearer aep_…): run "
                "`alertengine person login --tenant T PERSON`",
                {"WWW-Authenticate": "Bearer"},
            )
        if not key.startswith(TOKEN_PREFIX):
            p = await self.api.principal(request)
            if p.authenticated:
                owner = p.tenant_id or request.query_params.get("tenant") or SYSTEM_TENANT
                if not await self.api.registry.exists(owner):
                    owner = SYSTEM_TENANT
                why = (
                    "a tenant or admin key names no person and cannot act as one: sign in as "
                    "yourself with `alertengine person login --tenant T PERSON` (a link goes "
                    "to your phone) and use the person token"
                )
                await self.signins.refuse(
                    owner,
                    "admin" if p.admin else f"tenant:{p.tenant_id}",
                    f"refused: {why}",
                    403,
                    path=request.url.path,
                )
                raise HTTPException(403, why)
        try:
            return await self.signins.verify(key, path=request.url.path)
        except SignInError as exc:
            raise HTTPException(exc.status, exc.message, {"WWW-Authenticate": "Bearer"}) from None

    async def whoami(self, request: Request) -> Response:
        who = await self.person(request)
        person = await self.signins.people.get(who.tenant_id, who.person)
        return JSONResponse(
            {
                "tenant_id": who.tenant_id,
                "person": who.person,
                "name": person.name if person else who.person,
                "actor": who.actor,
                "token": who.ref,
                "expires_at": who.expires_at,
            }
        )

    async def logout(self, request: Request) -> Response:
        await self.person(request)
        key = presented_key(request) or ""
        try:
            who = await self.signins.revoke(key)
        except SignInError as exc:
            raise _err(exc) from None
        return JSONResponse({"revoked": who.ref, "person": who.person, "tenant_id": who.tenant_id})

    async def revoke_all(self, request: Request) -> Response:
        tenant, actor = await self._requester(request)
        pid = request.path_params["person_id"]
        if person_id_problem(pid):
            raise HTTPException(400, f"invalid person id {pid[:64]!r}")
        count = await self.signins.revoke_all(tenant, pid, actor=actor)
        return JSONResponse({"person": pid, "tenant_id": tenant, "revoked": count})

    # -- acknowledge ---------------------------------------------------------------------------

    async def _owner_of(self, incident_id: str) -> str | None:
        for t in await self.engine.ledger.tenants():
            if await self.engine.get(t, incident_id) is not None:
                return t
        return None

    async def acknowledge(self, request: Request) -> Response:
        if self.paused() is not None:
            raise HTTPException(503, "acknowledgements are paused; nothing was changed")
        who = await self.person(request)
        incident_id = request.path_params["incident_id"]
        via = "cli" if who.client == "cli" else "api"
        if await self.engine.get(who.tenant_id, incident_id) is None:
            owner = await self._owner_of(incident_id)
            if owner is not None:
                await self.signins.refuse(
                    owner,
                    who.actor,
                    f"ack refused: {who.actor} of tenant {who.tenant_id!r} may not touch "
                    f"tenant {owner!r}'s incident",
                    403,
                    via=via,
                    incident=incident_id[:80],
                )
                raise HTTPException(403, "this incident belongs to another tenant")
            raise HTTPException(404, f"no incident {incident_id[:80]!r}")
        result = await self.ack.acknowledge(who.tenant_id, incident_id, who.actor, via)
        return JSONResponse(
            {
                "ok": result.ok,
                "message": result.message,
                "incident_id": incident_id,
                "tenant_id": who.tenant_id,
                "actor": who.actor,
                "via": via,
            },
            status_code=result.status,
        )

    def routes(self) -> list[Route]:
        return [
            Route("/people/signin", self.start, methods=["POST"]),
            Route("/people/signin/poll", self.poll, methods=["POST"]),
            Route(CONFIRM_PATH, self.confirm_page, methods=["GET"]),
            Route(CONFIRM_PATH, self.confirm_post, methods=["POST"]),
            Route("/people/signin/token", self.logout, methods=["DELETE"]),
            Route("/people/whoami", self.whoami, methods=["GET"]),
            Route("/people/{person_id}/tokens", self.revoke_all, methods=["DELETE"]),
            Route("/incidents/{incident_id}/ack", self.acknowledge, methods=["POST"]),
        ]
