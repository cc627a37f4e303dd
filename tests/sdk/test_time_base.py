"""Reads are pure; learning and decay follow the window's own time base."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from alertengine import instrument
from alertengine.sdk import SDKConfig, Thresholds
from alertengine.sdk.window import Bucket, RollingWindow
from tests.sdk.helpers import FakeClock, client


def traffic_app(clock: FakeClock) -> tuple[FastAPI, Any]:
    app = FastAPI()

    @app.get("/work")
    async def work(ms: float = 10.0) -> dict[str, float]:
        clock.advance(ms / 1000.0)
        return {"ms": ms}

    cfg = SDKConfig(service="svc", thresholds=Thresholds(baseline_warmup=10))
    return app, instrument(app, config=cfg, clock=clock, timer=clock)


def latency_at(second: int) -> float:
    # Calm, then a spike below the absolute thresholds (rate of change), then calm again.
    return 400.0 if 90 <= second < 100 else 40.0 + (second % 7)


async def run(poll_every: int | None) -> tuple[dict[str, Any], Any, list[dict[str, Any]]]:
    clock = FakeClock(1_700_000_000.0)
    app, engine = traffic_app(clock)
    seen = []
    async with client(app) as c:
        for second in range(130):
            start = clock.t
            for _ in range(5):
                await c.get(f"/work?ms={latency_at(second)}")
            clock.t = start + 1.0
            if poll_every and second % poll_every == 0:
                seen.append((await c.get("/health/alerts")).json())
        final = (await c.get("/health/alerts")).json()
    return final, engine.learner.baseline, seen


async def test_polling_often_or_never_yields_the_same_health() -> None:
    never, base_never, _ = await run(None)
    often, base_often, seen = await run(1)
    sometimes, base_sometimes, _ = await run(13)
    assert base_never == base_often == base_sometimes
    for doc in (never, often, sometimes):
        doc.pop("instance_id")  # three engines, three process ids; everything else is equal
    assert never == often == sometimes
    # And the run did exercise learning and the spike: this is not a vacuous equality.
    assert base_never.warm(Thresholds(baseline_warmup=10))
    during_spike = [d for d in seen if "rate_of_change" in {a["kind"] for a in d["alerts"]}]
    assert during_spike, "the 10x spike below absolute thresholds must be caught"
    assert all(d["status"] == d["health_score"]["level"] for d in seen)
    degrading = [d["health_score"]["trend"] for d in seen[88:]]
    assert "degrading" in degrading and "improving" in degrading


async def test_baseline_learns_only_while_healthy() -> None:
    clock = FakeClock()
    app, engine = traffic_app(clock)
    async with client(app) as c:
        for _ in range(40):
            start = clock.t
            for _ in range(8):
                await c.get("/work?ms=50")
            clock.t = start + 1.0
        learned = engine.learner.baseline
        assert learned.p95_ms == pytest.approx(50, rel=0.02)
        for _ in range(40):  # a long outage: 5 s latencies, critical throughout
            start = clock.t
            for _ in range(8):
                await c.get("/work?ms=5000")
            clock.t = start + 1.0
        doc = (await c.get("/health/alerts")).json()
    assert doc["status"] == "critical"
    assert engine.learner.baseline.p95_ms < 200  # the incident did not become the norm


def test_closed_buckets_are_seen_once_in_order() -> None:
    seen: list[int] = []
    w = RollingWindow(10, on_close=[lambda b: seen.append(b.sec)])
    for t in (100.1, 100.5, 101.2, 101.9, 105.0):
        w.record("/a", 5.0, 200, t)
    w.catch_up(105.5)  # same second: nothing new closes
    w.catch_up(106.0)
    w.catch_up(107.0)  # idempotent
    w.record("/a", 5.0, 200, 106.5)
    assert seen == [100, 101, 105]


def test_window_reads_do_not_mutate() -> None:
    w = RollingWindow(10)
    for i in range(50):
        w.record(f"/r{i % 3}", float(i), 200, 1000 + i * 0.1)
    before = [(b.sec, b.total.count, dict(b.total.sketch.bins)) for b in w.buckets(1004.9)]
    for _ in range(5):
        w.buckets(1004.9)
        w.buckets(1003.0, 2)
    after = [(b.sec, b.total.count, dict(b.total.sketch.bins)) for b in w.buckets(1004.9)]
    assert before == after and sum(c for _, c, _ in before) == 50


def test_bucket_wire_round_trip() -> None:
    w = RollingWindow(5)
    for i in range(20):
        w.record("/a" if i % 2 else "/b", 1.0 + i, 500 if i == 3 else 200, 50.5)
    b = w.current
    back = Bucket.from_wire(b.to_wire())
    assert back.sec == 50 and back.total.count == 20 and back.total.c5xx == 1
    assert back.routes["/a"].sketch.bins == b.routes["/a"].sketch.bins


def test_inconsistent_wire_buckets_are_refused() -> None:
    good = {"sec": 5, "routes": {"/a": [2, 0, 1, 3.0, [[10, 2]]]}}
    assert Bucket.from_wire(good).total.c5xx == 1
    for bad_stats in (
        [3, 0, 1, 3.0, [[10, 2]]],
        [2, -1, 2, 3.0, [[10, 2]]],
        [2, 2, 1, 1.0, [[1, 2]]],
    ):
        with pytest.raises(ValueError):
            Bucket.from_wire({"sec": 5, "routes": {"/a": bad_stats}})
