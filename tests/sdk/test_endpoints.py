"""The side endpoints: history, ingestion, status, lifespan, in-process shared store."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.testclient import TestClient

from alertengine import instrument
from alertengine.sdk import MemoryStore, SDKConfig
from tests.sdk.helpers import FakeClock, client


def app_with(clock: FakeClock, **kwargs: Any) -> tuple[FastAPI, Any]:
    app = FastAPI()

    @app.get("/work")
    async def work(ms: float = 10.0, status: int = 200) -> dict[str, float]:
        clock.advance(ms / 1000.0)
        return {"ms": ms}

    return app, instrument(app, clock=clock, timer=clock, **kwargs)


async def test_history_is_per_minute_and_bounded() -> None:
    clock = FakeClock(1_700_000_040.0)  # 40 s into a minute
    app, _ = app_with(clock, config=SDKConfig(history_minutes=2))
    async with client(app) as c:
        for minute in range(4):
            for _ in range(3 + minute):
                await c.get(f"/work?ms={10 * (minute + 1)}")
            clock.advance(60)
        rows = (await c.get("/metrics/history")).json()["minutes"]
    assert [r["minute"] % 60 for r in rows] == [0, 0]
    assert [r["count"] for r in rows] == [5, 6]  # the last two closed minutes
    assert rows[-1]["p95_ms"] > rows[0]["p95_ms"]


async def test_status_redacts_the_redis_password_and_shows_the_breaker() -> None:
    clock = FakeClock()
    cfg = SDKConfig(service="s", redis_url="redis://user:hunter2@127.0.0.1:1/0")
    app, _ = app_with(clock, config=cfg)
    async with client(app) as c:
        status = (await c.get("/__alertengine/status")).json()
        head = await c.head("/__alertengine/status")
    assert head.status_code == 200
    assert "hunter2" not in str(status)
    assert status["config"]["redis_url"] == "redis://user:***@127.0.0.1:1/0"
    assert status["breaker"]["state"] == "closed"
    assert status["store"] == "memory" and status["shared"] is False


async def test_two_apps_share_an_in_process_store() -> None:
    clock = FakeClock()
    store = MemoryStore()
    app_a, a = app_with(clock, service="svc", store=store)
    app_b, b = app_with(clock, service="svc", store=store)
    try:
        async with client(app_a) as c:
            for _ in range(9):
                await c.get("/work?ms=10")
        async with client(app_b) as c:
            for _ in range(3):
                await c.get("/work?ms=900")
        assert await a.flush() and await b.flush()
        async with client(app_a) as c:
            doc = (await c.get("/health/alerts")).json()
        assert doc["metrics"]["sample_size"] == 12
        assert doc["window"]["replicas"] == 2
        assert doc["metrics"]["overall_p95_ms"] >= 890
        assert doc["metrics"]["p50_ms"] <= 11
    finally:
        await a.aclose()
        await b.aclose()


def test_lifespan_starts_and_stops_the_publisher() -> None:
    app, engine = app_with(FakeClock(), store=MemoryStore())
    with TestClient(app) as c:
        assert c.get("/__alertengine/status").json()["background_task"] is True
    assert engine.status()["background_task"] is False
