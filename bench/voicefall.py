"""A call nobody answers: the latency from Twilio's signed ``no-answer`` status callback
reaching our webhook to the next message being accepted by the provider.

Two cases, N incidents each (one service per incident):

- ``channel``: alice = [voice, telegram] -> her Telegram message (a fresh link);
- ``person``: alice = [voice], bob = [telegram] -> an ``escalation`` entry, then Bob's.

The orchestrator is the real runtime (``build_runtime`` + ``create_app``) on SQLite or memory
stores, called over ASGI in-process; the fake Twilio and Telegram run on loopback (real HTTP),
or in-process with ``--transport in-process``. The fall-over runs inside the status webhook,
so the callback's answer is written after the Telegram ``sendMessage`` returned: the timed
interval (request in -> answer out) covers the whole fall-over. Before this change the same
message waited for the escalation timer (``escalate_after_s``, default 180 s).

    .venv/bin/python bench/voicefall.py --calls 200 --backend both --transport both
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from tests.support.fakes.telegram import FakeTelegram  # noqa: E402
from tests.support.fakes.twilio import FakeTwilio  # noqa: E402
from tests.support.servers import serve  # noqa: E402

from alertengine.orchestrator.runtime import create_app  # noqa: E402
from phone import BASE, DEGRADED, pct, phone, providers, runtime  # noqa: E402


def people(case: str, i: int) -> list[dict[str, Any]]:
    voice = {"channel": "voice", "address": phone(2 * i)}
    if case == "channel":
        alice = [voice, {"channel": "telegram", "address": str(10_000 + i)}]
    else:
        alice = [voice]
    return [
        {"id": "alice", "channels": alice},
        {"id": "bob", "channels": [{"channel": "telegram", "address": str(20_000 + i)}]},
    ]


async def fallover_latency(
    backend: str, case: str, calls: int, in_process: bool
) -> dict[str, float]:
    tw, tg = FakeTwilio(), FakeTelegram()
    times: list[float] = []
    with serve(tw.app) as tw_url, serve(tg.app) as tg_url, tempfile.TemporaryDirectory() as d:
        if in_process:
            tw_url, tg_url = "http://twilio.fake", "http://telegram.fake"
        # One tenant per incident: each alice has her own number (one address, one person).
        config = {
            "orchestrator": {"base_url": BASE},
            "tenants": [
                {"id": f"t{i}", "people": people(case, i), "policy": {"escalate_after_s": 600}}
                for i in range(calls)
            ],
            "targets": [{"tenant": f"t{i}", "service": "checkout"} for i in range(calls)],
        }
        env = {
            "ALERT_SECRET": "s" * 48,
            "TWILIO_ACCOUNT_SID": tw.account_sid,
            "TWILIO_AUTH_TOKEN": tw.auth_token,
            "TWILIO_VOICE_FROM": "+15550000001",
            "TWILIO_API_BASE": tw_url,
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg_url,
        }
        http = providers(
            {"http://twilio.fake": tw.app, "http://telegram.fake": tg.app} if in_process else None
        )
        rt = await runtime(backend, Path(d), config, env, http)
        app = create_app(rt, run_loop=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
            for i in range(calls):
                key = {"Authorization": f"Bearer {rt.new_keys[f't{i}']}"}
                r = await c.post("/intake/health?service=checkout", json=DEGRADED, headers=key)
                assert r.json()["incident"]["stage"] == "VALIDATED", r.text
                call = tw.calls[-1]
                told = len(tg.sent)
                params = tw.status_params(call, "no-answer")
                t0 = time.perf_counter()
                r = await tw.report_status(call, "", c, params=params)
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text
                assert len(tg.sent) == told + 1, "no fall-over message"
        await rt.http.aclose()
    ms = [t * 1000 for t in times]
    return {"p50": statistics.median(ms), "p99": pct(ms, 0.99), "max": max(ms)}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--backend", choices=["sqlite", "memory", "both"], default="both")
    ap.add_argument("--transport", choices=["loopback", "in-process", "both"], default="both")
    args = ap.parse_args()
    backends = ["sqlite", "memory"] if args.backend == "both" else [args.backend]
    modes = ["loopback", "in-process"] if args.transport == "both" else [args.transport]
    for b in backends:
        for mode in modes:
            for case in ("channel", "person"):
                r = await fallover_latency(b, case, args.calls, mode == "in-process")
                print(
                    f"{b}, providers {mode}, next {case}: no-answer callback -> next message "
                    f"over {args.calls} calls: p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms, "
                    f"max {r['max']:.1f} ms"
                )


if __name__ == "__main__":
    asyncio.run(main())
