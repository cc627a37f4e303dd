"""Per-request cost of the SDK middleware, side by side with its peers, in one process run.

Run inside the separate bench venv (the peers must never be installed into .venv)::

    make bench-overhead   # scripts/bench-venv.sh, then .bench-venv/bin/python bench/overhead.py

Each app's ASGI callable is driven directly (no sockets, no HTTP client) so the figures are the
framework + middleware cost alone. Variants run in alternating order within every round;
many short rounds, so every variant sees the same background load; the median of the rounds
is reported, and added costs are compared as ratios, because this
machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fastapi import FastAPI

ASGI = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


# -- a throwaway redis-server (the bench venv cannot import tests/: the original shadows it) ---
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="ae-bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


# -- the apps ---------------------------------------------------------------------------------
def base_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": "widget", "price": 9.99}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def build(variant: str, redis_url: str | None) -> FastAPI:
    app = base_app()
    if variant == "bare":
        return app
    if variant == "ours-memory":
        from alertengine import instrument

        instrument(app, service="bench")
    elif variant == "ours-redis":
        from alertengine import instrument

        instrument(app, service="bench", store="redis", redis_url=redis_url)
    elif variant == "ours-multiproc":
        # Worker processes of one host merged through a directory (ALERTENGINE_MULTIPROC_DIR):
        # the request path is the memory store's; a background task rewrites this process's
        # file every publish interval, off the request path but inside the measured time.
        from alertengine import instrument
        from alertengine.sdk import SDKConfig

        directory = tempfile.mkdtemp(prefix="ae-bench-multiproc-")
        instrument(app, config=SDKConfig(service="bench", multiproc_dir=directory))
    elif variant == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator().instrument(app)
    elif variant == "original-1.7.0":
        import fastapi_alertengine

        # It prints a banner on start; keep the bench output readable.
        with contextlib.redirect_stdout(io.StringIO()):
            fastapi_alertengine.instrument(app, redis_url=redis_url or "redis://127.0.0.1:1/0")
    else:
        raise ValueError(variant)
    return app


# -- driving ASGI directly --------------------------------------------------------------------
class Lifespan:
    """Runs an app's lifespan startup (background tasks start) and later its shutdown."""

    def __init__(self, app: ASGI) -> None:
        self.app = app
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.started = asyncio.Event()
        self.done = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            self.started.set()
        elif message["type"].startswith("lifespan.shutdown"):
            self.done.set()

    async def _run(self) -> None:
        with contextlib.suppress(Exception):
            await self.app(
                {"type": "lifespan", "asgi": {"version": "3.0"}}, self.queue.get, self._send
            )
        self.started.set()
        self.done.set()

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run())
        await self.queue.put({"type": "lifespan.startup"})
        await asyncio.wait_for(self.started.wait(), 10)

    async def stop(self) -> None:
        await self.queue.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.done.wait(), 10)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


def scopes(n_paths: int = 64) -> list[dict[str, Any]]:
    out = []
    for i in range(n_paths):
        path = f"/items/{i}" if i % 8 else "/health"
        out.append(
            {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.3"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "root_path": "",
                "query_string": b"",
                "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
                "client": ("127.0.0.1", 50000),
                "server": ("bench", 80),
            }
        )
    return out


async def drive(app: ASGI, n: int, templates: list[dict[str, Any]]) -> float:
    """µs per request for ``n`` sequential requests."""
    statuses: dict[int, int] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] = statuses.get(message["status"], 0) + 1

    k = len(templates)
    t0 = time.perf_counter()
    for i in range(n):
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)  # a client that stays connected
            return {"type": "http.disconnect"}

        await app(dict(templates[i % k]), receive, send)
    elapsed = time.perf_counter() - t0
    if set(statuses) != {200}:
        raise RuntimeError(f"unexpected statuses {statuses}")
    return elapsed / n * 1e6


