"""Scale-out figures: app throughput with the SDK (bare / memory / Redis store) and
orchestrator targets polled per second per replica (1 and 3 replicas sharing Redis).

Every server is its own process on 127.0.0.1 (uvicorn); load comes from a separate load
process (fixed concurrency, fixed duration). A real redis-server is started here on a
free port and stopped by pid. Compare ratios from one run, not absolute numbers.

    .venv/bin/python bench/scale.py [--seconds 8] [--concurrency 32] [--targets 60]
        [--rounds 3] [--loop-interval 0.2]

App load comes from ``wrk`` (Debian package) when it is installed, else from an httpx load
process (which then saturates before the app does: compare only within one run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "admin-" + "k" * 32
SECRETS = {
    "ALERT_SECRET": "a" * 48,
    "ALERTENGINE_LEDGER_KEY": "l" * 48,
    "ALERTENGINE_ADMIN_KEY": ADMIN,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the pieces, each run as `python bench/scale.py --role …` -----------------------------------


def serve_app(mode: str, port: int, redis_url: str) -> None:
    import uvicorn
    from fastapi import FastAPI

    from alertengine import instrument

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "ok": True}

    if mode == "memory":
        instrument(app, service="bench")
    elif mode == "redis":
        instrument(app, service="bench", store="redis", redis_url=redis_url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def run_load(url: str, seconds: float, concurrency: int) -> dict[str, Any]:
    ok = errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, limits=limits) as c:
        end = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            nonlocal ok, errors
            n = 0
            while time.perf_counter() < end:
                n += 1
                try:
                    r = await c.get(f"{url}/items/{i * 10_000_000 + n}")
                    ok += r.status_code == 200
                    errors += r.status_code != 200
                except httpx.HTTPError:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        took = time.perf_counter() - started
    return {"ok": ok, "errors": errors, "seconds": round(took, 2), "rps": round(ok / took, 1)}


# -- orchestration --------------------------------------------------------------------------


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        os.kill(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def start_redis(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    p = spawn([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", tmp])  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, f"redis://127.0.0.1:{port}/0"


#: wrk spreads requests over many item ids, so the route template (not the path) is measured.
WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/items/" .. (counter % 100000))
end
"""


