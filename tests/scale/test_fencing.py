"""Replicas in one process (real components, real redis-server): pushed health reaching every
replica at once is fenced by the engine. (The Redis outage, with real processes:
test_redis_restart.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import tomllib

from alertengine.demo import _serve
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores.factory import open_stores
from tests.scale.cluster import (
    CRITICAL,
    PUSHED,
    SECRETS,
    TENANT,
    Receiver,
    config_toml,
    duplicates,
    transitions,
)
from tests.support.redis_server import free_port

pytestmark = pytest.mark.redis

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
