"""Issue 3's end-to-end: a real instrumented app under uvicorn gets slow, the orchestrator
(polling over HTTP) opens exactly one incident, health returns, policy moves it to RECOVERED;
the ledger verifies and replays to exactly the live state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from alertengine import instrument
from alertengine.demo import _serve, _traffic
from alertengine.demo_parts import Chaos, shop_app
from alertengine.incidents import Stage
from alertengine.ledger.replay import replay
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.poller import snapshot_from_health
from alertengine.orchestrator.runtime import build_runtime, sync_tenants
from alertengine.orchestrator.service import Orchestrator
from alertengine.orchestrator.settings import Settings
from alertengine.sdk.config import SDKConfig
from alertengine.stores.factory import open_stores
from tests.support.redis_server import free_port


async def until(pred: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await pred():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def full_ticks(orch: Orchestrator, n: int, timeout_s: float = 30) -> None:
    """Wait for ``n`` more loop ticks to end: with ``n = 2`` at least one whole tick (poll,
    observe, hooks) ran entirely after this call."""
    target = orch.stats.ticks + n

    async def done() -> bool:
        return orch.stats.ticks >= target

    await until(done, timeout_s, f"the orchestrator's loop did not tick {n} times")


async def test_slow_app_opens_one_incident_and_policy_recovers_it(tmp_path):
    chaos = Chaos()
    shop = shop_app(chaos)
    instrument(shop, service="shop", config=SDKConfig(service="shop", window_s=5))
    port = free_port()
    config = parse_config(
        {
            "orchestrator": {"loop_interval_s": 0.5},
            "tenants": [
                {
                    "id": "t1",
                    "approvers": [{"channel": "web", "address": "alice"}],
                    "policy": {"open_p95_ms": 500, "min_sample_size": 5, "recover_polls": 2},
                }
            ],
            "targets": [
                {
                    "tenant": "t1",
                    "service": "shop",
                    "health_url": f"http://127.0.0.1:{port}/health/alerts",
                }
            ],
        }
    )
    ledger, store = open_stores(f"sqlite:///{tmp_path / 'ae.db'}", ledger_key=b"k" * 32)
    rt = await build_runtime(
        config, ledger=ledger, store=store, settings=Settings.from_env({"ALERT_SECRET": "s" * 40})
    )
    await sync_tenants(rt)
    stop = asyncio.Event()
    async with _serve(shop, port):
        traffic = asyncio.create_task(_traffic(f"http://127.0.0.1:{port}", stop, concurrency=6))
        loop = asyncio.create_task(rt.orch.run())
        try:
            # Healthy traffic opens nothing: checked once the app's window holds enough
            # requests to be judged and two whole polls of it have been observed.
            async with httpx.AsyncClient(timeout=5) as c:

                async def judgeable() -> bool:
                    r = await c.get(f"http://127.0.0.1:{port}/health/alerts")
                    snap = snapshot_from_health(r.json(), observed_at=time.time())
                    return snap.sample_size >= 20

                await until(judgeable, 30, "the app's window never filled")
            await full_ticks(rt.orch, 3)
            assert await rt.engine.incidents("t1") == []
            chaos.latency_s = 0.8
            deadline = time.monotonic() + 40
            while not await rt.engine.incidents("t1") and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            (opened,) = await rt.engine.incidents("t1")
            await full_ticks(rt.orch, 4)  # the spike goes on, polled: still one incident
            assert len(await rt.engine.incidents("t1")) == 1
            chaos.latency_s = 0.0
            while time.monotonic() < deadline:
                s = await rt.engine.get("t1", opened.incident_id)
                if s is not None and not s.is_open:
                    break
                await asyncio.sleep(0.2)
        finally:
            rt.orch.stop()
            await loop
            stop.set()
            traffic.cancel()
    final = await rt.engine.get("t1", opened.incident_id)
    assert final is not None and final.stage is Stage.RECOVERED
    assert final.history[-1].actor == "policy"
    assert len(await rt.engine.incidents("t1")) == 1
    assert (await ledger.verify("t1")).ok
    replayed = await replay(ledger, "t1")
    assert replayed == {s.incident_id: s for s in await rt.engine.incidents("t1")}
    await rt.http.aclose()
    await ledger.close()
    await store.close()
