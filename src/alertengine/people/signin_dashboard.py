"""Dashboard pages of person sign-in, and the incident page's Acknowledge button.

A tenant session (tenant key, or the admin key naming a tenant) may ask to act as one of the
tenant's people; the person gets a one-time link on their own channels and confirms there
(people/signin.py). Meanwhile the session cookie holds the pending device code; once the
person confirmed, a POST (the page's script polls it; a button does the same without script)
turns the session into that person's. Nobody, admin included, acts as a person without the
person's own confirmation.

Forms POST with the dashboard's CSRF defences (``SameSite=Strict`` cookie, the
``Sec-Fetch-Site``/``Origin`` check, and a token bound to the session cookie, as the on-call
pages do).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from alertengine.incidents import IncidentState, Stage
from alertengine.people.model import person_actor
from alertengine.people.signin import (
    REQUESTS,
    SignInError,
    SignIns,
    device_shape_ok,
    format_user_code,
    secret_hash,
)
from alertengine.people.signin_passkey import PasskeySignIn, parse_assertion
from alertengine.people.signin_routes import CONFIRM_PATH, describe, origin

if TYPE_CHECKING:
    from alertengine.orchestrator.dashboard import Dashboard, Session

MAX_FORM_BYTES = 16_384  # a passkey assertion is the largest field
COOKIE = "ae_dashboard"


def csrf_token(session_key: bytes, cookie: str) -> str:
    """The on-call pages' rule: HMAC of the session cookie with a key derived for CSRF."""
    key = hmac.new(session_key, b"alertengine/dashboard-csrf/v1", "sha256").digest()
    return hmac.new(key, cookie.encode(), hashlib.sha256).hexdigest()


