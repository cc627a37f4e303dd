"""Run an ASGI app (a fake external service) under uvicorn on a free loopback port.

The server lives in a background thread with its own event loop, so tests (sync or async)
talk to it over real HTTP exactly as production code talks to the real service.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


class ServerThread:
    """A uvicorn server on 127.0.0.1:<free port>; ``base_url`` once started."""

    def __init__(self, app: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        # A short graceful-shutdown bound: fakes that deliberately hang (timeout tests) must
        # not hold the test run hostage.
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
            interface="asgi3",  # bound-method apps would otherwise be guessed as ASGI2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` for the duration of the block; yields its base URL."""
    server = ServerThread(app)
    server.start()
    try:
        yield server.base_url
    finally:
        server.stop()