def wrk_load(url: str, seconds: float, concurrency: int, tmp: str) -> dict[str, Any]:
    script = Path(tmp) / "items.lua"
    script.write_text(WRK_SCRIPT)
    run = subprocess.run(
        ["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s",
         "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    fields = {}
    for line in run.stdout.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            fields["rps"] = float(line.split()[1])
        elif "requests in" in line:
            fields["ok"] = int(line.split()[0])
        elif line.startswith("Non-2xx"):
            fields["errors"] = int(line.split()[-1])
    fields.setdefault("errors", 0)
    fields["load"] = "wrk"
    return fields


def app_throughput(
    redis_url: str, seconds: float, concurrency: int, tmp: str, rounds: int
) -> dict[str, Any]:
    """Rounds of bare / memory / redis, interleaved; the median rps of each."""
    use_wrk = shutil.which("wrk") is not None
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "memory": [], "redis": []}
    for _ in range(rounds):
        for mode in runs:
            port = free_port()
            app = spawn([sys.executable, __file__, "--role", "app", "--mode", mode,
                         "--port", str(port), "--redis-url", redis_url])  # fmt: skip
            try:
                wait_http(f"http://127.0.0.1:{port}/items/0")
                url = f"http://127.0.0.1:{port}"
                if use_wrk:
                    runs[mode].append(wrk_load(url, seconds, concurrency, tmp))
                else:
                    load = subprocess.run(
                        [sys.executable, __file__, "--role", "load", "--url", url,
                         "--seconds", str(seconds), "--concurrency", str(concurrency)],
                        cwd=ROOT, capture_output=True, check=True, timeout=seconds + 120,
                    )  # fmt: skip
                    runs[mode].append({**json.loads(load.stdout), "load": "httpx"})
            finally:
                stop(app)
    out: dict[str, Any] = {}
    for mode, rs in runs.items():
        rps = sorted(r["rps"] for r in rs)
        out[mode] = {"rps": rps[len(rps) // 2], "runs": [r["rps"] for r in rs],
                     "errors": sum(r["errors"] for r in rs), "load": rs[0]["load"]}  # fmt: skip
    bare = out["bare"]["rps"]
    for mode in ("memory", "redis"):
        out[mode]["vs_bare"] = round(out[mode]["rps"] / bare, 3)
    return out


def orchestrator_polls(
    redis_url: str, tmp: str, replicas: int, targets: int, seconds: float, interval: float
) -> dict[str, Any]:
    app_port = free_port()
    app = spawn([sys.executable, __file__, "--role", "app", "--mode", "memory",
                 "--port", str(app_port), "--redis-url", redis_url])  # fmt: skip
    cfg = Path(tmp) / f"scale-{replicas}.toml"
    lines = ["[orchestrator]", 'store_url = "memory://"', f"loop_interval_s = {interval}", "",
             "[[tenants]]", 'id = "bench"', ""]  # fmt: skip
    for i in range(targets):
        lines += ["[[targets]]", 'tenant = "bench"', f'service = "svc{i}"',
                  f'health_url = "http://127.0.0.1:{app_port}/health/alerts"', ""]  # fmt: skip
    cfg.write_text("\n".join(lines))
    ports = [free_port() for _ in range(replicas)]
    procs = [
        spawn([sys.executable, "-m", "alertengine", "serve", "--config", str(cfg), "--redis-url",
               redis_url, "--port", str(p), "--log-level", "warning",
               "--allow-unreachable-approvers"], env=SECRETS)  # polling only: nobody is asked
        for p in ports
    ]  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{app_port}/health/alerts")
        for p in ports:
            wait_http(f"http://127.0.0.1:{p}/healthz")
        time.sleep(3)  # let the leases settle

        def polls() -> list[tuple[int, int]]:
            out = []
            for p in ports:
                s = httpx.get(
                    f"http://127.0.0.1:{p}/__alertengine/status",
                    headers={"Authorization": f"Bearer {ADMIN}"},
                    timeout=5,
                ).json()
                held = [n for n in s["leases"]["held"] if n.startswith("target:")]
                out.append((s["stats"]["polls"], len(held)))
            return out

        a = polls()
        t0 = time.perf_counter()
        time.sleep(seconds)
        b = polls()
        took = time.perf_counter() - t0
        per = [round((pb - pa) / took, 1) for (pa, _), (pb, _) in zip(a, b, strict=True)]
        return {
            "replicas": replicas,
            "targets": targets,
            "loop_interval_s": interval,
            "polls_per_s_per_replica": per,
            "targets_held_per_replica": [h for _, h in b],
            "polls_per_s_total": round(sum(per), 1),
            "polls_per_s_per_target": round(sum(per) / targets, 2),
        }
    finally:
        for p in procs:
            stop(p)
        stop(app)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="main", choices=["main", "app", "load"])
    ap.add_argument("--mode", default="bare")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--redis-url", default="")
    ap.add_argument("--url", default="")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--targets", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of app load")
    ap.add_argument(
        "--loop-interval", type=float, default=0.2,
        help="orchestrator loop interval; a tiny one measures how fast a replica can poll",
    )  # fmt: skip
    a = ap.parse_args()
    if a.role == "app":
        serve_app(a.mode, a.port, a.redis_url)
        return
    if a.role == "load":
        print(json.dumps(asyncio.run(run_load(a.url, a.seconds, a.concurrency))))
        return
    tmp = tempfile.mkdtemp(prefix="ae-scale-")
    redis, url = start_redis(tmp)
    try:
        result = {
            "cpus": os.cpu_count(),
            "load_before": os.getloadavg(),
            "app_rps": app_throughput(url, a.seconds, a.concurrency, tmp, a.rounds),
            "orchestrator": [
                orchestrator_polls(url, tmp, n, a.targets, a.seconds, a.loop_interval)
                for n in (1, 3)
            ],
        }
    finally:
        stop(redis)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
