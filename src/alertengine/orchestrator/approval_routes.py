"""The approval pages: ``GET /action/recover`` (preview) and ``POST /action/recover/confirm``.

GET never changes anything: link-preview crawlers and chat unfurlers may fetch a link any
number of times. Only the POST (a form button, or JSON) redeems the token. Pages are
mobile-first HTML with inline CSS and no JavaScript; ``Accept: application/json`` gets JSON.
Responses carry ``Cache-Control: no-store`` and ``Referrer-Policy: no-referrer`` because the
token travels in the URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from alertengine import strict_json
from alertengine.authorize.service import Authorizer, ConfirmResult, Preview
from alertengine.ledger import LedgerError
from alertengine.orchestrator.http import RETRY_AFTER_S
from alertengine.orchestrator.key_refusals import WRONG_KEY, ledger_key_refusal
from alertengine.stores import StoreUnavailable
from alertengine.tenants import presented_key

log = logging.getLogger("alertengine.http")

#: Why approvals cannot be taken right now (the orchestrator's mode), or None when they can.
Unavailable = Callable[[], "str | None"]

TEMPLATES_DIR = Path(__file__).parent / "templates"
MAX_CONFIRM_BODY = 16_384

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; "
        "form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

_HEALTH_LABELS = (
    ("score", "Health score", "{:.0f}"),
    ("status", "Status", "{}"),
    ("error_rate", "Error rate (5xx)", "{:.1%}"),
    ("p95_ms", "P95 latency", "{:.0f} ms"),
    ("sample_size", "Requests in window", "{}"),
    ("source", "Source", "{}"),
    ("detail", "Detail", "{}"),
)


#: The page's heading says where the incident is *now*: a link opened again after the fix ran
#: must not still read "awaiting approval".
STAGE_HEADINGS = {
    "DETECTED": "incident open, nobody asked yet",
    "PROPOSED": "recovery proposed, being checked before anyone is asked",
    "VALIDATED": "recovery awaiting approval",
    "AUTHORIZED": "recovery approved, running now",
    "EXECUTED": "recovery ran, watching health",
    "RESOLVED": "incident resolved after the recovery",
    "RECOVERED": "incident recovered by itself; nothing was run",
    "EXPIRED": "approval window expired; nothing was run",
    "WEBHOOK_FAILED": "recovery webhook failed; waiting in the dead-letter queue",
}


def stage_heading(stage: str) -> str:
    return STAGE_HEADINGS.get(stage, f"incident {stage.lower() or 'status unknown'}")


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _health_rows(detection: Any) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if not isinstance(detection, dict):
        return rows
    for key, label, fmt in _HEALTH_LABELS:
        value = detection.get(key)
        if value is None or value == "":
            continue
        try:
            rows.append((label, fmt.format(value)))
        except (ValueError, TypeError):
            rows.append((label, str(value)))
    return rows


def _diagnosis_rows(diagnosis: Any) -> list[tuple[str, str]]:
    if not isinstance(diagnosis, dict):
        return []
    rows = []
    for k, v in diagnosis.items():
        if k == "summary" or isinstance(v, (dict, list)) or v is None:
            continue
        rows.append((str(k).replace("_", " "), str(v)[:300]))
    return rows[:10]


def _utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


async def _confirm_body(request: Request) -> tuple[str | None, Any]:
    """The token and, from a passkey page's JSON, the WebAuthn assertion (else None)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_CONFIRM_BODY:
        return None, None
    ctype = request.headers.get("content-type", "")
    if "json" in ctype:
        raw = await request.body()
        if len(raw) > MAX_CONFIRM_BODY:
            return None, None
        try:
            body = strict_json.loads(raw)
        except strict_json.JSONInputError:
            return None, None
        token = body.get("token") if isinstance(body, dict) else None
        assertion = body.get("assertion") if isinstance(body, dict) else None
        return (token if isinstance(token, str) else None), assertion
    if "form" in ctype:
        form = await request.form(max_files=0, max_fields=4)
        token = form.get("token")
        return (token if isinstance(token, str) else None), None
    return None, None


