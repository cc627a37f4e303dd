"""The SDK's own HTTP endpoints, as bare ASGI handlers (no framework, never measured)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from alertengine.sdk.middleware import Receive, Scope, Send

if TYPE_CHECKING:
    from alertengine.sdk.handle import AlertEngine

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

HEALTH_PATH = "/health/alerts"
HISTORY_PATH = "/metrics/history"
INGESTION_PATH = "/metrics/ingestion"
STATUS_PATH = "/__alertengine/status"
PROMETHEUS_PATH = "/metrics"
SIMULATE_SPIKE_PATH = "/simulate/spike"
SIMULATE_ERRORS_PATH = "/simulate/errors"


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = b"application/json"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, doc: Any) -> None:
    await _respond(send, status, json.dumps(doc, separators=(",", ":")).encode())


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    parsed = parse_qs(raw.decode("latin-1") if isinstance(raw, bytes) else str(raw))
    return {k: v[-1] for k, v in parsed.items()}


def _int(q: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    try:
        return max(lo, min(hi, int(q.get(name, default))))
    except ValueError:
        return default


def _float(q: dict[str, str], name: str, default: float, lo: float, hi: float) -> float:
    try:
        return max(lo, min(hi, float(q.get(name, default))))
    except ValueError:
        return default


def _get(fn: Callable[[Scope], Awaitable[tuple[int, Any]]]) -> Handler:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method", "GET") not in ("GET", "HEAD"):
            await _json(send, 405, {"detail": "method not allowed"})
            return
        status, doc = await fn(scope)
        await _json(send, status, doc)

    return handler


def build_endpoints(engine: AlertEngine) -> dict[str, Handler]:
    async def health(scope: Scope) -> tuple[int, Any]:
        # 200 even when unknown: the body says so, and pollers read bodies.
        return 200, await engine.health()

    async def history(scope: Scope) -> tuple[int, Any]:
        return 200, engine.history()

    async def ingestion(scope: Scope) -> tuple[int, Any]:
        return 200, engine.ingestion()

    async def status(scope: Scope) -> tuple[int, Any]:
        return 200, engine.status()

    handlers: dict[str, Handler] = {
        HEALTH_PATH: _get(health),
        HISTORY_PATH: _get(history),
        INGESTION_PATH: _get(ingestion),
        STATUS_PATH: _get(status),
    }

    if engine.config.prometheus:

        async def prometheus(scope: Scope, receive: Receive, send: Send) -> None:
            accept = ",".join(
                v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"accept"
            )
            body, content_type = await engine.prometheus_exposition(accept)
            await _respond(send, 200, body, content_type.encode("latin-1"))

        handlers[PROMETHEUS_PATH] = prometheus

    if engine.config.enable_simulation:

        def _simulate(kind: str) -> Handler:
            async def handler(scope: Scope, receive: Receive, send: Send) -> None:
                if scope.get("method") != "POST":
                    await _json(send, 405, {"detail": "use POST"})
                    return
                q = _query(scope)
                count = _int(q, "count", 200, 1, 10_000)
                if kind == "spike":
                    ms = _float(q, "ms", 2500.0, 0.0, 600_000.0)
                    engine.simulate(count=count, latency_ms=ms, status=200)
                else:
                    ms = _float(q, "ms", 50.0, 0.0, 600_000.0)
                    engine.simulate(
                        count=count, latency_ms=ms, status=_int(q, "status", 500, 400, 599)
                    )
                await _json(send, 200, {"simulated": kind, "count": count, "latency_ms": ms})

            return handler

        handlers[SIMULATE_SPIKE_PATH] = _simulate("spike")
        handlers[SIMULATE_ERRORS_PATH] = _simulate("errors")
    return handlers
