"""An event loop in a background thread that can serve ASGI apps and run coroutines.

Unlike :mod:`tests.support.servers`, the loop is exposed: tests build loop-bound objects
(SQLite/Redis-backed stores, engines, HTTP clients) *in the server's loop* with
:meth:`LoopThread.call`, then talk to the served app over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvicorn

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[tuple[uvicorn.Server, Any, socket.socket]] = []

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` in the server loop and wait for it (from sync code)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the server loop and await it (from another loop)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def serve(self, app: Any, timeout_s: float = 10.0) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, backlog=2048
        )
        server = uvicorn.Server(config)
        fut = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), self.loop)
        self._servers.append((server, fut, sock))
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if fut.done() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.005)
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        for server, fut, sock in self._servers:
            server.should_exit = True
            try:
                fut.result(10)
            except Exception:
                pass
            sock.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