def approval_routes(
    authorizer: Authorizer,
    templates_dir: str | Path | None = None,
    *,
    unavailable: Unavailable | None = None,
) -> list[Route]:
    """``unavailable()`` names why approvals are paused (e.g. the orchestrator is in EMERGENCY:
    nothing may advance because nothing could be ledgered); the pages then answer 503."""
    templates = Jinja2Templates(directory=str(templates_dir or TEMPLATES_DIR))

    def page(
        request: Request,
        name: str,
        status: int,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        return templates.TemplateResponse(
            request,
            name,
            context,
            status_code=status,
            headers={**SECURITY_HEADERS, **(headers or {})},
        )

    def paused(request: Request, why: str, *, before_start: bool = True) -> Response:
        """503 + Retry-After: the person learns nothing happened and to try again.

        ``before_start``: refused before anything was touched, so the link is surely unspent.
        """
        log.warning("%s %s answered 503: %s", request.method, request.url.path, why)
        message = (
            "AlertEngine cannot record approvals right now: its audit ledger or state "
            "store is unavailable, and nothing may happen without being recorded."
        )
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        if _wants_json(request) or "json" in request.headers.get("content-type", ""):
            body = {
                "ok": False,
                "status": 503,
                "problem": "unavailable",
                "message": f"{message} Nothing was changed; try again later.",
                "retry_after_s": RETRY_AFTER_S,
            }
            return JSONResponse(body, status_code=503, headers={**SECURITY_HEADERS, **headers})
        return page(
            request,
            "unavailable.html",
            503,
            headers,
            message=message,
            retry_after_s=RETRY_AFTER_S,
            before_start=before_start,
        )

    async def preview(request: Request) -> Response:
        token = request.query_params.get("token", "")
        try:
            p: Preview = await authorizer.preview(token)
        except (StoreUnavailable, LedgerError) as exc:
            return paused(request, str(exc))
        if _wants_json(request):
            return JSONResponse(p.to_dict(), status_code=p.status, headers=SECURITY_HEADERS)
        return page(
            request,
            "approve.html",
            p.status,
            p=p,
            token=token,
            confirm_url=request.scope.get("root_path", "") + "/action/recover/confirm",
            expires=_utc(p.expires_at),
            heading=stage_heading(p.stage),
            health=_health_rows(dict(p.detection)),
            diagnosis_rows=_diagnosis_rows(dict(p.diagnosis) if p.diagnosis else None),
        )

    async def confirm(request: Request) -> Response:
        why = unavailable() if unavailable is not None else None
        if why:  # refuse before touching anything: nothing can be ledgered now
            return paused(request, why)
        token, assertion = await _confirm_body(request)
        key = presented_key(request)
        try:
            # With an API key, the link must belong to that key's tenant. A key that is no
            # tenant's is refused (and ledgered), never ignored: the caller meant to prove
            # something and did not, and the link stays unspent.
            expected_tenant = await authorizer.tenants.authenticate(key) if key else None
            if key and expected_tenant is None:
                await ledger_key_refusal(authorizer.refusals, request, WRONG_KEY)
                refused = ConfirmResult(
                    ok=False,
                    status=401,
                    message="The API key sent with this approval was not accepted; nothing "
                    "was changed and the link still works. Send it with your tenant's key, "
                    "or without one.",
                )
                if _wants_json(request) or "json" in request.headers.get("content-type", ""):
                    return JSONResponse(
                        refused.to_dict(),
                        status_code=401,
                        headers={**SECURITY_HEADERS, "WWW-Authenticate": "Bearer"},
                    )
                return page(request, "result.html", 401, r=refused)
            # A missing token is refused (and ledgered) like any other invalid one.
            result: ConfirmResult = await authorizer.confirm(
                token or "", via="web", expected_tenant=expected_tenant, assertion=assertion
            )
        except (StoreUnavailable, LedgerError) as exc:  # went down before the mode noticed
            return paused(request, str(exc), before_start=False)
        if _wants_json(request) or "json" in request.headers.get("content-type", ""):
            return JSONResponse(
                result.to_dict(), status_code=result.status, headers=SECURITY_HEADERS
            )
        return page(request, "result.html", result.status, r=result)

    return [
        Route("/action/recover", preview, methods=["GET"], name="approval_preview"),
        Route("/action/recover/confirm", confirm, methods=["POST"], name="approval_confirm"),
    ]
