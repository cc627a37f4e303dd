"""Issue 7, Redis outage, with real processes only: three instrumented app processes and two
``alertengine serve`` processes share one redis-server (AOF, fsync always). The server is
SIGKILLed mid-run and restarted on the same port: the apps keep serving and buffer their
metrics, then flush them (none dropped); every orchestrator goes EMERGENCY and back to NORMAL
by itself; every ledger entry written before the outage is still there, unchanged, and the
chains verify."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertengine.demo import _serve
from alertengine.ledger import LedgerQuery
from alertengine.ledger.redis import RedisLedgerStore
from tests.scale.cluster import (
    PUSHED,
    SECRETS,
    TENANT,
    AofRedis,
    Proc,
    Receiver,
    app_proc,
    config_toml,
    duplicates,
    load,
    orch_proc,
    transitions,
    until,
    wait_http,
)
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ADMIN = {"Authorization": f"Bearer {SECRETS['ALERTENGINE_ADMIN_KEY']}"}
CRITICAL = {
    "service": PUSHED,
    "status": "critical",
    "health_score": {"score": 12.0, "status": "critical"},
    "metrics": {"overall_p95_ms": 2400.0, "error_rate_5xx": 0.3, "sample_size": 500},
}


async def _modes(orchs: list[str]) -> list[str]:
    async with httpx.AsyncClient(timeout=2) as c:
        return [(await c.get(f"{o}/healthz")).json()["mode"] for o in orchs]


async def _ingestion(apps: list[str]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=2) as c:
        return [(await c.get(f"{a}/metrics/ingestion")).json() for a in apps]


async def _hashes(ledger: RedisLedgerStore) -> dict[str, list[str]]:
    return {
        t: [e.hash for e in await ledger.read(LedgerQuery(tenant_id=t, limit=100_000))]
        for t in await ledger.tenants()
    }


@pytest.mark.timeout(150)
async def test_redis_killed_and_restarted_mid_run_loses_nothing(tmp_path: Path) -> None:
    redis = AofRedis(tmp_path)
    redis.start()
    app_ports = [free_port() for _ in range(3)]
    orch_ports = [free_port() for _ in range(2)]
    rx_port = free_port()
    apps = [f"http://127.0.0.1:{p}" for p in app_ports]
    orchs = [f"http://127.0.0.1:{p}" for p in orch_ports]
    cfg = tmp_path / "alertengine.toml"
    cfg.write_text(
        config_toml(
            base_url=orchs[0],
            receiver=f"http://127.0.0.1:{rx_port}",
            health_url=f"{apps[0]}/health/alerts",
        )
    )
    procs: list[Proc] = [
        app_proc(p, redis.url, tmp_path / f"app{i}.log") for i, p in enumerate(app_ports)
    ]
    procs += [orch_proc(cfg, p, redis.url, tmp_path / f"orch{i}.log")
              for i, p in enumerate(orch_ports)]  # fmt: skip
    stop = asyncio.Event()
    stats: collections.Counter[str] = collections.Counter()
    rx = Receiver()
    try:
        async with _serve(rx.app(), rx_port):
            for base in apps:
                await wait_http(f"{base}/health/alerts", 60, procs)
            for base in orchs:
                await wait_http(f"{base}/healthz", 60, procs)
            traffic = asyncio.create_task(load(apps, stop, stats, max_requests=40_000))
            # Something worth losing: an incident's entries (pushed bad news), then the outage.
            async with httpx.AsyncClient(timeout=5, headers=ADMIN) as c:
                for _ in range(3):
                    r = await c.post(
                        f"{orchs[1]}/intake/health",
                        params={"service": PUSHED, "tenant": TENANT},
                        json=CRITICAL,
                    )
                    assert r.status_code == 202, r.text
            await asyncio.sleep(2)
            assert await _modes(orchs) == ["NORMAL", "NORMAL"]
            ledger = RedisLedgerStore(redis.url, key=SECRETS["ALERTENGINE_LEDGER_KEY"].encode())
            try:
                before = await _hashes(ledger)
            finally:
                await ledger.close()
            assert len(before.get(TENANT, [])) >= 4
            published_before = sum(i["published_buckets"] for i in await _ingestion(apps))

            redis.kill()  # SIGKILL: no shutdown, no final save (AOF fsync'd on every write)
            ok_before = stats["200"]

            async def emergency() -> bool:
                return await _modes(orchs) == ["EMERGENCY", "EMERGENCY"]

            await until(emergency, 20, "orchestrators did not go EMERGENCY")
            await asyncio.sleep(2)
            assert stats["200"] - ok_before > 50  # the apps keep serving
            ingestion = await _ingestion(apps)
            assert all(i["buffered_buckets"] > 0 for i in ingestion), ingestion  # and measuring

            redis.start()  # same port, same AOF

            async def normal() -> bool:
                return await _modes(orchs) == ["NORMAL", "NORMAL"]

            await until(normal, 30, "orchestrators did not return to NORMAL")

            async def flushed() -> bool:
                return all(i["buffered_buckets"] == 0 for i in await _ingestion(apps))

            await until(flushed, 30, "apps did not flush their buffered metrics")
            stop.set()
            await traffic
            ingestion = await _ingestion(apps)

        assert all(i["dropped"] == 0 for i in ingestion), ingestion
        assert sum(i["published_buckets"] for i in ingestion) > published_before
        assert stats["sent"] == sum(v for k, v in stats.items() if k != "sent")
        assert set(stats) <= {"sent", "200"}, stats  # not one request failed
        ledger = RedisLedgerStore(redis.url, key=SECRETS["ALERTENGINE_LEDGER_KEY"].encode())
        try:
            after = await _hashes(ledger)
            for tenant, hashes in before.items():
                assert after[tenant][: len(hashes)] == hashes  # every entry, unchanged
                assert (await ledger.verify(tenant)).ok
            modes = [
                e.decision
                for e in await ledger.read(LedgerQuery(tenant_id="_system", limit=1000))
                if e.kind == "mode"
            ]
            # Both replicas ledgered going EMERGENCY and coming back, once Redis answered.
            assert modes.count("EMERGENCY") >= 2 and modes.count("NORMAL") >= 2, modes
            assert duplicates(await transitions(ledger)) == []
        finally:
            await ledger.close()
    finally:
        stop.set()
        for p in procs:
            p.stop()
        redis.stop()
