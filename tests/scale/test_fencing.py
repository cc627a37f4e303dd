"""Replicas in one process (real components, real redis-server): pushed health reaching every
replica at once is fenced by the engine; a redis-server killed and restarted mid-run loses no
ledger entry, the apps keep serving and flush what they buffered, and every orchestrator goes
EMERGENCY and back to NORMAL by itself."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomllib

from alertengine.demo import _serve
from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores.factory import open_stores
from tests.scale.app_worker import build as build_app
from tests.scale.cluster import (
    PUSHED,
    SECRETS,
    TENANT,
    AofRedis,
    Receiver,
    config_toml,
    duplicates,
    load,
    transitions,
)
from tests.support.redis_server import free_port

pytestmark = pytest.mark.redis

CRITICAL = {
    "service": PUSHED,
    "status": "critical",
    "health_score": {"score": 12.0, "status": "critical"},
    "metrics": {"overall_p95_ms": 2400.0, "error_rate_5xx": 0.3, "sample_size": 500},
}
HEALTHY = {
    "service": PUSHED,
    "status": "ok",
    "health_score": {"score": 99.0, "status": "ok"},
    "metrics": {"overall_p95_ms": 20.0, "error_rate_5xx": 0.0, "sample_size": 500},
}


@contextlib.asynccontextmanager
async def replicas(
    url: str, n: int, rx_port: int, health_url: str = ""
) -> AsyncIterator[list[Runtime]]:
    raw = config_toml(
        base_url="http://127.0.0.1:1", receiver=f"http://127.0.0.1:{rx_port}", health_url=health_url
    )
    config = parse_config(tomllib.loads(raw))
    rts: list[Runtime] = []
    try:
        for _ in range(n):
            ledger, store = open_stores(url, ledger_key=SECRETS["ALERTENGINE_LEDGER_KEY"].encode())
            rt = await build_runtime(
                config, ledger=ledger, store=store, settings=Settings.from_env(SECRETS)
            )
            rts.append(rt)
        yield rts
    finally:
        for rt in rts:
            await rt.drain()
            await rt.http.aclose()
            await rt.ledger.close()
            await rt.store.close()


async def test_pushed_health_at_every_replica_at_once_opens_one_incident(redis_server):
    rx = Receiver()
    rx_port = free_port()
    async with _serve(rx.app(), rx_port), replicas(redis_server.url, 3, rx_port) as rts:
        await sync_tenants(rts[0])
        key = await rts[0].registry.rotate_key(TENANT)
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(rt, run_loop=False)),
                base_url="http://replica",
                headers={"Authorization": f"Bearer {key}"},
            )
            for rt in rts
        ]
        try:

            async def push_everywhere(body: dict[str, Any]) -> None:
                rs = await asyncio.gather(
                    *(c.post("/intake/health", params={"service": PUSHED}, json=body)
                      for c in clients)
                )  # fmt: skip
                assert all(r.status_code == 202 for r in rs), [r.text for r in rs]

            for _ in range(6):  # the same bad news, at all three replicas at once
                await push_everywhere(CRITICAL)
            for _ in range(3):
                await push_everywhere(HEALTHY)
        finally:
            for c in clients:
                await c.aclose()
        moves = await transitions(rts[0].ledger)
        assert len({e.incident_id for e in moves}) == 1
        assert duplicates(moves) == []
        stages = [e.stage for e in moves]
        assert stages == ["DETECTED", "PROPOSED", "VALIDATED", "RECOVERED"]
        assert len(rx.messages) == 1  # only the replica that moved it to VALIDATED notified
        assert (await rts[0].ledger.verify(TENANT)).ok


async def _modes(orchs: list[str]) -> list[str]:
    out = []
    async with httpx.AsyncClient(timeout=2) as c:
        for o in orchs:
            out.append((await c.get(f"{o}/healthz")).json()["mode"])
    return out


async def _entries(rt: Runtime) -> dict[str, list[str]]:
    return {
        t: [e.hash for e in await rt.ledger.read(LedgerQuery(tenant_id=t, limit=100_000))]
        for t in await rt.ledger.tenants()
    }


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_redis_killed_and_restarted_mid_run_loses_nothing(tmp_path: Path):
    redis = AofRedis(tmp_path)
    redis.start()
    rx = Receiver()
    rx_port = free_port()
    app_ports = [free_port() for _ in range(3)]
    orch_ports = [free_port() for _ in range(2)]
    apps = [build_app(redis.url) for _ in app_ports]
    sdks = [a.state.alertengine for a in apps]
    app_urls = [f"http://127.0.0.1:{p}" for p in app_ports]
    orchs = [f"http://127.0.0.1:{p}" for p in orch_ports]
    stop = asyncio.Event()
    stats: collections.Counter[str] = collections.Counter()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(_serve(rx.app(), rx_port))
            for a, p in zip(apps, app_ports, strict=True):
                await stack.enter_async_context(_serve(a, p))
            rts = await stack.enter_async_context(
                replicas(redis.url, 2, rx_port, health_url=f"{app_urls[0]}/health/alerts")
            )
            for rt, p in zip(rts, orch_ports, strict=True):
                await stack.enter_async_context(_serve(create_app(rt), p))
            traffic = asyncio.create_task(load(app_urls, stop, stats, max_requests=40_000))
            # Something worth losing: an incident's entries, then the outage.
            for _ in range(3):
                await rts[0].orch.push_health(TENANT, PUSHED, CRITICAL)
            await asyncio.sleep(2)
            assert await _modes(orchs) == ["NORMAL", "NORMAL"]
            before = await _entries(rts[0])
            assert sum(len(v) for v in before.values()) >= 4
            published_before = sum(s.publisher.counters.published_buckets for s in sdks)

            redis.kill()  # SIGKILL: no shutdown, no final save (AOF fsync'd every write)
            ok_before = stats["200"]
            deadline = time.monotonic() + 20
            while await _modes(orchs) != ["EMERGENCY", "EMERGENCY"]:
                assert time.monotonic() < deadline, await _modes(orchs)
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)
            assert stats["200"] - ok_before > 50  # the apps keep serving
            assert all(s.publisher.buffered_buckets > 0 for s in sdks)  # and keep measuring

            redis.start()  # same port, same AOF
            deadline = time.monotonic() + 30
            while await _modes(orchs) != ["NORMAL", "NORMAL"]:
                assert time.monotonic() < deadline, await _modes(orchs)
                await asyncio.sleep(0.2)
            while any(s.publisher.buffered_buckets for s in sdks):
                assert time.monotonic() < deadline, [s.ingestion() for s in sdks]
                await asyncio.sleep(0.2)
            stop.set()
            await traffic

            assert all(s.publisher.counters.dropped == 0 for s in sdks)
            assert sum(s.publisher.counters.published_buckets for s in sdks) > published_before
            assert stats["sent"] == sum(v for k, v in stats.items() if k != "sent")
            assert set(stats) <= {"sent", "200"}  # not one request failed
            after = await _entries(rts[0])
            for tenant, hashes in before.items():
                assert after[tenant][: len(hashes)] == hashes  # every entry, unchanged
                assert (await rts[0].ledger.verify(tenant)).ok
            modes = [
                e.decision
                for e in await rts[0].ledger.read(LedgerQuery(tenant_id="_system", limit=1000))
                if e.kind == "mode"
            ]
            assert modes.count("EMERGENCY") >= 2 and modes.count("NORMAL") >= 2  # both replicas
            moves = await transitions(rts[0].ledger)
            assert duplicates(moves) == []
            # (The apps share this process's event loop with everything else, so their measured
            # latency can spike while the loop is busy: policy may open an incident on it. What
            # matters here is that nothing happened twice and nothing was lost.)
    finally:
        stop.set()
        redis.stop()
