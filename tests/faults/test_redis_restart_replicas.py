"""Issue 10, Redis restarted under two ``alertengine serve`` replicas mid-incident.

An incident waits for approval when redis-server is SIGKILLed. Both replicas must say
EMERGENCY (``/healthz`` 503) and let nothing run — an approval tried meanwhile changes
nothing; after the restart they come back by themselves, no sooner than the hysteresis
allows (RECOVER_AFTER_S of good checks) and once each; then the same link runs the recovery
webhook exactly once, no ``_system`` entry is written twice, and every chain verifies.
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from alertengine.demo import _serve
from alertengine.ledger import LedgerQuery
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.orchestrator.mode import RECOVER_AFTER_S
from tests.scale.cluster import (
    ADMIN,
    CRITICAL,
    PUSHED,
    SECRETS,
    TENANT,
    AofRedis,
    Proc,
    Receiver,
    config_toml,
    duplicates,
    orch_proc,
    transitions,
    until,
    wait_http,
)
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def _health(orchs: list[str]) -> list[tuple[int, str]]:
    async with httpx.AsyncClient(timeout=2) as c:
        out = []
        for o in orchs:
            r = await c.get(f"{o}/healthz")
            out.append((r.status_code, r.json()["mode"]))
        return out


async def _ticks(orchs: list[str]) -> list[int]:
    async with httpx.AsyncClient(timeout=2, headers=ADMIN) as c:
        return [(await c.get(f"{o}/__alertengine/status")).json()["stats"]["ticks"] for o in orchs]


@pytest.mark.timeout(180)
async def test_redis_restart_mid_incident_runs_the_recovery_once(tmp_path: Path) -> None:
    redis = AofRedis(tmp_path)
    redis.start()
    orch_ports, rx_port = [free_port(), free_port()], free_port()
    orchs = [f"http://127.0.0.1:{p}" for p in orch_ports]
    cfg = tmp_path / "alertengine.toml"
    cfg.write_text(config_toml(base_url=orchs[0], receiver=f"http://127.0.0.1:{rx_port}"))
    procs: list[Proc] = [
        orch_proc(cfg, p, redis.url, tmp_path / f"orch{i}.log") for i, p in enumerate(orch_ports)
    ]
    rx = Receiver()
    ledger: RedisLedgerStore | None = None
    try:
        async with _serve(rx.app(), rx_port), httpx.AsyncClient(timeout=10) as c:
            for base in orchs:
                await wait_http(f"{base}/healthz", 60, procs)
            for _ in range(3):
                r = await c.post(
                    f"{orchs[1]}/intake/health",
                    params={"service": PUSHED, "tenant": TENANT},
                    json=CRITICAL,
                    headers=ADMIN,
                )
                assert r.status_code == 202, r.text

            async def asked() -> list[dict[str, Any]]:
                return rx.messages

            (msg,) = await until(asked, 30, "nobody was asked to approve")
            token = parse_qs(urlsplit(str(msg["approve_url"])).query)["token"][0]

            redis.kill()

            async def emergency() -> bool:
                return await _health(orchs) == [(503, "EMERGENCY")] * 2

            await until(emergency, 20, "the replicas did not go EMERGENCY")
            async with httpx.AsyncClient(timeout=10) as once:  # a 500 closes its connection
                r = await once.post(f"{orchs[0]}/action/recover/confirm", data={"token": token})
            assert r.status_code != 200, r.text  # nothing can be recorded: nothing runs
            assert rx.recoveries == []

            redis.start()  # same port, same AOF
            restarted = time.monotonic()

            async def normal() -> bool:
                return await _health(orchs) == [(200, "NORMAL")] * 2

            await until(normal, 40, "the replicas did not return to NORMAL")
            back_after = time.monotonic() - restarted
            # Hysteresis: back only after RECOVER_AFTER_S of good checks (less one tick of
            # the last failure seen before Redis answered), not at the first good answer.
            assert back_after >= RECOVER_AFTER_S - 1.0, back_after

            r = await c.post(f"{orchs[1]}/action/recover/confirm", data={"token": token})
            assert r.status_code == 200, r.text

            ledger = RedisLedgerStore(redis.url, key=SECRETS["ALERTENGINE_LEDGER_KEY"].encode())
            chain = ledger

            async def executed() -> bool:
                return bool(rx.recoveries) and any(
                    e.stage == "EXECUTED" for e in await transitions(chain)
                )

            await until(executed, 30, "the recovery did not run after Redis came back")
            # Anything late (a second call from the other replica, a resumed duplicate)
            # would show within a few ticks of both replicas.
            start = await _ticks(orchs)

            async def ticked() -> bool:
                return all(n >= s + 6 for n, s in zip(await _ticks(orchs), start, strict=True))

            await until(ticked, 30, "the replicas stopped ticking")

        assert len(rx.recoveries) == 1, rx.recoveries
        moves = await transitions(ledger)
        assert duplicates(moves) == []
        assert [e.stage for e in moves if e.stage in ("AUTHORIZED", "EXECUTED")] == [
            "AUTHORIZED",
            "EXECUTED",
        ]
        for tenant in await ledger.tenants():
            assert (await ledger.verify(tenant)).ok, tenant
        system = await ledger.read(LedgerQuery(tenant_id="_system", limit=1000))
        contents = [(e.timestamp, e.reason, json.dumps(e.data, sort_keys=True)) for e in system]
        assert len(set(contents)) == len(contents), contents
        by_replica: dict[str, list[str]] = collections.defaultdict(list)
        for e in system:
            if e.kind == "mode":
                by_replica[e.data["replica"]].append(e.decision)
        assert sorted(by_replica.values()) == [["EMERGENCY", "NORMAL"]] * 2, by_replica
        print(f"back to NORMAL {back_after:.1f} s after Redis restarted")
    finally:
        if ledger is not None:
            await ledger.close()
        for p in procs:
            p.stop()
        redis.stop()
