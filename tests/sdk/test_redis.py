"""Replicas sharing one view through a real redis-server, and surviving its outage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI

from alertengine import instrument
from alertengine.sdk import AlertEngine, SDKConfig
from tests.sdk.helpers import FakeClock, client
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis


def replica(clock: FakeClock, url: str, **cfg: Any) -> tuple[FastAPI, AlertEngine]:
    app = FastAPI()

    @app.get("/work")
    async def work(ms: float = 10.0) -> dict[str, float]:
        clock.advance(ms / 1000.0)
        return {"ms": ms}

    config = SDKConfig(service="checkout", store="redis", redis_url=url, **cfg)
    return app, instrument(app, config=config, clock=clock, timer=clock)


async def hit(app: FastAPI, clock: FakeClock, n: int, ms: float) -> None:
    async with client(app) as c:
        for _ in range(n):
            assert (await c.get(f"/work?ms={ms}")).status_code == 200


async def get(app: FastAPI, path: str) -> dict[str, Any]:
    async with client(app) as c:
        doc: dict[str, Any] = (await c.get(path)).json()
    return doc


async def test_two_replicas_report_merged_percentiles(redis_server: RedisServer) -> None:
    clock = FakeClock()
    app_a, a = replica(clock, redis_server.url)
    app_b, b = replica(clock, redis_server.url)
    try:
        await hit(app_a, clock, 90, 10.0)
        await hit(app_b, clock, 10, 1000.0)
        assert await a.flush() and await b.flush()
        for app in (app_a, app_b):
            doc = await get(app, "/health/alerts")
            assert doc["metrics"]["sample_size"] == 100
            assert doc["window"]["replicas"] == 2
            # 10 % of the traffic is slow: P95 is the slow replica's latency, P50 the fast one's.
            assert doc["metrics"]["overall_p95_ms"] == pytest.approx(1000, rel=0.01)
            assert doc["metrics"]["p50_ms"] == pytest.approx(10, rel=0.01)
            assert doc["routes"]["/work"]["count"] == 100
        # Reading again reuses the decoded seconds of the other replica: same answer.
        again = await get(app_b, "/health/alerts")
        assert again["metrics"] == doc["metrics"] and again["routes"] == doc["routes"]
        # Alone, replica A would have called itself perfectly healthy.
        assert doc["status"] in ("warning", "critical")
        assert "latency_spike" in {x["type"] for x in doc["alerts"]}
    finally:
        await a.aclose()
        await b.aclose()


async def test_outage_fails_closed_buffers_counts_overflow_and_recovers(
    own_redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    cfg = {"buffer_max_buckets": 3, "breaker_failures": 1, "breaker_reset_s": 0.2}
    app, engine = replica(clock, own_redis_server.url, **cfg)
    _, reader = replica(clock, own_redis_server.url, **cfg)
    try:
        await hit(app, clock, 5, 10.0)
        assert await engine.flush()
        assert (await get(app, "/health/alerts"))["status"] == "ok"

        own_redis_server.stop()
        # Six seconds of traffic during the outage: 2, 3, 4, 5, 6, 7 requests.
        for n in range(2, 8):
            clock.advance(1.0)
            await hit(app, clock, n, 10.0)  # the app keeps answering 200
            await engine.flush()
        doc = await get(app, "/health/alerts")
        assert doc["status"] == doc["health_score"]["status"] == "unknown"
        assert doc["health_score"]["score"] is None
        assert doc["alerts"][0]["type"] == "store_unavailable"
        ing = await get(app, "/metrics/ingestion")
        assert ing["store_errors"] >= 1
        assert ing["recorded"] == 5 + sum(range(2, 8))
        # Seconds 1..6 of the outage hold 2..7 requests; only 3 seconds fit in the buffer, so
        # seconds 1..3 (2 + 3 + 4 requests) overflowed, and are counted. Second 0 had been
        # published while open and did not change: it needs no buffer space.
        assert ing["buffered_buckets"] == 3
        assert ing["buffered"] == 5 + 6 + 7
        assert ing["dropped"] == 2 + 3 + 4
        status = await get(app, "/__alertengine/status")
        assert status["breaker"]["state"] == "open"

        own_redis_server.start()
        await asyncio.sleep(0.25)  # the breaker's reset time, real
        assert await engine.flush()
        ing = await get(app, "/metrics/ingestion")
        assert ing["buffered"] == 0 and ing["buffered_buckets"] == 0
        assert (await get(app, "/__alertengine/status"))["breaker"]["state"] == "closed"

        # Another replica now sees exactly what the buffer flushed (the restarted server has no
        # persistence, so second 0, published before the outage, is gone with it).
        await asyncio.sleep(0.25)
        seen = await get(_app_of(reader), "/health/alerts")
        assert seen["status"] != "unknown"
        assert seen["metrics"]["sample_size"] == 5 + 6 + 7
        assert seen["window"]["replicas"] == 2
        # ...and says what it is missing: the 2 + 3 + 4 requests of outage seconds 1..3 that
        # overflowed the buffer, where they were lost, and that its answer is incomplete.
        t0 = int(FakeClock().t)
        assert seen["window"]["gap"] == {
            "complete": False,
            "requests_missing": 2 + 3 + 4,
            "seconds_affected": 3,
            "spans": [[t0 + 1, t0 + 3]],
        }
        assert "9 requests missing" in seen["summary"]
    finally:
        await engine.aclose()
        await reader.aclose()


def _app_of(engine: AlertEngine) -> Any:
    return engine.wrap(FastAPI())
