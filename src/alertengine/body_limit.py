"""Pure-ASGI middleware: every request body is bounded, read whole, then handed on.

Why read the body here, before any route runs:

* **Size.** A declared ``Content-Length`` over the route's limit is answered ``413`` before a
  byte is read; a chunked body is counted as it arrives and cut off at the limit. No handler
  can forget the check, and no body larger than its route's limit is ever held in memory.
* **Disconnects.** A client that goes away mid-request (the end of every load test) is routine.
  Read here, the disconnect ends the request with one log line; a handler reading the body
  itself would raise ``ClientDisconnect`` and the server would log a crash traceback.

Limits are per path (exact match), with a default for every other route.

A refused body is read on and dropped (never kept) up to ``DRAIN_BYTES`` before the 413 goes
out: an HTTP/1.1 client that writes its whole body before reading (most do) would otherwise
see the connection reset instead of the 413 and its reason. A client that asked
``Expect: 100-continue`` is answered at once and never sends the body at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("alertengine.http")

#: How much of a refused body is read and dropped so the client can read its 413.
DRAIN_BYTES = 64 * 1024 * 1024


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limits: Mapping[str, int], default: int) -> None:
        self.app = app
        self.limits = dict(limits)
        self.default = default

    def limit_for(self, path: str) -> int:
        return self.limits.get(path, self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            if declared <= DRAIN_BYTES and not _expects_continue(scope):
                await _drop_body(receive, DRAIN_BYTES)
            await _too_large(send, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                _log_disconnect(scope, "before its request body arrived")
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):
                    await _drop_body(receive, DRAIN_BYTES - size)
                await _too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: the server's own disconnect signal

        try:
            await self.app(scope, replay, send)
        except ClientDisconnect:  # pragma: no cover - the body was read above; belt and braces
            _log_disconnect(scope, "while its request was handled")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in scope.get("headers", ())
    )


async def _drop_body(receive: Receive, budget: int) -> None:
    """Read the rest of a refused body, keeping none of it, up to ``budget`` bytes."""
    while budget > 0:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _log_disconnect(scope: Scope, when: str) -> None:
    client = scope.get("client") or ("?", 0)
    log.info(
        "client %s went away %s (%s %s); nothing was done",
        client[0],
        when,
        scope.get("method", "?"),
        scope.get("path", "?"),
    )


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {"error": f"request body larger than {limit} bytes", "status": 413, "limit": limit}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
