"""Detection latency: from the first slow request to the DETECTED ledger entry.

Traffic is either *closed-loop* (8 clients, each sending its next request when the last one
answered: a slowdown also slows the arrivals, so slow samples pile up slowly) or *open-loop*
(requests arrive at a fixed rate whatever the latency, like users of a public API). Which one
a service sees decides how soon 5 % of a rolling window is slow, so both are measured.

Two detection paths, same run: the orchestrator polling `/health/alerts` every 1 s, and the
app pushing its health every 0.25 s to `/intake/health`. A real instrumented app under uvicorn,
real orchestrator (SQLite ledger) under uvicorn, real HTTP; several rounds each, medians.

    .venv/bin/python bench/detection.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from alertengine import instrument
from alertengine.agent import HealthPusher
from alertengine.demo import _free_port, _serve, _traffic
from alertengine.demo_parts import Chaos, shop_app
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import build_runtime, create_app
from alertengine.orchestrator.settings import Settings
from alertengine.sdk.config import SDKConfig
from alertengine.stores.factory import open_stores

SLOW_S = 0.3
POLICY = {"open_p95_ms": 250, "min_sample_size": 5}


async def open_loop(base: str, stop: asyncio.Event, rate: float) -> None:
    """``rate`` requests per second on a fixed schedule, each in its own task."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        pending: set[asyncio.Task[Any]] = set()
        start, n = time.perf_counter(), 0
        while not stop.is_set():
            due = start + n / rate
            delay = due - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))  # behind schedule: still yield to the requests
            task = asyncio.create_task(client.get(f"/checkout/{n}"))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
        for task in list(pending):
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def one_round(mode: str, workdir: Path, traffic_kind: str, rate: float) -> float:
    chaos = Chaos()
    shop = shop_app(chaos)
    handle = instrument(shop, service="shop", config=SDKConfig(service="shop", window_s=5))
    shop_port, orch_port = _free_port(), _free_port()
    target = {"tenant": "t", "service": "shop"}
    if mode == "poll":
        target["health_url"] = f"http://127.0.0.1:{shop_port}/health/alerts"
    config = parse_config(
        {
            "orchestrator": {"loop_interval_s": 1.0},
            "tenants": [{"id": "t", "approvers": [], "policy": POLICY}],
            "targets": [target],
        }
    )
    ledger, store = open_stores(
        f"sqlite:///{workdir / f'{mode}-{time.time_ns()}.db'}", ledger_key=b"k" * 32
    )
    rt = await build_runtime(
        config, ledger=ledger, store=store, settings=Settings.from_env({"ALERT_SECRET": "s" * 40})
    )
    app = create_app(rt)
    stop = asyncio.Event()
    async with _serve(shop, shop_port), _serve(app, orch_port), httpx.AsyncClient() as client:
        pusher = None
        push_task = None
        if mode == "push":
            pusher = HealthPusher(
                handle.health,
                orchestrator_url=f"http://127.0.0.1:{orch_port}",
                api_key=rt.new_keys["t"],
                service="shop",
                client=client,
                interval_s=0.25,
            )
            push_task = asyncio.create_task(pusher.run())
        base = f"http://127.0.0.1:{shop_port}"
        traffic = asyncio.create_task(
            _traffic(base, stop, 8) if traffic_kind == "closed" else open_loop(base, stop, rate)
        )
        await asyncio.sleep(3)
        assert await rt.engine.incidents("t") == []
        t0 = time.time()
        chaos.latency_s = SLOW_S
        detected_at = None
        while time.time() - t0 < 30:
            states = await rt.engine.incidents("t")
            if states:
                detected_at = states[0].opened_at
                break
            await asyncio.sleep(0.02)
        stop.set()
        traffic.cancel()
        if pusher is not None and push_task is not None:
            pusher.stop()
            await push_task
    await rt.http.aclose()
    await ledger.close()
    await store.close()
    if detected_at is None:
        raise RuntimeError(f"{mode}: no incident within 30 s")
    return detected_at - t0


async def main(rounds: int, traffic_kind: str, rate: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        results: dict[str, list[float]] = {"poll": [], "push": []}
        for i in range(rounds):
            for mode in ("poll", "push"):  # alternate, so machine noise hits both alike
                latency = await one_round(mode, Path(d), traffic_kind, rate)
                results[mode].append(latency)
                print(
                    f"round {i + 1} {mode:4s} detected after {latency * 1000:7.0f} ms",
                    file=sys.stderr,
                )
    print(
        f"\n{traffic_kind}-loop traffic"
        + (f" at {rate:.0f} req/s" if traffic_kind == "open" else " (8 clients)")
        + f"; slow requests take {SLOW_S * 1000:.0f} ms (policy open_p95_ms=250): the first slow "
        "request completes that long after it starts."
    )
    print(f"{'mode':6s} {'median ms':>10s} {'min ms':>8s} {'max ms':>8s}")
    for mode, xs in results.items():
        print(
            f"{mode:6s} {statistics.median(xs) * 1000:10.0f} {min(xs) * 1000:8.0f} "
            f"{max(xs) * 1000:8.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--traffic", choices=["closed", "open"], default="closed")
    parser.add_argument("--rate", type=float, default=150.0, help="open-loop requests/s")
    a = parser.parse_args()
    asyncio.run(main(a.rounds, a.traffic, a.rate))
