"""Phone-first on-call: (1) the latency from a WhatsApp quick-reply press reaching our webhook
to AUTHORIZED, (2) the notification fan-out for an incident with 10 people on 3 channels each.

The orchestrator is the real runtime (``build_runtime`` + ``create_app``: signature check,
replay claim, person lookup, the authorizer's single-use claim, the ledger append of the
approval and the transition) on SQLite or memory stores, called over ASGI in-process; Twilio
and Telegram are the local fakes on loopback (real HTTP). The press's response is written
after the AUTHORIZED transition is in the ledger, so its latency is press -> AUTHORIZED.

    .venv/bin/python bench/phone.py --presses 200 --backend sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.support.fakes.telegram import FakeTelegram  # noqa: E402
from tests.support.fakes.twilio import FakeTwilio  # noqa: E402
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
WA_FROM = "+15550000000"
DEGRADED = {
    "status": "critical",
    "health_score": {"score": 22, "status": "critical", "trend": "degrading"},
    "metrics": {"overall_p95_ms": 2800.0, "error_rate": 0.19, "sample_size": 250},
    "alerts": [],
}


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def ref_of(sent: dict[str, str]) -> str:
    """The link id a quick reply carries: the template's variable 3, or (inside the 24-hour
    window, where the alert is free-form text) the jti of the link in the text."""
    if "ContentVariables" in sent:
        return str(json.loads(sent["ContentVariables"])["3"])
    token = sent["Body"].split("token=", 1)[1].split()[0]
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


def phone(i: int) -> str:
    return f"+1555{i:07d}"


def providers(mounts: dict[str, Any] | None) -> httpx.AsyncClient | None:
    """With ``--in-process``: the providers' fakes over ASGI (the real client code, no
    loopback TCP), so a figure is our code's cost and not the kernel's delayed ACK."""
    if not mounts:
        return None
    return httpx.AsyncClient(
        mounts={url: httpx.AsyncHTTPTransport() if app is None else httpx.ASGITransport(app=app)
                for url, app in mounts.items()},
        timeout=10.0,
    )  # fmt: skip


async def runtime(
    backend: str,
    tmp: Path,
    config: dict[str, Any],
    env: dict[str, str],
    http: httpx.AsyncClient | None = None,
) -> Any:
    clock = SystemClock()
    if backend == "sqlite":
        ledger: Any = SqliteLedgerStore(tmp / "ledger.db", key=b"k" * 32)
        store: Any = SqliteStateStore(tmp / "state.db", clock=clock)
    else:
        ledger, store = MemoryLedgerStore(b"k" * 32), MemoryStateStore(clock)
    rt = await build_runtime(
        parse_config(config), ledger=ledger, store=store, settings=Settings.from_env(env),
        clock=clock, http=http,
    )  # fmt: skip
    await sync_tenants(rt)
    return rt


async def press_latency(backend: str, presses: int) -> dict[str, float]:
    tw, rx = FakeTwilio(), FakeWebhookReceiver(secret=SECRET.encode())
    os.environ["BENCH_RECOVERY"] = SECRET
    with serve(tw.app) as tw_url, serve(rx.app) as hook, tempfile.TemporaryDirectory() as d:
        config = {
            "orchestrator": {"base_url": BASE},
            "tenants": [
                {
                    "id": "acme",
                    "whatsapp_content_sid": "HX" + "ab" * 16,
                    "people": [
                        {"id": "alice", "channels": [{"channel": "whatsapp", "address": phone(1)}]}
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
            "TWILIO_ACCOUNT_SID": tw.account_sid,
            "TWILIO_AUTH_TOKEN": tw.auth_token,
            "TWILIO_WHATSAPP_FROM": WA_FROM,
            "TWILIO_API_BASE": tw_url,
        }
        rt = await runtime(backend, Path(d), config, env)
        app = create_app(rt, run_loop=False)
        key = {"Authorization": f"Bearer {rt.new_keys['acme']}"}
        times: list[float] = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
            for i in range(presses):
                r = await c.post(f"/intake/health?service=svc{i}", json=DEGRADED, headers=key)
                assert r.json()["incident"]["stage"] == "VALIDATED", r.text
                ref = ref_of(tw.sent[-1])
                params = tw.whatsapp_inbound(phone(1), WA_FROM, payload=f"approve:{ref}")
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": tw.sign(BASE + "/twilio/whatsapp", params),
                }
                body = urlencode(params)
                t0 = time.perf_counter()
                r = await c.post("/twilio/whatsapp", content=body, headers=headers)
                times.append(time.perf_counter() - t0)
                assert "Approved." in r.text, r.text
                await rt.drain()  # the recovery webhook runs outside the timed press
        await rt.http.aclose()
    ms = [t * 1000 for t in times]
    return {"p50": statistics.median(ms), "p99": pct(ms, 0.99), "max": max(ms)}


async def fan_out(backend: str, runs: int, in_process: bool) -> dict[str, float]:
    """10 people x [telegram, whatsapp, voice]. Telegram is down (every chat refused, a
    permanent 400), so each person costs two provider requests before WhatsApp delivers.
    Timed: (a) the first notification (level 0); (b) the whole escalation walk, every level
    notified (10 links issued, 20 requests, every attempt ledgered); (c) after the last person
    acknowledges, telling the 9 others who took it."""
    tw, tg = FakeTwilio(), FakeTelegram(chats=set())
    people = [
        {"id": f"p{i}", "channels": [
            {"channel": "telegram", "address": str(9000 + i)},
            {"channel": "whatsapp", "address": phone(100 + i)},
            {"channel": "voice", "address": phone(100 + i)},
        ]}
        for i in range(10)
    ]  # fmt: skip
    first: list[float] = []
    walk: list[float] = []
    told: list[float] = []
    with serve(tw.app) as tw_url, serve(tg.app) as tg_url:
        if in_process:
            tw_url, tg_url = "http://twilio.fake", "http://telegram.fake"
        env = {
            "ALERT_SECRET": "s" * 48,
            "TWILIO_ACCOUNT_SID": tw.account_sid,
            "TWILIO_AUTH_TOKEN": tw.auth_token,
            "TWILIO_WHATSAPP_FROM": WA_FROM,
            "TWILIO_VOICE_FROM": "+15550000001",
            "TWILIO_API_BASE": tw_url,
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg_url,
        }
        for run in range(runs):
            with tempfile.TemporaryDirectory() as d:
                config = {
                    "orchestrator": {"base_url": BASE},
                    "tenants": [{"id": "acme", "people": people}],
                    "targets": [{"tenant": "acme", "service": "checkout"}],
                }
                http = providers(
                    {"http://twilio.fake": tw.app, "http://telegram.fake": tg.app}
                    if in_process
                    else None
                )
                rt = await runtime(backend, Path(d), config, env, http)
                app = create_app(rt, run_loop=False)
                key = {"Authorization": f"Bearer {rt.new_keys['acme']}"}
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url=BASE
                ) as c:
                    rt.orch.validated_hooks.clear()  # notify by hand, timed
                    r = await c.post("/intake/health?service=checkout", json=DEGRADED, headers=key)
                    iid = r.json()["incident"]["incident_id"]
                    state = await rt.engine.get("acme", iid)
                    sent0 = len(tw.sent)
                    t0 = time.perf_counter()
                    await rt.notifier.notify_level(state, 0)
                    t1 = time.perf_counter()
                    for level in range(1, 10):
                        await rt.notifier.notify_level(state, level)
                    t2 = time.perf_counter()
                    assert len(tw.sent) - sent0 == 10, (len(tw.sent), sent0)
                    assert rt.acknowledger is not None
                    sent1 = len(tw.sent)
                    t3 = time.perf_counter()
                    await rt.acknowledger.acknowledge("acme", iid, "person:p9", "bench")
                    t4 = time.perf_counter()
                    assert len(tw.sent) - sent1 == 9
                    first.append(t1 - t0)
                    walk.append(t2 - t0)
                    told.append(t4 - t3)
                await rt.http.aclose()
            print(f"  fan-out run {run + 1}: walk {walk[-1] * 1000:.0f} ms", file=sys.stderr)
    return {
        "first_ms": statistics.median(first) * 1000,
        "walk_ms": statistics.median(walk) * 1000,
        "ack_notice_ms": statistics.median(told) * 1000,
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--runs", type=int, default=5, help="fan-out runs (median)")
    ap.add_argument("--backend", choices=["sqlite", "memory", "both"], default="both")
    ap.add_argument(
        "--transport",
        choices=["loopback", "in-process", "both"],
        default="both",
        help="how the orchestrator reaches the fake providers in the fan-out",
    )
    args = ap.parse_args()
    backends = ["sqlite", "memory"] if args.backend == "both" else [args.backend]
    for b in backends:
        press = await press_latency(b, args.presses)
        print(
            f"{b}: quick-reply press -> AUTHORIZED over {args.presses} presses: "
            f"p50 {press['p50']:.1f} ms, p99 {press['p99']:.1f} ms, max {press['max']:.1f} ms"
        )
        modes = ["loopback", "in-process"] if args.transport == "both" else [args.transport]
        for mode in modes:
            fo = await fan_out(b, args.runs, mode == "in-process")
            print(
                f"{b}, providers {mode}: 10 people x 3 channels (Telegram down): first person "
                f"told {fo['first_ms']:.0f} ms, all 10 levels {fo['walk_ms']:.0f} ms, ack "
                f"notice to the 9 others {fo['ack_notice_ms']:.0f} ms (median of {args.runs})"
            )


if __name__ == "__main__":
    asyncio.run(main())