class PersonPages:
    def __init__(self, dash: Dashboard, session_key: bytes) -> None:
        self.dash = dash
        self.session_key = session_key

    @property
    def signins(self) -> SignIns:
        s = self.dash.rt.signins
        if s is None:
            raise HTTPException(404, "person sign-in is not available here")
        return s

    @property
    def by_passkey(self) -> PasskeySignIn:
        passkeys = self.dash.rt.authorizer.passkeys
        if passkeys is None:
            raise HTTPException(404, "passkeys are not available here")
        return PasskeySignIn(passkeys, self.signins)

    def csrf(self, request: Request) -> str:
        return csrf_token(self.session_key, request.cookies.get(COOKIE, ""))

    async def _form(self, request: Request) -> dict[str, str]:
        from alertengine.orchestrator.dashboard import _same_origin

        if not _same_origin(request):
            raise HTTPException(403, "cross-site form refused")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
        if "form" not in request.headers.get("content-type", ""):
            raise HTTPException(415, "send the form (application/x-www-form-urlencoded)")
        form = await request.form(max_files=0, max_fields=8, max_part_size=MAX_FORM_BYTES)
        token = str(form.get("csrf") or "")
        if not hmac.compare_digest(token.encode(), self.csrf(request).encode()):
            raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page")
        return {k: str(v) for k, v in form.items()}

    def _with_session(self, request: Request, resp: Response, s: Session) -> Response:
        remaining = max(1, int(s.expires_at - self.dash.rt.clock.now()))
        resp.set_cookie(
            COOKIE,
            self.dash.codec.encode(s),
            max_age=remaining,
            path="/dashboard",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return resp

    def _replace(self, s: Session, **changes: Any) -> Session:
        return replace(s, **changes)

    async def _pending_doc(self, s: Session) -> dict[str, Any] | None:
        if not s.pending or not device_shape_ok(s.pending):
            return None
        return await self.dash.rt.store.get(REQUESTS, secret_hash(s.pending))

    # -- pages ---------------------------------------------------------------------------------

    async def page(
        self, request: Request, s: Session, *, error: str = "", status: int = 200
    ) -> Response:
        people = await self.signins.people.list(s.tenant_id)
        doc = await self._pending_doc(s)
        pending = None
        if doc is not None:
            pending = {
                "person": doc["person"],
                "user_code": format_user_code(str(doc["user_code"])),
                "sent_to": doc.get("sent_to") or [],
                "state": self.signins.state_of(doc),
                "expires_at": doc["expires_at"],
            }
        return self.dash.page(
            request,
            "person.html",
            status,
            people=people,
            pending=pending,
            error=error,
            csrf=self.csrf(request),
            **self.dash._context(s),
        )

    async def start(self, request: Request, s: Session) -> Response:
        form = await self._form(request)
        pid = form.get("person", "")
        try:
            pending = await self.signins.request(
                s.tenant_id,
                pid,
                requester=s.key_actor,
                client="dashboard",
                describe=describe(request, "dashboard"),
                **origin(request),
                confirm_url=lambda c: (
                    f"{self.dash.rt.config.orchestrator.base_url.rstrip('/')}{CONFIRM_PATH}?c={c}"
                ),
            )
        except SignInError as exc:
            return await self.page(request, s, error=exc.message, status=exc.status)
        fresh = self._replace(s, pending=pending.device_code, person="", person_name="")
        resp = RedirectResponse("/dashboard/person", status_code=303)
        return self._with_session(request, resp, fresh)

    async def poll(self, request: Request, s: Session) -> Response:
        """POST: complete the sign-in once the person confirmed (JSON for the page's script,
        a redirect for the no-script button)."""
        wants_json = "application/json" in request.headers.get("accept", "")
        await self._form(request)
        if not s.pending:
            raise HTTPException(409, "no sign-in is pending in this session")
        try:
            out = await self.signins.poll(s.pending, s.tenant_id, s.key_actor)
        except SignInError as exc:
            # The pending code stays: the page then says how the request ended.
            if wants_json:
                return JSONResponse(
                    {"status": "refused", "error": exc.message}, status_code=exc.status
                )
            return await self.page(request, s, error=exc.message, status=exc.status)
        if out.status == "pending":
            if wants_json:
                return JSONResponse({"status": "pending"}, status_code=202)
            return RedirectResponse("/dashboard/person", status_code=303)
        person = await self.signins.people.get(out.tenant_id, out.person)
        name = person.name if person else out.person
        acting = self._replace(s, pending="", person=out.person, person_name=name)
        resp: Response
        if wants_json:
            resp = JSONResponse({"status": "confirmed", "person": out.person, "name": name})
        else:
            resp = RedirectResponse("/dashboard/", status_code=303)
        return self._with_session(request, resp, acting)

    async def passkey_options(self, request: Request, s: Session) -> Response:
        """WebAuthn request options for the chosen person's passkeys (JSON)."""
        form = await self._form(request)
        try:
            options, nonce = await self.by_passkey.options(
                s.tenant_id, form.get("person", ""), s.key_actor
            )
        except SignInError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return JSONResponse({"options": options, "nonce": nonce})

    async def passkey_finish(self, request: Request, s: Session) -> Response:
        """The assertion from the person's authenticator: the session then names them."""
        form = await self._form(request)
        assertion = parse_assertion(form.get("assertion", ""))
        try:
            pid = await self.by_passkey.finish(
                s.tenant_id, s.key_actor, form.get("nonce", ""), assertion
            )
        except SignInError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        person = await self.signins.people.get(s.tenant_id, pid)
        name = person.name if person else pid
        acting = self._replace(s, pending="", person=pid, person_name=name)
        resp = JSONResponse({"status": "confirmed", "person": pid, "name": name})
        return self._with_session(request, resp, acting)

    async def stop(self, request: Request, s: Session) -> Response:
        """Stop acting as the person (the tenant session stays)."""
        await self._form(request)
        resp = RedirectResponse("/dashboard/person", status_code=303)
        return self._with_session(
            request, resp, self._replace(s, person="", person_name="", pending="")
        )

    async def ack(self, request: Request, s: Session) -> Response:
        await self._form(request)
        incident_id = request.path_params["incident_id"]
        ack = self.dash.rt.acknowledger
        if ack is None:
            raise HTTPException(404, "acknowledging is not available here")
        if not s.person:
            why = "sign in as a person first: a tenant or admin session names no person"
            await ack.refuse(s.tenant_id, incident_id, s.actor, why, "dashboard")
            raise HTTPException(403, why)
        if self.dash.rt.orch.mode.value == "EMERGENCY":
            raise HTTPException(503, "acknowledgements are paused; nothing was changed")
        result = await ack.acknowledge(
            s.tenant_id, incident_id, person_actor(s.person), "dashboard"
        )
        return await self.dash.incident(
            request, s, ack_result={"ok": result.ok, "message": result.message}
        )

    def routes(self, base: str) -> list[BaseRoute]:
        g = self.dash.guarded
        return [
            Route(f"{base}/person", g(self.page), methods=["GET"]),
            Route(f"{base}/person/signin", g(self.start), methods=["POST"]),
            Route(f"{base}/person/poll", g(self.poll), methods=["POST"]),
            Route(f"{base}/person/stop", g(self.stop), methods=["POST"]),
            Route(f"{base}/person/passkey/options", g(self.passkey_options), methods=["POST"]),
            Route(f"{base}/person/passkey/finish", g(self.passkey_finish), methods=["POST"]),
            Route(f"{base}/incidents/{{incident_id}}/ack", g(self.ack), methods=["POST"]),
        ]


def ack_context(
    pages: PersonPages | None, request: Request, state: IncidentState
) -> dict[str, Any]:
    """For the incident page: whether to show the Acknowledge button, and its CSRF token."""
    if pages is None:
        return {"can_ack": False, "ack_csrf": ""}
    return {"can_ack": state.stage is Stage.VALIDATED, "ack_csrf": pages.csrf(request)}


def person_pages(dash: Dashboard, base: str) -> tuple[PersonPages, list[BaseRoute]]:
    from alertengine.orchestrator.dashboard import session_key

    pages = PersonPages(dash, session_key(dash.rt.settings.alert_secret))
    return pages, pages.routes(base)
