"""HTTP helpers for the orchestrator's endpoints: errors with reasons, bounded bodies."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from alertengine import strict_json

log = logging.getLogger("alertengine.http")

KIB = 1024
MIB = 1024 * KIB

#: The largest request body each route takes (``BodyLimit`` answers 413 past it; see
#: docs/orchestrator.md). Sized to the biggest legitimate sender, with room to spare.
BODY_LIMITS: dict[str, int] = {
    "/intake/health": 1 * MIB,  # one /health/alerts answer: a few KiB
    "/intake/alertmanager": 4 * MIB,  # a whole Alertmanager group, annotations included
    "/telegram/webhook": 256 * KIB,  # one Telegram Update (a message is at most 4096 chars)
    "/twilio/whatsapp": 64 * KIB,  # one Twilio message webhook (form parameters)
    "/slack/interactions": 256 * KIB,  # one press; the payload repeats the whole message
    "/action/ack": 16 * KIB,  # a token in a form or JSON
    "/commits/webhook": 25 * MIB,  # GitHub caps webhook payloads at 25 MB
    "/action/recover/confirm": 16 * KIB,  # a token in a form or JSON
    "/dashboard/signin": 16 * KIB,  # an API key (and a tenant) in a form
}
#: Every other route (GETs, sign-out) needs no body at all.
DEFAULT_BODY_LIMIT = 64 * KIB

#: Seconds a client should wait before retrying while the ledger or state store is down.
RETRY_AFTER_S = 30


def error(status: int, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": reason, "status": status, **extra}, status_code=status)


async def json_body(request: Request, *, max_bytes: int | None = None) -> Any:
    """The request's JSON body, or an HTTPException with a reason (400/413/415).

    Parsed strictly (:mod:`alertengine.strict_json`): bounded nesting, no lone surrogates,
    no NaN, so nothing malformed can reach a handler and turn into a 500 there.
    """
    if max_bytes is None:
        max_bytes = BODY_LIMITS.get(request.url.path, DEFAULT_BODY_LIMIT)
    ctype = request.headers.get("content-type", "")
    if "json" not in ctype:
        raise HTTPException(
            415, f"expected a JSON body (Content-Type application/json), got {ctype!r}"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"body larger than {max_bytes} bytes")
    raw = await request.body()
    if len(raw) > max_bytes:
        raise HTTPException(413, f"body larger than {max_bytes} bytes")
    try:
        return strict_json.loads(raw)
    except strict_json.JSONInputError as exc:
        raise HTTPException(400, str(exc)) from None


def int_param(request: Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"query parameter {name!r} must be an integer") from None
    if not lo <= value <= hi:
        raise HTTPException(400, f"query parameter {name!r} must be between {lo} and {hi}")
    return value


def float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise HTTPException(400, f"query parameter {name!r} must be a number") from None


def bool_param(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise HTTPException(400, f"query parameter {name!r} must be true or false")


def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": exc.detail, "status": exc.status_code},
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )


def unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """The ledger or state store is down: 503 and when to retry, never a bare 500."""
    log.warning("%s %s answered 503: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {
            "error": "the orchestrator's ledger or state store is unavailable; "
            "nothing was changed, try again later",
            "status": 503,
            "retry_after_s": RETRY_AFTER_S,
        },
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
