"""The SDK inside real FastAPI/Starlette apps, driven in-process over httpx.ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from alertengine import instrument
from alertengine.sdk import AlertEngine, SDKConfig
from tests.sdk.helpers import FakeClock, client


def make_app(clock: FakeClock, **kwargs: Any) -> tuple[FastAPI, AlertEngine]:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/work")
    async def work(ms: float = 10.0, status: int = 200) -> dict[str, float]:
        clock.advance(ms / 1000.0)  # the request "takes" ms milliseconds
        if status >= 400:
            raise HTTPException(status_code=status)
        return {"ms": ms}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                clock.advance(0.2)
                yield b"chunk"

        return StreamingResponse(chunks())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    engine = instrument(app, service="checkout", clock=clock, timer=clock, **kwargs)
    return app, engine


async def health(app: Any) -> dict[str, Any]:
    async with client(app) as c:
        r = await c.get("/health/alerts")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


async def test_routes_are_templates_and_unmatched_share_one_key() -> None:
    clock = FakeClock()
    app, _ = make_app(clock)
    async with client(app) as c:
        for i in range(7):
            assert (await c.get(f"/items/{i}")).status_code == 200
        assert (await c.get("/no/such/path")).status_code == 404
        assert (await c.get("/another/missing")).status_code == 404
    doc = await health(app)
    assert set(doc["routes"]) == {"/items/{item_id}", "<unmatched>"}
    assert doc["routes"]["/items/{item_id}"]["count"] == 7
    assert doc["routes"]["<unmatched>"]["count"] == 2
    assert doc["routes"]["<unmatched>"]["status_4xx_count"] == 2
    assert doc["metrics"]["sample_size"] == 9


async def test_the_original_keys_and_ours_are_all_there() -> None:
    clock = FakeClock()
    app, _ = make_app(clock)
    async with client(app) as c:
        await c.get("/work?ms=5")
    doc = await health(app)
    assert {"status", "health_score", "metrics", "alerts", "service", "routes", "window"} <= set(
        doc
    )
    assert doc["generated_at"] == pytest.approx(clock.t)
    assert {"score", "status", "trend"} <= set(doc["health_score"])
    assert {
        "overall_p95_ms",
        "error_rate",
        "anomaly_score",
        "sample_size",
        "p50_ms",
        "p99_ms",
        "request_rate",
        "error_rate_5xx",
        "error_rate_4xx",
        "status_5xx_count",
    } <= set(doc["metrics"])
    assert doc["service"] == "checkout"
    assert doc["window"]["seconds"] == 60


async def test_one_status_at_the_top_and_in_the_score() -> None:
    clock = FakeClock()
    app, _ = make_app(clock)
    async with client(app) as c:
        for _ in range(20):
            await c.get("/work?ms=3000")
    doc = await health(app)
    # One status, in our words at the top and in health_score.level, in 1.7.0's inside.
    assert doc["status"] == doc["health_score"]["level"] == "critical"
    assert doc["health_score"]["status"] == "critical"
    assert doc["metrics"]["overall_p95_ms"] == pytest.approx(3000, rel=0.01)
    alert = doc["alerts"][0]
    assert set(alert) == {
        "type",
        "kind",
        "message",
        "severity",
        "reason_for_trigger",
        "trend_direction",
        "triggered_by",
    }
    assert alert["type"] == "latency_spike" and alert["severity"] == "critical"


async def test_5xx_and_4xx_are_separate() -> None:
    clock = FakeClock()
    app, _ = make_app(clock)
    async with client(app) as c:
        for _ in range(8):
            await c.get("/work?ms=5")
        await c.get("/work?ms=5&status=503")
        await c.get("/work?ms=5&status=404")
    m = (await health(app))["metrics"]
    assert m["status_5xx_count"] == 1 and m["status_4xx_count"] == 1
    assert m["error_rate"] == m["error_rate_5xx"] == pytest.approx(0.1)
    assert m["error_rate_4xx"] == pytest.approx(0.1)


async def test_an_exception_counts_as_5xx() -> None:
    clock = FakeClock()
    app, _ = make_app(clock)
    async with client(app) as c:
        r = await c.get("/boom")
    assert r.status_code == 500
    doc = await health(app)
    assert doc["routes"]["/boom"]["status_5xx_count"] == 1


async def test_exception_is_reraised_untouched_by_the_raw_middleware() -> None:
    clock = FakeClock()
    engine = AlertEngine(SDKConfig(service="raw"), clock=clock, timer=clock)
    err = ValueError("the app's own error")

    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        clock.advance(0.05)
        raise err

    wrapped = engine.wrap(raw_app)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        return None

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}
    with pytest.raises(ValueError) as caught:
        await wrapped(scope, receive, send)
    assert caught.value is err
    doc = await engine.health()
    assert doc["metrics"]["status_5xx_count"] == 1
    assert doc["metrics"]["overall_p95_ms"] == pytest.approx(50, rel=0.01)


async def test_a_client_that_went_away_is_499_not_a_server_error() -> None:
    clock = FakeClock()
    engine = AlertEngine(SDKConfig(service="raw"), clock=clock, timer=clock)

    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await send({"type": "http.response.body", "body": b"rest"})

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)
        if len(sent) == 2:
            raise OSError("connection reset by peer")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "query_string": b""}
    with pytest.raises(OSError):
        await engine.wrap(raw_app)(scope, receive, send)
    m = (await engine.health())["metrics"]
    assert (m["sample_size"], m["status_4xx_count"], m["status_5xx_count"]) == (1, 1, 0)


async def test_streaming_is_measured_until_the_final_chunk() -> None:
    clock = FakeClock()
    app, _ = make_app(clock)
    async with client(app) as c:
        r = await c.get("/stream")
    assert r.text == "chunk" * 3
    doc = await health(app)
    assert doc["routes"]["/stream"]["p95_ms"] == pytest.approx(600, rel=0.01)


async def test_own_endpoints_are_never_counted() -> None:
    clock = FakeClock()
    app, engine = make_app(clock, prometheus=True)
    async with client(app) as c:
        await c.get("/work?ms=5")
        for path in (
            "/health/alerts",
            "/metrics/history",
            "/metrics/ingestion",
            "/__alertengine/status",
            "/metrics",
        ):
            assert (await c.get(path)).status_code == 200
        ingestion = (await c.get("/metrics/ingestion")).json()
        assert (await c.post("/health/alerts")).status_code == 405
    assert ingestion["recorded"] == 1
    doc = await health(app)
    assert doc["metrics"]["sample_size"] == 1
    assert engine.window.recorded == 1


async def test_prometheus_is_off_unless_asked() -> None:
    clock = FakeClock()
    app, _ = make_app(clock)
    async with client(app) as c:
        assert (await c.get("/metrics")).status_code == 404
    app2, _ = make_app(clock, prometheus=True)
    async with client(app2) as c:
        await c.get("/items/1")
        text = (await c.get("/metrics")).text
    assert (
        'alertengine_route_latency_seconds_count{route="/items/{item_id}",service="checkout"} 1.0'
        in text
    )
    assert "# TYPE alertengine_health_score gauge" in text


async def test_simulation_endpoints_are_off_by_default() -> None:
    clock = FakeClock()
    app, engine = make_app(clock)
    async with client(app) as c:
        r = await c.post("/simulate/spike")
    assert r.status_code == 404  # the app's own 404: nothing of ours answered
    assert (await health(app))["metrics"]["overall_p95_ms"] < 100

    app2, _ = make_app(clock, enable_simulation=True)
    async with client(app2) as c:
        assert (await c.post("/simulate/spike?count=50&ms=3000")).status_code == 200
    doc = await health(app2)
    assert doc["status"] == "critical"
    assert doc["routes"]["<simulated>"]["count"] == 50


async def test_plain_starlette_with_a_mount() -> None:
    clock = FakeClock()

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    inner = Starlette(routes=[Route("/users/{uid}", hello)])
    app = Starlette(routes=[Route("/ping", hello), Mount("/v1", app=inner)])
    instrument(app, service="plain", clock=clock, timer=clock)
    async with client(app) as c:
        assert (await c.get("/ping")).text == "hi"
        assert (await c.get("/v1/users/42")).text == "hi"
    doc = await health(app)
    assert set(doc["routes"]) == {"/ping", "/v1/users/{uid}"}


async def test_windows_decay_with_time() -> None:
    clock = FakeClock()
    app, _ = make_app(clock)
    async with client(app) as c:
        for _ in range(30):
            await c.get("/work?ms=4000")
    assert (await health(app))["status"] == "critical"
    clock.advance(30)
    assert (await health(app))["status"] == "critical"
    clock.advance(31)  # no traffic at all: the spike ages out
    doc = await health(app)
    assert doc["metrics"]["sample_size"] == 0
    assert doc["status"] == "ok"


async def test_route_cardinality_is_capped() -> None:
    clock = FakeClock()
    app = FastAPI()
    for i in range(5):
        app.add_api_route(f"/r{i}", lambda: {"ok": True}, methods=["GET"])
    instrument(app, config=SDKConfig(max_routes=3), clock=clock, timer=clock)
    async with client(app) as c:
        for i in range(5):
            await c.get(f"/r{i}")
    doc = await health(app)
    assert set(doc["routes"]) == {"/r0", "/r1", "/r2", "<other>"}
    assert doc["routes"]["<other>"]["count"] == 2


def test_instrumenting_twice_is_refused() -> None:
    app = FastAPI()
    instrument(app)
    with pytest.raises(ValueError, match="already instrumented"):
        instrument(app)


def test_redis_store_needs_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ValueError, match="redis_url"):
        instrument(FastAPI(), store="redis")


def test_environment_configures_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTENGINE_SERVICE", "from-env")
    monkeypatch.setenv("ALERTENGINE_THRESHOLDS__P95_WARNING_MS", "250")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    engine = instrument(FastAPI())
    assert engine.config.service == "from-env"
    assert engine.config.thresholds.p95_warning_ms == 250
    assert engine.config.redis_url == "redis://127.0.0.1:1/0"
    assert engine.store is None  # a URL alone does not switch the store to redis
