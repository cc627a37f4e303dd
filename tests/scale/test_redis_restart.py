"""Issues 7 and 10, Redis outage, with real processes only: three instrumented app processes
(each polled as its own target) and two ``alertengine serve`` processes share one redis-server
(AOF, fsync always). The server is SIGKILLed mid-run and restarted on the same port: the apps
keep serving and buffer their metrics, then flush them (none dropped); every orchestrator goes
EMERGENCY and back to NORMAL by itself, once each; the apps, which cannot measure themselves
while their store is down, are reported blind and no incident opens on them; no ``_system``
entry is written twice; every ledger entry written before the outage is still there,
unchanged, and the chains verify."""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertengine.demo import _serve
from alertengine.ledger import LedgerQuery
from alertengine.ledger.redis import RedisLedgerStore
from tests.scale.cluster import (
    ADMIN,
    CRITICAL,
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


async def _modes(orchs: list[str]) -> list[str]:
    async with httpx.AsyncClient(timeout=2) as c:
        return [(await c.get(f"{o}/healthz")).json()["mode"] for o in orchs]


POLLED = ["shop", "shop-b", "shop-c"]  # one target per app process


def _more_targets(apps: list[str], receiver: str) -> str:
    return "".join(
        f"""
[[targets]]
tenant = "{TENANT}"
service = "{service}"
health_url = "{app}/health/alerts"
recovery_webhook = "{receiver}/recover"
webhook_secret_env = "SCALE_RECOVERY_SECRET"
poll_timeout_s = 1.0
"""
        for service, app in zip(POLLED[1:], apps[1:], strict=True)
    )


async def _statuses(orchs: list[str]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=2, headers=ADMIN) as c:
        return [(await c.get(f"{o}/__alertengine/status")).json() for o in orchs]


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
    receiver = f"http://127.0.0.1:{rx_port}"
    toml = config_toml(base_url=orchs[0], receiver=receiver, health_url=f"{apps[0]}/health/alerts")
    # Only an outage of the apps themselves may open an incident here, not a slow shared box.
    toml = toml.replace("open_p95_ms = 300", "open_p95_ms = 20000")
    cfg.write_text(toml + _more_targets(apps, receiver))
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
            ledger = RedisLedgerStore(redis.url, key=SECRETS["ALERTENGINE_LEDGER_KEY"].encode())

            async def settled() -> dict[str, list[str]] | None:
                statuses = await _statuses(orchs)
                polled = sum(st["stats"]["polls"] for st in statuses)
                hashes = await _hashes(ledger)
                calm = await _modes(orchs) == ["NORMAL", "NORMAL"]
                return hashes if calm and polled >= 6 and len(hashes.get(TENANT, [])) >= 4 else None

            try:
                before = await until(settled, 30, "no incident entries / polls before the outage")
            finally:
                await ledger.close()
            published_before = sum(i["published_buckets"] for i in await _ingestion(apps))

            # Every status either replica gives, all along the outage and the way back.
            seen_blind: set[str] = set()
            watching = asyncio.Event()

            async def watch() -> None:
                while not watching.is_set():
                    for st in await _statuses(orchs):
                        seen_blind.update(b["service"] for b in st["blind_targets"])
                    await asyncio.sleep(0.1)

            watcher = asyncio.create_task(watch())
            redis.kill()  # SIGKILL: no shutdown, no final save (AOF fsync'd on every write)
            ok_before = stats["200"]

            async def emergency() -> bool:
                return await _modes(orchs) == ["EMERGENCY", "EMERGENCY"]

            await until(emergency, 20, "orchestrators did not go EMERGENCY")

            async def serving_and_buffering() -> bool:
                ingestion = await _ingestion(apps)
                return stats["200"] - ok_before > 50 and all(
                    i["buffered_buckets"] > 0 for i in ingestion
                )

            # The apps keep serving, and measuring, with their store gone.
            await until(serving_and_buffering, 20, "apps stopped serving or buffering")

            async def all_blind() -> bool:
                return seen_blind >= set(POLLED)

            await until(all_blind, 20, f"targets not reported blind (saw {seen_blind})")

            redis.start()  # same port, same AOF

            async def normal() -> bool:
                return await _modes(orchs) == ["NORMAL", "NORMAL"]

            await until(normal, 30, "orchestrators did not return to NORMAL")

            async def flushed() -> bool:
                return all(i["buffered_buckets"] == 0 for i in await _ingestion(apps))

            await until(flushed, 30, "apps did not flush their buffered metrics")

            async def sighted() -> bool:  # every app measures itself again: nobody is blind
                return all(not st["blind_targets"] for st in await _statuses(orchs))

            await until(sighted, 30, "targets still blind after Redis came back")
            watching.set()
            await watcher
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
            system = await ledger.read(LedgerQuery(tenant_id="_system", limit=1000))
            assert (await ledger.verify("_system")).ok
            # No entry written twice (main: one mode entry twice, same time, same content).
            contents = [
                (e.timestamp, e.kind, e.decision, e.reason, json.dumps(e.data, sort_keys=True))
                for e in system
            ]
            assert len(set(contents)) == len(contents), contents
            # Each replica ledgered going EMERGENCY and coming back once: one outage, one
            # change each way (hysteresis), written once Redis answered.
            by_replica: dict[str, list[str]] = collections.defaultdict(list)
            for e in system:
                if e.kind == "mode":
                    by_replica[e.data["replica"]].append(e.decision)
            assert len(by_replica) == 2, by_replica
            for decisions in by_replica.values():
                assert decisions == ["EMERGENCY", "NORMAL"], by_replica
            moved = await transitions(ledger)
            assert duplicates(moved) == []
            # An app's own store outage is not the app's outage: no incident on any of them.
            opened = [e for e in moved if e.stage == "DETECTED" and e.data["service"] in POLLED]
            assert opened == [], [(e.data["service"], e.reason) for e in opened]
        finally:
            await ledger.close()
    finally:
        stop.set()
        for p in procs:
            p.stop()
        redis.stop()
