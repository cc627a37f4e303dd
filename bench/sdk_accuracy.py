"""SDK accuracy and memory: P50/P95/P99 against an exact sort, and memory after 1 M requests
across 1 000 routes (bounded by the ring and the route cap, whatever the traffic).

    .venv/bin/python bench/sdk_accuracy.py            # ~1 minute on a 2-core machine

Prints a table; the figures go to BENCHMARKS.md ("SDK").
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from alertengine.sdk import SDKConfig
from alertengine.sdk.handle import AlertEngine
from alertengine.sdk.sketch import LatencySketch
from alertengine.sdk.window import RollingWindow, merge_total

Q = (0.5, 0.95, 0.99)


def exact(sorted_values: list[float], q: float) -> float:
    # DDSketch's convention: the value of rank floor(q·(n-1)) in the sorted data.
    return sorted_values[math.floor(q * (len(sorted_values) - 1))]


def distributions(rng: random.Random) -> dict[str, Callable[[], float]]:
    return {
        "lognormal(50ms, σ=0.6)": lambda: rng.lognormvariate(math.log(50), 0.6),
        "bimodal 90% 20ms / 10% 800ms": lambda: (
            rng.gauss(20, 3) if rng.random() < 0.9 else rng.gauss(800, 120)
        ),
        "pareto tail (α=1.5, ≥5ms)": lambda: 5 * rng.paretovariate(1.5),
        "uniform 1..5000ms": lambda: rng.uniform(1, 5000),
    }


def accuracy(n: int, seed: int) -> float:
    rng = random.Random(seed)
    worst = 0.0
    print(f"\nP50/P95/P99 relative error vs exact sort, {n:,} samples each")
    print(f"{'distribution':<32}{'':>4}{'exact':>12}{'sketch':>12}{'window':>12}{'rel.err':>10}")
    for name, draw in distributions(rng).items():
        values = [max(0.01, draw()) for _ in range(n)]
        sk = LatencySketch()
        for v in values:
            sk.add(v)
        # The same data through the real path: 1 s buckets of a 60 s window, merged on read.
        window = RollingWindow(60)
        for i, v in enumerate(values):
            window.record("/r", v, 200, 1_000_000 + 60 * i / n)
        merged = merge_total(window.buckets(1_000_060), 0, 2_000_000)
        ordered = sorted(values)
        for q in Q:
            want = exact(ordered, q)
            got = sk.quantile(q)
            got_w = merged.sketch.quantile(q)
            assert got is not None and got_w is not None
            err = max(abs(got - want), abs(got_w - want)) / want
            worst = max(worst, err)
            print(f"{name:<32}p{int(q * 100):<3}{want:>12.2f}{got:>12.2f}{got_w:>12.2f}{err:>9.3%}")
    print(f"worst relative error: {worst:.3%} (DDSketch guarantee: 1.000%)")
    return worst


def memory(requests: int, routes: int, rate: int, seed: int) -> None:
    rng = random.Random(seed)
    lat = [rng.lognormvariate(math.log(40), 0.8) for _ in range(4096)]
    names = [f"/svc{r}/items/{{id}}" for r in range(routes)]
    t = [1_700_000_000.0]
    # The hot-path cost first, without tracemalloc (which slows every allocation).
    timing = AlertEngine(SDKConfig(max_routes=1000), clock=lambda: t[0])
    n_timed = min(requests, 200_000)
    t0 = time.perf_counter()
    for i in range(n_timed):
        timing.window.record(names[i % routes], lat[i & 4095], 200, 1_700_000_000.0 + i / rate)
    record_us = (time.perf_counter() - t0) / n_timed * 1e6
    del timing
    engine = AlertEngine(SDKConfig(max_routes=1000), clock=lambda: t[0])
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    record = engine.window.record
    for i in range(requests):
        t[0] = 1_700_000_000.0 + i / rate
        record(names[i % routes], lat[i & 4095], 500 if i % 97 == 0 else 200, t[0])
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t1 = time.perf_counter()
    doc = asyncio.run(engine.health())
    read_ms = (time.perf_counter() - t1) * 1000
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nmemory: {requests:,} requests over {routes:,} routes at {rate:,} req/s "
        f"({requests / rate:.0f} s of traffic, window 60 s)"
    )
    print(f"  SDK heap after (tracemalloc): {(current - base) / 2**20:.1f} MiB")
    print(f"  SDK heap peak  (tracemalloc): {(peak - base) / 2**20:.1f} MiB")
    print(f"  process max RSS:              {maxrss_mb:.1f} MiB")
    print(f"  routes tracked: {engine.window.route_count} (cap 1000)")
    print(f"  RollingWindow.record(): {record_us:.2f} µs/request (mean over 200k calls)")
    print(
        f"  one /health/alerts read of that window: {read_ms:.0f} ms "
        f"(sample_size {doc['metrics']['sample_size']:,})"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=200_000)
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--routes", type=int, default=1000)
    p.add_argument("--rate", type=int, default=10_000, help="simulated requests per second")
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    accuracy(a.samples, a.seed)
    memory(a.requests, a.routes, a.rate, a.seed)
    memory(a.requests, a.routes * 5, a.rate, a.seed)  # cardinality beyond the cap
    return 0


if __name__ == "__main__":
    sys.exit(main())
