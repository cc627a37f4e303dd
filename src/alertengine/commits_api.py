"""``POST /commits/webhook?tenant=T&service=S``: GitHub push intake.

Order matters: the signature is checked over the raw body before anything is parsed or
stored, so an unsigned or forged request can never change the commit log. Such a request
is answered 401 and handed to ``on_refused(path, why)`` (the orchestrator ledgers it in
``_system`` through the refusal budget); ``why`` is one of two constants, never the tenant
or service the request claims.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine import strict_json
from alertengine.commits import CommitLog, PushPayloadError, parse_push, verify_github_signature

#: (tenant_id, service) -> that service's webhook secret, or None when unknown.
SecretLookup = Callable[[str, str], Awaitable[bytes | None]]

#: A refusal callback: (request path, why).
OnRefused = Callable[[str, str], Awaitable[None]]
#: The reasons handed to ``on_refused`` (bounded: the refusal budget keys on them).
NO_SIGNATURE = "missing X-Hub-Signature-256"
BAD_SIGNATURE = "invalid X-Hub-Signature-256 or unknown tenant/service"

#: GitHub caps webhook payloads at 25 MB.
MAX_BODY_BYTES = 25 * 1024 * 1024


def _decode_payload(request: Request, body: bytes) -> object:
    # GitHub sends either application/json or a form field named "payload".
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
        values = form.get("payload")
        if not values:
            raise ValueError("form body has no payload field")
        return strict_json.loads(values[0])
    return strict_json.loads(body)


def commits_routes(
    log: CommitLog,
    secret_for: SecretLookup,
    path: str = "/commits/webhook",
    *,
    on_refused: OnRefused | None = None,
) -> list[Route]:
    """Routes for the GitHub push webhook; mount them in the orchestrator's app."""

    async def webhook(request: Request) -> JSONResponse:
        tenant = request.query_params.get("tenant", "")
        service = request.query_params.get("service", "")
        if not tenant or not service:
            return JSONResponse(
                {"error": "tenant and service query parameters are required"}, status_code=400
            )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "payload too large"}, status_code=413)
        secret = await secret_for(tenant, service)
        signature = request.headers.get("x-hub-signature-256")
        # Unknown tenant and bad signature answer alike: nothing to learn by probing.
        if secret is None or not verify_github_signature(secret, body, signature):
            if on_refused is not None:
                await on_refused(path, BAD_SIGNATURE if signature else NO_SIGNATURE)
            return JSONResponse({"error": "invalid or missing signature"}, status_code=401)
        event = request.headers.get("x-github-event", "")
        if event != "push":
            return JSONResponse({"ignored": event or "unknown event"}, status_code=202)
        try:
            commits = parse_push(_decode_payload(request, body))
        except (ValueError, UnicodeDecodeError) as exc:
            # PushPayloadError and json.JSONDecodeError are both ValueErrors.
            reason = str(exc) if isinstance(exc, PushPayloadError) else "malformed JSON body"
            return JSONResponse({"error": reason}, status_code=400)
        stored = await log.add(tenant, service, commits)
        return JSONResponse({"stored": stored}, status_code=200)

    return [Route(path, webhook, methods=["POST"])]
