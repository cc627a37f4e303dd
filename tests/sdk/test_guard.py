"""The middleware's promise: whatever goes wrong while recording, the host app's response is
untouched, and the failure is counted and logged (never raised into the app)."""

from __future__ import annotations

import logging
import math

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from alertengine import instrument
from tests.sdk.helpers import client


class BrokenClock:
    """A wall clock that has gone bad (NaN): ``int(nan)`` raises inside ``record``."""

    def __init__(self) -> None:
        self.broken = False

    def __call__(self) -> float:
        return math.nan if self.broken else 1_700_000_000.0


def _app(clock: BrokenClock) -> tuple[FastAPI, object]:
    app = FastAPI()

    @app.get("/orders/{oid}")
    async def order(oid: int) -> JSONResponse:
        return JSONResponse({"order": oid}, status_code=201, headers={"x-app": "mine"})

    @app.get("/fail")
    async def fail() -> None:
        raise ValueError("the app's own error")

    engine = instrument(app, service="guarded", clock=clock)
    return app, engine


async def test_a_recording_failure_never_reaches_the_host_app(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = BrokenClock()
    app, engine = _app(clock)
    clock.broken = True
    with caplog.at_level(logging.WARNING, logger="alertengine.sdk"):
        async with client(app) as c:
            r = await c.get("/orders/7")
            r2 = await c.get("/orders/8")
    # The app's answer, byte for byte: status, body and its own header.
    assert r.status_code == 201
    assert r.json() == {"order": 7}
    assert r.headers["x-app"] == "mine"
    assert r2.status_code == 201
    # Counted, with the cause, where an operator looks.
    clock.broken = False
    async with client(app) as c:
        ingestion = (await c.get("/metrics/ingestion")).json()
    assert ingestion["internal_errors"] == 2
    assert "ValueError" in ingestion["last_error"]
    # Logged once (not once per request), naming the cause.
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert len(logged) == 1
    assert "ValueError" in logged[0].getMessage()
    assert engine is not None


async def test_the_apps_own_exception_stays_its_own_when_recording_fails() -> None:
    clock = BrokenClock()
    app, _ = _app(clock)
    clock.broken = True
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with pytest.raises(ValueError, match="the app's own error"):
            await c.get("/fail")
