"""The pure ASGI middleware: time every HTTP request, record it, never interfere.

Per request: two timer reads, one wrapped ``send``, one :meth:`RollingWindow.record`. The route
key is the template Starlette/FastAPI routing left in ``scope["route"]`` (``/items/{id}``, never
the raw path); unrouted requests share ``"<unmatched>"``. The SDK's own endpoints are answered
here, before the app, so they are never measured. An exception counts as a 5xx and is re-raised
untouched (unless it came from sending to a client that went away: 499); a streaming response
is measured until its final body chunk.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from alertengine.sdk.window import UNMATCHED

if TYPE_CHECKING:
    from alertengine.sdk.handle import AlertEngine

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Recorded when sending the response failed because the client went away (nginx's code).
CLIENT_CLOSED = 499


def route_template(scope: Scope, root_path: str) -> str:
    """``/items/{id}`` for a routed request (mount prefixes included), else ``<unmatched>``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    # Inside a Mount, the router advanced root_path by the mount's (concrete) prefix.
    inner_root = scope.get("root_path", "")
    if isinstance(inner_root, str) and len(inner_root) > len(root_path):
        return inner_root[len(root_path) :] + path
    return path


class AlertEngineMiddleware:
    def __init__(self, app: ASGIApp, engine: AlertEngine) -> None:
        self.app = app
        self.engine = engine
        self._own = engine.endpoints()
        self._timer = engine.timer
        self._clock = engine.clock
        self._window = engine.window

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        own = self._own.get(scope["path"])
        if own is not None:
            await own(scope, receive, send)
            return
        engine = self.engine
        if not engine.started:
            engine.start_background()
        timer = self._timer
        start = timer()
        root_path = scope.get("root_path", "")
        # [status, recorded, client_gone]: a list, so the closure mutates it cheaply.
        state: list[Any] = [0, False, False]

        async def send_wrapper(message: Message) -> None:
            mtype = message["type"]
            if mtype == "http.response.start":
                state[0] = message["status"]
            elif mtype == "http.response.body" and not message.get("more_body", False):
                try:
                    await send(message)
                except BaseException:
                    state[2] = True
                    raise
                if not state[1]:
                    state[1] = True
                    self._record(scope, root_path, state[0], timer() - start)
                return
            try:
                await send(message)
            except BaseException:
                state[2] = True
                raise

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            if not state[1]:
                state[1] = True
                # The server failing to deliver (client gone) is not a server error: 499.
                self._record(scope, root_path, CLIENT_CLOSED if state[2] else 500, timer() - start)
            raise
        if not state[1]:
            # The app returned without finishing a response (client gone, or a bug).
            self._record(scope, root_path, state[0] or 500, timer() - start)

    def _record(self, scope: Scope, root_path: str, status: int, seconds: float) -> None:
        try:
            self._window.record(
                route_template(scope, root_path), seconds * 1000.0, status, self._clock()
            )
        except Exception as exc:  # never raise into the host app
            self.engine.note_internal_error(exc)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        engine = self.engine

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                engine.start_background()
            elif message["type"] == "lifespan.shutdown.complete":
                await engine.aclose()
            await send(message)

        await self.app(scope, receive, send_wrapper)
