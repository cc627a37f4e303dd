"""Confirm latency under a burst: 1 000 concurrent POST /action/recover/confirm of one token.

The server (uvicorn, the real approval routes, engine, ledger and state store) runs in a
subprocess on 127.0.0.1; this process fires the burst with one httpx.AsyncClient holding
1 000 connections and records each request's latency. Exactly one confirm must succeed
(200) and the rest be refused (409) — the run fails otherwise. It also reports the server
process's CPU time during the burst (the burst is bound by whichever side saturates first; on
two cores that is this one-process httpx client) and the latency of confirms sent one at a time.

    .venv/bin/python bench/authorize.py [--backend memory|sqlite] [--requests 1000] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx


async def serve(backend: str, port: int, db: str) -> None:
    import uvicorn
    from starlette.applications import Starlette

    from alertengine.authorize import Authorizer, TokenSigner
    from alertengine.clock import SystemClock
    from alertengine.engine import Change, IncidentEngine
    from alertengine.incidents import Stage
    from alertengine.orchestrator.approval_routes import approval_routes
    from alertengine.policy import Policy
    from alertengine.stores.factory import open_stores
    from alertengine.tenants import TenantRegistry

    clock = SystemClock()
    url = "memory://" if backend == "memory" else f"sqlite:///{db}"
    ledger, store = open_stores(url, ledger_key=b"bench-ledger-key-0123456789abcdef", clock=clock)
    policy = Policy()
    engine = IncidentEngine(ledger, clock, lambda _t: policy)
    tenants = TenantRegistry(store, clock)
    await tenants.add("acme", "Acme")
    await tenants.set_approvers("acme", "web", ["alice@example.com"])
    auth = Authorizer(engine, store, TokenSigner(b"b" * 48, clock), tenants, clock,
                      f"http://127.0.0.1:{port}")  # fmt: skip
    state, _ = await engine.open("acme", "checkout", reason="bench", snapshot={"score": 20})
    i = state.incident_id
    await engine.transition("acme", i, Change(Stage.PROPOSED, "policy", "x", data={"action": "r"}))
    await engine.transition("acme", i, Change(Stage.VALIDATED, "policy", "x"))
    link = await auth.issue("acme", i, "engineer:web:alice@example.com")
    app = Starlette(routes=approval_routes(auth))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off", backlog=4096)  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.01)
    print(json.dumps({"token": link.token}), flush=True)
    await task


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def burst(port: int, token: str, n: int) -> tuple[list[float], list[int], float]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    lat: list[float] = []
    codes: list[int] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=120) as client:  # fmt: skip

        async def one() -> None:
            t0 = time.perf_counter()
            r = await client.post("/action/recover/confirm", json={"token": token})
            lat.append(time.perf_counter() - t0)
            codes.append(r.status_code)

        t = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - t
    return lat, codes, wall


def burst_part(port: int, token: str, n: int, start_at: float) -> None:
    """One of several client processes: wait for the shared start time, fire ``n``, report."""
    time.sleep(max(0.0, start_at - time.time()))
    lat, codes, wall = asyncio.run(burst(port, token, n))
    print(json.dumps({"lat": lat, "codes": codes, "wall": wall}))


def burst_in_processes(
    port: int, token: str, n: int, clients: int
) -> tuple[list[float], list[int], float]:
    """The burst from ``clients`` processes at once (one httpx client saturates first)."""
    start_at = time.time() + 2.0  # every process imported and waiting by then
    sizes = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    root = Path(__file__).resolve().parents[1]
    procs = []
    for k in sizes:
        args = [sys.executable, __file__, "--burst-part", str(k), "--port", str(port),
                "--token", token, "--start-at", repr(start_at)]  # fmt: skip
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=root))
    lat: list[float] = []
    codes: list[int] = []
    wall = 0.0
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        part = json.loads(out)
        lat += part["lat"]
        codes += part["codes"]
        wall = max(wall, part["wall"])
    return lat, codes, wall


WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"token": "%s"}'
"""