async def main_async(args: argparse.Namespace) -> int:
    variants = [
        "bare",
        "ours-memory",
        "ours-redis",
        "ours-multiproc",
        "instrumentator",
        "original-1.7.0",
    ]
    if args.only:
        variants = [v for v in variants if v in args.only.split(",") or v == "bare"]
    with redis_server() as url:
        if url is None:
            print("redis-server not found: skipping the Redis variant", file=sys.stderr)
            variants = [v for v in variants if v != "ours-redis"]
        apps: dict[str, ASGI] = {}
        lifespans = []
        for v in variants:
            try:
                apps[v] = build(v, url)
            except ImportError as exc:
                print(f"skipping {v}: {exc} (run scripts/bench-venv.sh)", file=sys.stderr)
                continue
            ls = Lifespan(apps[v])
            await ls.start()
            lifespans.append(ls)
        templates = scopes()
        # Warm-up: imports, caches, first-request setup (the original prints a banner here).
        with contextlib.redirect_stdout(io.StringIO()):
            for app in apps.values():
                await drive(app, args.warmup, templates)
        results: dict[str, list[float]] = {v: [] for v in apps}
        names = list(apps)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                gc.collect()
                results[name].append(await drive(apps[name], args.requests, templates))
            if args.verbose:
                print(
                    f"round {r + 1}/{args.rounds}: "
                    + "  ".join(f"{n}={results[n][-1]:.1f}" for n in names),
                    file=sys.stderr,
                )
        for ls in lifespans:
            await ls.stop()

    med = {n: statistics.median(v) for n, v in results.items()}
    bare = med["bare"]
    # Added cost as the median of per-round differences against the bare app measured in the
    # same round: robust to load that changes between rounds.
    added = {
        n: statistics.median(x - b for x, b in zip(results[n], results["bare"], strict=True))
        for n in names
    }
    print()
    print(
        f"requests per variant per round: {args.requests}, rounds: {args.rounds}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} cpu, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'variant':<16}{'median µs/req':>15}{'added µs':>11}{'added ×bare':>13}"
        f"{'p25..p75 µs/req':>20}"
    )
    for n in names:
        q = statistics.quantiles(results[n], n=4)
        print(
            f"{n:<16}{med[n]:>15.1f}{added[n]:>11.1f}{added[n] / bare:>12.2f}x"
            f"{q[0]:>11.1f}..{q[2]:<8.1f}"
        )
    print()
    if "ours-memory" in med and "ours-multiproc" in med:
        a, m = added["ours-multiproc"], added["ours-memory"]
        paired = statistics.median(
            x - y for x, y in zip(results["ours-multiproc"], results["ours-memory"], strict=True)
        )
        print(
            f"ours-multiproc added {a:.1f} µs vs ours-memory added {m:.1f} µs; "
            f"multiproc − memory paired per round: {paired:+.1f} µs/request"
        )
        pub = await multiproc_publish()
        print(
            f"multiprocess background publish (50 routes, 1000 req/s, full 60 s window in the "
            f"file): {pub:.0f} µs per publish (every 1 s) = {pub / 1000:.2f} µs per request "
            f"at 1000 req/s per worker"
        )
    for ours in ("ours-memory", "ours-redis", "ours-multiproc"):
        if ours not in med:
            continue
        a = max(added[ours], 0.0)
        for peer, target in (("instrumentator", 0.5), ("original-1.7.0", 0.25)):
            if peer in med:
                p = added[peer]
                ratio = a / p if p > 0 else float("inf")
                ok = "meets" if ratio <= target else "MISSES"
                print(
                    f"{ours} added cost / {peer} added cost = {ratio:.2f} (target ≤ {target}: {ok})"
                )
    raw, wrapped = await isolated()
    print(
        f"\nour middleware alone (best of 3 × 100k, raw ASGI app that already routed): "
        f"{raw:.2f} → {wrapped:.2f} µs/request, +{wrapped - raw:.2f} µs"
    )
    return 0


async def isolated(n: int = 100_000) -> tuple[float, float]:
    """Our middleware alone around a raw ASGI app that already routed: (raw, wrapped) µs."""
    from alertengine.sdk import AlertEngine, SDKConfig

    class _Route:
        path = "/items/{item_id}"

    route = _Route()

    async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route"] = route
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message: Any) -> None:
        return None

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    wrapped = AlertEngine(SDKConfig(service="bench")).wrap(raw)
    base = {"type": "http", "path": "/items/1", "method": "GET", "root_path": ""}
    best: dict[str, float] = {}
    for _ in range(3):
        for name, app in (("raw", raw), ("wrapped", wrapped)):
            t0 = time.perf_counter()
            for _ in range(n):
                await app(dict(base), receive, send)
            us = (time.perf_counter() - t0) / n * 1e6
            best[name] = min(best.get(name, us), us)
    return best["raw"], best["wrapped"]


async def multiproc_publish(routes: int = 50, rate: int = 1000, window_s: int = 60) -> float:
    """µs for one background publish of the multiprocess store (this process's file rewritten
    with a full window): ``routes`` busy routes, ``rate`` requests/s, steady state."""
    from alertengine.sdk import AlertEngine, SDKConfig

    directory = tempfile.mkdtemp(prefix="ae-bench-multiproc-")
    t = [1_700_000_000.0]
    engine = AlertEngine(
        SDKConfig(service="bench", multiproc_dir=directory, window_s=window_s),
        clock=lambda: t[0],
    )
    times: list[float] = []
    try:
        for sec in range(window_s + 60):
            for i in range(rate):
                engine.window.record(f"/r{i % routes}", 5.0 + i % 300, 200, t[0] + i / rate)
            t[0] += 1.0
            t0 = time.perf_counter()
            assert await engine.flush()
            if sec >= window_s:  # steady state: the file holds a full window
                times.append((time.perf_counter() - t0) * 1e6)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=500, help="requests per variant per round")
    p.add_argument("--rounds", type=int, default=41)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--verbose", action="store_true", help="print every round")
    p.add_argument("--only", default="", help="comma-separated variants (bare always runs)")
    return asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
