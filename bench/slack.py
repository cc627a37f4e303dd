"""Slack: the latency from an Approve button press reaching ``POST /slack/interactions`` to
AUTHORIZED.

The orchestrator is the real runtime (``build_runtime`` + ``create_app``: signature and
timestamp check, strict payload parse, replay claim, person lookup by member id, the
authorizer's single-use claim, the ledger append of the approval and the transition) on
SQLite or memory stores, called over ASGI in-process; Slack is the local fake on loopback
(incoming webhook, ``response_url``). The route answers once the decision is made (it is
well inside its 2 s budget here), so the press's latency is press -> AUTHORIZED; the
ephemeral reply through ``response_url`` and the recovery webhook run after, untimed.

    .venv/bin/python bench/slack.py --presses 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.support.fakes.slack import FakeSlack  # noqa: E402
from tests.support.fakes.webhook_receiver import FakeWebhookReceiver  # noqa: E402
from tests.support.servers import serve  # noqa: E402

from alertengine.clock import SystemClock  # noqa: E402
from alertengine.ledger.memory import MemoryLedgerStore  # noqa: E402
from alertengine.ledger.sqlite import SqliteLedgerStore  # noqa: E402
from alertengine.orchestrator.config import parse_config  # noqa: E402
from alertengine.orchestrator.runtime import build_runtime, create_app, sync_tenants  # noqa: E402
from alertengine.orchestrator.settings import Settings  # noqa: E402
from alertengine.stores import MemoryStateStore  # noqa: E402
from alertengine.stores.sqlite import SqliteStateStore  # noqa: E402

BASE = "http://localhost"
SECRET = "bench-recovery-secret-0123456789abcdef"
ALICE = "U0ALICE"
DEGRADED = {
    "status": "critical",
    "health_score": {"score": 22, "status": "critical", "trend": "degrading"},
    "metrics": {"overall_p95_ms": 2800.0, "error_rate": 0.19, "sample_size": 250},
    "alerts": [],
}


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def press_latency(backend: str, presses: int) -> dict[str, float]:
    slack, rx = FakeSlack(), FakeWebhookReceiver(secret=SECRET.encode())
    os.environ["BENCH_RECOVERY"] = SECRET
    with serve(slack.app) as hooks, serve(rx.app) as hook, tempfile.TemporaryDirectory() as d:
        config = {
            "orchestrator": {"base_url": BASE},
            "tenants": [
                {
                    "id": "acme",
                    "people": [
                        {"id": "alice", "channels": [{"channel": "slack", "address": ALICE}]}
                    ],
                }
            ],
            "targets": [
                {"tenant": "acme", "service": f"svc{i}", "recovery_webhook": f"{hook}/hook",
                 "webhook_secret_env": "BENCH_RECOVERY"}
                for i in range(presses)
            ],
        }  # fmt: skip
        env = {
            "ALERT_SECRET": "s" * 48,
            "SLACK_WEBHOOK_URL": hooks + slack.path,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "SLACK_HOOKS_BASE": hooks,
        }
        clock = SystemClock()
        if backend == "sqlite":
            ledger: Any = SqliteLedgerStore(Path(d) / "ledger.db", key=b"k" * 32)
            store: Any = SqliteStateStore(Path(d) / "state.db", clock=clock)
        else:
            ledger, store = MemoryLedgerStore(b"k" * 32), MemoryStateStore(clock)
        rt = await build_runtime(
            parse_config(config), ledger=ledger, store=store, settings=Settings.from_env(env),
            clock=clock,
        )  # fmt: skip
        await sync_tenants(rt)
        app = create_app(rt, run_loop=False)
        key = {"Authorization": f"Bearer {rt.new_keys['acme']}"}
        times: list[float] = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
            for i in range(presses):
                r = await c.post(f"/intake/health?service=svc{i}", json=DEGRADED, headers=key)
                assert r.json()["incident"]["stage"] == "VALIDATED", r.text
                signed = slack.press(slack.posted[-1], "ae_approve", ALICE, hooks_base=hooks)
                t0 = time.perf_counter()
                r = await c.post("/slack/interactions", content=signed.body, headers=signed.headers)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
                await rt.drain()  # the response_url reply and the recovery: untimed
                assert str(slack.replies[-1]["text"]).startswith("Approved."), slack.replies[-1]
        await rt.http.aclose()
    ms = [t * 1000 for t in times]
    return {"p50": statistics.median(ms), "p99": pct(ms, 0.99), "max": max(ms)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presses", type=int, default=300)
    ap.add_argument("--backend", choices=["sqlite", "memory", "both"], default="both")
    args = ap.parse_args()
    backends = ["sqlite", "memory"] if args.backend == "both" else [args.backend]
    for backend in backends:
        got = asyncio.run(press_latency(backend, args.presses))
        print(
            f"slack press -> AUTHORIZED ({backend}, {args.presses} presses): "
            f"p50 {got['p50']:.1f} ms, p99 {got['p99']:.1f} ms, max {got['max']:.1f} ms"
        )


if __name__ == "__main__":
    main()
