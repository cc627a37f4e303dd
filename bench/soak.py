"""Soak: a steady request rate for a long time; does memory stay flat?

Starts a real redis-server (free loopback port, stopped by pid), one instrumented app
(SDK, Redis store) and one ``alertengine serve`` replica (Redis store and ledger) polling the
app's ``/health/alerts`` every second, each its own process under uvicorn, then drives
``--rate`` requests/s (spread over ~1 000 distinct URLs of one route template) from a
separate load process for ``--minutes``. Every ``--sample-s`` it reads the resident set
size (VmRSS) of the app and the orchestrator from /proc and prints a row; at the end it
prints the growth from the first sample after warm-up to the last, and a least-squares
slope in MiB per hour. Manual, not in CI:

    .venv/bin/python bench/soak.py --minutes 10 [--rate 200] [--sample-s 30] [--warmup-s 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ADMIN, SECRETS, free_port, spawn, start_redis, stop, wait_http

SCALE = str(Path(__file__).resolve().parent / "scale.py")
console = Console()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def steady_load(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """``rate`` requests per second on a fixed schedule (not as fast as possible)."""
    ok = errors = late = 0
    kinds: dict[str, int] = {}
    interval = 1.0 / rate
    async with httpx.AsyncClient(timeout=10) as c:
        start = time.perf_counter()
        pending: set[asyncio.Task[None]] = set()

        async def one(i: int) -> None:
            nonlocal ok, errors
            try:
                r = await c.get(f"{url}/items/{i % 1000}")
                ok += r.status_code == 200
                if r.status_code != 200:
                    errors += 1
                    kinds[str(r.status_code)] = kinds.get(str(r.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors += 1
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1

        i = 0
        while (now := time.perf_counter() - start) < seconds:
            due = i * interval
            if due > now:
                await asyncio.sleep(due - now)
            else:
                if now - due > 1.0:
                    late += 1  # over a second behind schedule: the load process itself is slow
                await asyncio.sleep(0)  # behind schedule: still let the requests run
            task = asyncio.create_task(one(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
        await asyncio.gather(*pending)
        took = time.perf_counter() - start
    return {
        "sent": i, "ok": ok, "errors": errors, "error_kinds": kinds, "late": late,
        "rps": round(ok / took, 1),
    }  # fmt: skip


def slope_mib_per_h(points: list[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    cov = sum((t - mx) * (v - my) for t, v in points)
    return cov / var * 3600 if var else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", default="main", choices=["main", "load"])
    ap.add_argument("--url", default="")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second")
    ap.add_argument("--sample-s", type=float, default=30.0)
    ap.add_argument("--warmup-s", type=float, default=60.0)
    a = ap.parse_args()
    seconds = a.minutes * 60
    if a.role == "load":
        print(json.dumps(asyncio.run(steady_load(a.url, a.rate, seconds))))
        return

    # A plain `kill` must still stop the servers this run started (the `finally` below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="ae-soak-")
    redis, redis_url = start_redis(tmp)
    app_port, orch_port = free_port(), free_port()
    cfg = Path(tmp) / "soak.toml"
    cfg.write_text(
        "\n".join(
            [
                "[orchestrator]",
                'store_url = "memory://"',
                "loop_interval_s = 1.0",
                "",
                "[[tenants]]",
                'id = "soak"',
                "",
                "[[targets]]",
                'tenant = "soak"',
                'service = "bench"',
                f'health_url = "http://127.0.0.1:{app_port}/health/alerts"',
                "",
            ]
        )
    )
    app = spawn([sys.executable, SCALE, "--role", "app", "--mode", "redis",
                 "--port", str(app_port), "--redis-url", redis_url])  # fmt: skip
    orch = spawn([sys.executable, "-m", "alertengine", "serve", "--config", str(cfg),
                  "--redis-url", redis_url, "--port", str(orch_port), "--log-level", "warning",
                  "--allow-unreachable-approvers"],  # measures polling; nobody is asked
                 env=SECRETS)  # fmt: skip
    load: subprocess.Popen[bytes] | None = None
    try:
        wait_http(f"http://127.0.0.1:{app_port}/items/0")
        wait_http(f"http://127.0.0.1:{orch_port}/healthz")
        load = subprocess.Popen(
            [sys.executable, __file__, "--role", "load", "--url", f"http://127.0.0.1:{app_port}",
             "--rate", str(a.rate), "--minutes", str(a.minutes)],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        table = Table(title=f"Soak: {a.rate:.0f} req/s for {a.minutes:g} min (RSS, MiB)")
        for col in ("t (s)", "app RSS", "orchestrator RSS", "orchestrator polls", "in window"):
            table.add_column(col, justify="right")
        samples: list[tuple[float, float, float]] = []
        t0 = time.perf_counter()
        polls = requests = 0
        while (t := time.perf_counter() - t0) < seconds:
            time.sleep(min(a.sample_s, max(0.0, seconds - t)))
            t = time.perf_counter() - t0
            app_rss, orch_rss = rss_mib(app.pid), rss_mib(orch.pid)
            status = httpx.get(
                f"http://127.0.0.1:{orch_port}/__alertengine/status",
                headers={"Authorization": f"Bearer {ADMIN}"},
                timeout=5,
            ).json()
            polls = status["stats"]["polls"]
            health = httpx.get(f"http://127.0.0.1:{app_port}/health/alerts", timeout=5).json()
            requests = health["metrics"]["sample_size"]
            samples.append((t, app_rss, orch_rss))
            row = (f"{t:.0f}", f"{app_rss:.1f}", f"{orch_rss:.1f}", str(polls), str(requests))
            table.add_row(*row)
            console.print(
                f"t={t:6.0f}s  app {app_rss:6.1f} MiB  orchestrator {orch_rss:6.1f} MiB  "
                f"polls {polls}  window requests {requests}  load {os.getloadavg()[0]:.1f}"
            )
        out, _ = load.communicate(timeout=120)
        console.print(table)
        console.print(f"load: {out.decode().strip()}")
        after = [s for s in samples if s[0] >= a.warmup_s] or samples
        for name, col in (("app", 1), ("orchestrator", 2)):
            first, last = after[0][col], after[-1][col]
            peak = max(s[col] for s in after)
            slope = slope_mib_per_h([(s[0], s[col]) for s in after])
            console.print(
                f"{name}: {first:.1f} → {last:.1f} MiB after warm-up "
                f"({last - first:+.1f} MiB, peak {peak:.1f}), slope {slope:+.1f} MiB/h"
            )
    finally:
        if load is not None:
            stop(load)
        stop(orch)
        stop(app)
        stop(redis)


if __name__ == "__main__":
    main()
