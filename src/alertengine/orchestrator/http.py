"""HTTP helpers for the orchestrator's endpoints: errors with reasons, bounded bodies."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_BODY_BYTES = 1_000_000


def error(status: int, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": reason, "status": status, **extra}, status_code=status)


async def json_body(request: Request, *, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The request's JSON body, or an HTTPException with a reason (400/413/415)."""
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
        return json.loads(raw)
    except ValueError as exc:
        raise HTTPException(400, f"body is not valid JSON: {exc}") from None


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