def wrk_hammer(port: int, token: str, connections: int, seconds: int, tmp: str) -> dict[str, Any]:
    """``connections`` keep-alive connections confirming the one token for ``seconds`` (wrk)."""
    script = Path(tmp) / "confirm.lua"
    script.write_text(WRK_LUA % token)
    run = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}/action/recover/confirm"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    out: dict[str, Any] = {"non_2xx": 0}
    unit = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
    for line in run.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            value = parts[1]
            for suffix in ("us", "ms", "s"):
                if value.endswith(suffix):
                    out[f"p{parts[0][:-1]}_ms"] = float(value[: -len(suffix)]) * unit[suffix]
                    break
        elif "requests in" in line:
            out["requests"] = int(parts[0])
        elif line.startswith("Requests/sec:"):
            out["rps"] = float(parts[1])
        elif line.strip().startswith("Non-2xx"):
            out["non_2xx"] = int(parts[-1])
        elif "Socket errors" in line:
            out["socket_errors"] = line.strip()
    return out


async def one_at_a_time(port: int, token: str, n: int) -> list[float]:
    """Uncontended latency: ``n`` confirms of the (already used) token, one after another."""
    lat: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            r = await client.post("/action/recover/confirm", json={"token": token})
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 409, r.text
    return lat


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", choices=["memory", "sqlite"], default="sqlite")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--db", default="", help=argparse.SUPPRESS)
    ap.add_argument(
        "--clients", type=int, default=1,
        help="client processes sharing the burst (one httpx process saturates before the server)",
    )  # fmt: skip
    ap.add_argument(
        "--wrk-seconds", type=int, default=0,
        help="after the burst, hammer the used token from --requests wrk connections for N s",
    )  # fmt: skip
    ap.add_argument("--burst-part", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--token", default="", help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.backend, args.serve, args.db))
        return
    if args.wrk_seconds and shutil.which("wrk") is None:
        raise SystemExit("--wrk-seconds needs wrk: apt-get install wrk (or make bench-authorize)")
    if args.burst_part:
        burst_part(args.port, args.token, args.burst_part, args.start_at)
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        proc = subprocess.Popen(
            [sys.executable, __file__, "--backend", args.backend, "--serve", str(port),
             "--db", db],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            token = json.loads(proc.stdout.readline())["token"]
            cpu0 = cpu_s(proc.pid)
            if args.clients > 1:
                lat, codes, wall = burst_in_processes(port, token, args.requests, args.clients)
            else:
                lat, codes, wall = asyncio.run(burst(port, token, args.requests))
            server_cpu = cpu_s(proc.pid) - cpu0
            seq = asyncio.run(one_at_a_time(port, token, 200))
            hammer = None
            if args.wrk_seconds:
                cpu1 = cpu_s(proc.pid)
                hammer = wrk_hammer(port, token, args.requests, args.wrk_seconds, tmp)
                hammer["server_cpu_s"] = round(cpu_s(proc.pid) - cpu1, 2)
        finally:
            proc.terminate()
            proc.wait(10)
    ok, refused = codes.count(200), codes.count(409)
    ms = [x * 1000 for x in lat]
    print(f"backend={args.backend} requests={args.requests} clients={args.clients} ok={ok} "
          f"refused_409={refused} "
          f"wall={wall:.2f}s throughput={args.requests / wall:.0f}/s")  # fmt: skip
    print(f"latency ms: p50={pct(ms, 0.5):.0f} p90={pct(ms, 0.9):.0f} p99={pct(ms, 0.99):.0f} "
          f"max={max(ms):.0f} mean={statistics.mean(ms):.0f}")  # fmt: skip
    print(f"server CPU during the burst: {server_cpu:.2f} s = "
          f"{server_cpu / args.requests * 1000:.2f} ms per confirm "
          f"(the rest of the wall time the server waited on the client)")  # fmt: skip
    sms = [x * 1000 for x in seq]
    print(f"one at a time (200 refusals, uncontended): p50={pct(sms, 0.5):.1f} ms "
          f"p99={pct(sms, 0.99):.1f} ms")  # fmt: skip
    if hammer is not None:
        print(f"wrk, {args.requests} connections on the used token for {args.wrk_seconds} s: "
              f"{hammer.get('requests')} requests, {hammer['non_2xx']} refused, "
              f"{hammer.get('rps', 0):.0f}/s; latency p50={hammer.get('p50_ms', 0):.0f} ms "
              f"p90={hammer.get('p90_ms', 0):.0f} ms p99={hammer.get('p99_ms', 0):.0f} ms; "
              f"server CPU {hammer['server_cpu_s']} s "
              f"{hammer.get('socket_errors', '')}")  # fmt: skip
        if hammer.get("requests") != hammer["non_2xx"]:
            raise SystemExit("FAILED: a used token was accepted again")
    if ok != 1 or refused != args.requests - 1:
        raise SystemExit("FAILED: expected exactly one 200 and the rest 409")


if __name__ == "__main__":
    main()
