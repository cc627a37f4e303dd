"""Shared helpers for SDK tests: a hand-driven clock and small apps."""

from __future__ import annotations

from typing import Any

import httpx


class FakeClock:
    """Wall clock and latency timer in one: tests move it, nobody sleeps."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
    )
