"""Refused webhooks under a flood: ledger entries written per refused request, and the
requests/s a real ``alertengine serve`` (SQLite ledger) sustains refusing unsigned Twilio
webhooks (``X-Twilio-Signature`` wrong).

Each run starts a fresh server process, sends ``--requests`` unsigned POSTs to
``/twilio/whatsapp`` with ``--concurrency`` in flight, stops it with SIGTERM (so any summary
is written), and counts the ``_system`` ledger's refused entries and the counts they carry.
``--src`` runs the server from another source tree (e.g. the code before the refusal budget:
``git archive <commit> src | tar -x -C /tmp/old``) to compare.

The Python client is slower than the server on a small box; ``--wrk-seconds S`` then keeps
``wrk`` (50 keep-alive connections) refusing for S more seconds: the server's own ceiling.

    .venv/bin/python bench/refusals.py --requests 10000 --runs 3
    .venv/bin/python bench/refusals.py --requests 10000 --runs 3 --src /tmp/old/src
    .venv/bin/python bench/refusals.py --requests 1000 --runs 3 --wrk-seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from alertengine.ledger import LedgerQuery  # noqa: E402
from alertengine.stores.factory import open_ledger  # noqa: E402

SECRETS = {
    "ALERT_SECRET": "a" * 48,
    "ALERTENGINE_LEDGER_KEY": "l" * 48,
    "ALERTENGINE_ADMIN_KEY": "admin-" + "k" * 32,
    "BENCH_RECOVERY_SECRET": "r" * 40,
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "twilio-auth-token",
    "TWILIO_WHATSAPP_FROM": "whatsapp:+15550000000",
    "TWILIO_API_BASE": "http://127.0.0.1:9",
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(port: int, db: Path) -> str:
    return f"""
[orchestrator]
store_url = "sqlite:///{db}"
base_url = "http://127.0.0.1:{port}"
port = {port}
loop_interval_s = 1.0

[[tenants]]
id = "t1"
[[tenants.people]]
id = "alice"
channels = [{{ channel = "whatsapp", address = "+15550001111" }}]

[[targets]]
tenant = "t1"
service = "shop"
recovery_webhook = "http://127.0.0.1:9/recover"
webhook_secret_env = "BENCH_RECOVERY_SECRET"
"""


async def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(timeout=1.0) as c:
        for _ in range(600):
            assert proc.poll() is None, "the server exited"
            try:
                if (await c.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


async def flood(base: str, requests: int, concurrency: int) -> float:
    """Seconds to have ``requests`` unsigned webhooks refused, ``concurrency`` in flight."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    todo = iter(range(requests))
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as c:

        async def worker() -> None:
            for i in todo:
                r = await c.post(
                    "/twilio/whatsapp",
                    content=f"Body=approve+{i}&From=whatsapp%3A%2B15550009999",
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": "Zm9yZ2Vk",
                    },
                )
                assert r.status_code == 403, r.status_code

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0


def start_server(src: str, tmp: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    port, db = free_port(), Path(tmp) / "ae.db"
    cfg = Path(tmp) / "alertengine.toml"
    cfg.write_text(config(port, db))
    env = {**os.environ, **SECRETS, "PYTHONPATH": str(Path(src).resolve())}
    argv = [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg)]
    proc = subprocess.Popen(
        [*argv, "--log-level", "error"],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port, db


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = "Body=approve&From=whatsapp%3A%2B15550009999"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["X-Twilio-Signature"] = "Zm9yZ2Vk"
"""


def run_wrk(base: str, seconds: float, tmp: str) -> dict[str, float]:
    """wrk's requests/s and request count over ``seconds`` (50 connections, 2 threads)."""
    script = Path(tmp) / "post.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t2", "-c50", f"-d{int(seconds)}s", "-s", str(script), base + "/twilio/whatsapp"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert non2xx is not None and int(non2xx.group(1)) == total, out  # every one refused
    return {"wrk_rps": rps, "wrk_requests": total}


async def run_once(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, db = start_server(args.src or str(ROOT / "src"), tmp)
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_up(base + "/healthz", proc)
            seconds = await flood(base, args.requests, args.concurrency)
            wrk = (
                await asyncio.to_thread(run_wrk, base, args.wrk_seconds, tmp)
                if args.wrk_seconds
                else {}
            )
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=120)
        ledger = open_ledger(f"sqlite:///{db}", key=None)
        try:
            q = LedgerQuery(tenant_id="_system", kinds=frozenset({"refused"}), limit=10_000_000)
            entries = await ledger.read(q)
        finally:
            await ledger.close()
        accounted = sum(int(e.data["count"]) if e.data.get("coalesced") else 1 for e in entries)
        return {
            "seconds": seconds,
            "rps": args.requests / seconds,
            "entries": len(entries),
            "accounted": accounted,
            **wrk,
        }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--src", default="", help="run the server from this source tree")
    ap.add_argument("--wrk-seconds", type=float, default=0.0)
    args = ap.parse_args()
    runs = [await run_once(args) for _ in range(args.runs)]
    out = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "src": args.src or "this tree",
        "median_rps": round(statistics.median(r["rps"] for r in runs), 1),
        "entries_per_10k": [round(r["entries"] * 10_000 / args.requests, 1) for r in runs],
        # wrk does not count the requests in flight when it stops (up to its 50
        # connections); the server refused them, so the ledger accounts for them too.
        "accounted_minus_sent": [
            r["accounted"] - args.requests - r.get("wrk_requests", 0) for r in runs
        ],
        "runs": [{k: round(v, 2) for k, v in r.items()} for r in runs],
    }
    if args.wrk_seconds:
        out["median_wrk_rps"] = round(statistics.median(r["wrk_rps"] for r in runs), 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
