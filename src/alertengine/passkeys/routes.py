"""HTTP for passkeys: the enrollment page and the approval page's WebAuthn options.

``GET /passkeys/enroll?token=…`` shows who the link enrolls and changes nothing; the browser
then POSTs ``/passkeys/enroll/options`` (creation options; the challenge is remembered) and
``/passkeys/enroll/finish`` (the new credential). The approval page POSTs
``/action/recover/passkey-options`` for request options whose challenge is bound to that one
approval, then sends the assertion with the token to ``/action/recover/confirm``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from alertengine import strict_json
from alertengine.authorize.service import Authorizer
from alertengine.authorize.tokens import TokenError
from alertengine.orchestrator.approval_routes import SECURITY_HEADERS
from alertengine.orchestrator.approval_routes import TEMPLATES_DIR as APPROVAL_TEMPLATES
from alertengine.passkeys.binding import person_of
from alertengine.passkeys.service import PasskeyError, Passkeys

TEMPLATES_DIR = Path(__file__).parent / "templates"
SCRIPT = Path(__file__).parent / "static" / "passkeys.js"
MAX_BODY = 32_768
# The passkey step is part of the approval page: the same no-store, no-frame, same-origin CSP.
HEADERS = SECURITY_HEADERS


class BadBody(Exception):
    pass


async def json_body(request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """A JSON object of at most ``limit`` bytes, or :class:`BadBody`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadBody("request body too large")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise BadBody("request body too large")
    try:
        body = strict_json.loads(raw)
    except strict_json.JSONInputError as exc:
        raise BadBody(f"body is not JSON we accept: {exc}") from None
    if not isinstance(body, dict):
        raise BadBody("body must be a JSON object")
    return body


def _error(problem: str, message: str, status: int) -> JSONResponse:
    return JSONResponse(
        {"ok": False, "problem": problem, "message": message}, status_code=status, headers=HEADERS
    )


def _json_text(text: str) -> Response:
    return Response(text, media_type="application/json", headers=HEADERS)


def passkey_routes(
    passkeys: Passkeys, authorizer: Authorizer, templates_dir: str | Path | None = None
) -> list[Route]:
    # The approval pages' base.html gives both the same look.
    templates = Jinja2Templates(directory=[templates_dir or TEMPLATES_DIR, APPROVAL_TEMPLATES])

    async def enroll_page(request: Request) -> Response:
        token = request.query_params.get("token", "")
        root = request.scope.get("root_path", "")
        try:
            doc = await passkeys.enrollment(token)
            context: dict[str, Any] = {
                "ok": True,
                "person": doc["person"],
                "tenant": doc["tenant"],
                "status": 200,
            }
        except PasskeyError as err:
            context = {"ok": False, "problem": err.problem, "message": err.message}
            context["status"] = err.status
        return templates.TemplateResponse(
            request,
            "enroll.html",
            {**context, "token": token, "root": root, "rp_id": passkeys.rp_id},
            status_code=int(context["status"]),
            headers=HEADERS,
        )

    async def enroll_options(request: Request) -> Response:
        try:
            body = await json_body(request)
            return _json_text(await passkeys.registration_options(str(body.get("token", ""))))
        except BadBody as exc:
            return _error("bad_request", str(exc), 400)
        except PasskeyError as err:
            return _error(err.problem, err.message, err.status)

    async def enroll_finish(request: Request) -> Response:
        try:
            body = await json_body(request)
            cred = await passkeys.finish_enrollment(
                str(body.get("token", "")), body.get("credential")
            )
        except BadBody as exc:
            return _error("bad_request", str(exc), 400)
        except PasskeyError as err:
            return _error(err.problem, err.message, err.status)
        return JSONResponse(
            {
                "ok": True,
                "status": 200,
                "message": f"Passkey enrolled for {cred.person_id}.",
                "person": cred.person_id,
                "credential_id": cred.credential_id,
            },
            headers=HEADERS,
        )

    async def approval_options(request: Request) -> Response:
        try:
            body = await json_body(request)
            token = body.get("token")
            claims = authorizer.signer.decode(token if isinstance(token, str) else "")
        except BadBody as exc:
            return _error("bad_request", str(exc), 400)
        except TokenError as err:  # the confirm that follows is refused and ledgered
            return _error(str(err.problem), err.message, err.status)
        version = authorizer.engine.policy_for(claims.tenant).version
        try:
            return _json_text(
                await passkeys.assertion_options(claims, person_of(claims.approver), version)
            )
        except PasskeyError as err:
            return _error(err.problem, err.message, err.status)

    async def script(request: Request) -> Response:
        return Response(
            SCRIPT.read_text(),
            media_type="text/javascript",
            headers={**HEADERS, "Cache-Control": "public, max-age=300"},
        )

    return [
        Route("/passkeys/enroll", enroll_page, methods=["GET"], name="passkey_enroll"),
        Route("/passkeys/enroll/options", enroll_options, methods=["POST"]),
        Route("/passkeys/enroll/finish", enroll_finish, methods=["POST"]),
        Route("/action/recover/passkey-options", approval_options, methods=["POST"]),
        Route("/passkeys/passkeys.js", script, methods=["GET"], name="passkeys_js"),
    ]
