"""Issue 7 with real processes: three ``alertengine serve`` replicas and three instrumented app
replicas sharing one redis-server, under bounded traffic. A latency spike gives exactly one
incident, one message, one execution; SIGKILL of the replica driving it mid-incident does not
stop it: another takes the lease over and finishes; the ledger verifies, nothing twice."""

from __future__ import annotations

import asyncio
import collections
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from alertengine.demo import _serve
from alertengine.incidents import Stage
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.replay import replay
from alertengine.orchestrator.leases import target_lease
from alertengine.stores.redis import RedisStateStore
from tests.scale.cluster import (
    ADMIN,
    SECRETS,
    SERVICE,
    TENANT,
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


async def loop_stats(orchs: list[str]) -> list[dict[str, Any]]:
    """Each replica's loop counters (``/__alertengine/status``): its polls, its ticks."""
    async with httpx.AsyncClient(timeout=5, headers=ADMIN) as c:
        out = []
        for o in orchs:
            r = await c.get(f"{o}/__alertengine/status")
            assert r.status_code == 200, r.text
            out.append(r.json()["stats"])
        return out


async def good_polls(orchs: list[str]) -> int:
    """Successful polls of the target, all replicas together (only the lease holder polls)."""
    return sum(s["polls"] - s["poll_failures"] for s in await loop_stats(orchs))


async def full_ticks_after_now(orchs: list[str], n: int, timeout_s: float, what: str) -> None:
    """Wait until every replica in ``orchs`` has finished ``n`` more loop ticks: the tick
    counter moves at the end of a tick, so ``n = 2`` means at least one whole tick (poll,
    observe, sweep and resume hooks) ran entirely after this call."""
    base = [s["ticks"] for s in await loop_stats(orchs)]

    async def done() -> bool:
        now = [s["ticks"] for s in await loop_stats(orchs)]
        return all(b + n <= t for b, t in zip(base, now, strict=True))

    await until(done, timeout_s, what)


@pytest.mark.timeout(150)
async def test_three_orchestrators_three_apps_spike_kill_one_mid_incident(redis_server, tmp_path):
    url = redis_server.url
    app_ports = [free_port() for _ in range(3)]
    orch_ports = [free_port() for _ in range(3)]
    rx_port = free_port()
    apps = [f"http://127.0.0.1:{p}" for p in app_ports]
    orchs = [f"http://127.0.0.1:{p}" for p in orch_ports]
    cfg = tmp_path / "alertengine.toml"
    cfg.write_text(
        config_toml(
            base_url=orchs[0],
            receiver=f"http://127.0.0.1:{rx_port}",
            health_url=f"{apps[0]}/health/alerts",  # any replica answers for all (shared Redis)
        )
    )

    async def calm_all() -> None:
        async with httpx.AsyncClient(timeout=5) as c:
            for a in apps:
                await c.post(f"{a}/chaos", json={"latency_s": 0.0})

    rx = Receiver(on_recover=calm_all)
    app_procs = [app_proc(p, url, tmp_path / f"app{i}.log") for i, p in enumerate(app_ports)]
    orch_procs = [
        orch_proc(cfg, p, url, tmp_path / f"orch{i}.log") for i, p in enumerate(orch_ports)
    ]
    procs = app_procs + orch_procs
    ledger = RedisLedgerStore(url, key=SECRETS["ALERTENGINE_LEDGER_KEY"].encode())
    store = RedisStateStore(url)
    stop = asyncio.Event()
    stats: collections.Counter[str] = collections.Counter()
    try:
        async with _serve(rx.app(), rx_port):
            for base in apps:
                await wait_http(f"{base}/health/alerts", 60, procs)
            for base in orchs:
                await wait_http(f"{base}/healthz", 60, procs)
            traffic = asyncio.create_task(load(apps, stop, stats, max_requests=50_000))

            # Healthy traffic opens nothing: not "nothing after a while", but nothing after
            # the orchestrators have judged this traffic. Once the shared window holds well
            # over min_sample_size requests, wait for three more polls of it to start: the
            # first two of those have then been observed (and would have opened one).
            async def traffic_flowing() -> bool:
                return stats["200"] >= 50

            await until(traffic_flowing, 60, "no healthy traffic reached the apps")
            seen = await good_polls(orchs)

            async def judged() -> bool:
                return await good_polls(orchs) >= seen + 3

            await until(judged, 30, "the orchestrators did not poll the target")
            assert await transitions(ledger) == []
            # Exactly one replica polls the target; all three hold some lease or none.
            holder = await store.lease_holder(target_lease(TENANT, SERVICE))
            assert holder is not None

            async with httpx.AsyncClient(timeout=5) as c:
                for a in apps:
                    await c.post(f"{a}/chaos", json={"latency_s": 0.6})

            async def validated():  # type: ignore[no-untyped-def]
                return rx.messages and [
                    e for e in await transitions(ledger) if e.stage == Stage.VALIDATED.value
                ]

            await until(validated, 45, "no VALIDATED incident and message")
            # Kill whichever replica drives the target now, mid-incident, without warning.
            holder = await store.lease_holder(target_lease(TENANT, SERVICE))
            assert holder is not None
            victim = next(p for p in orch_procs if f":{p.pid}:" in holder)
            victim.kill()
            survivors = [o for o, p in zip(orchs, orch_procs, strict=True) if p is not victim]

            msg = rx.messages[0]
            token = parse_qs(urlsplit(str(msg["approve_url"])).query)["token"][0]
            async with httpx.AsyncClient(timeout=10) as c:
                # The link may point at the dead replica: any replica redeems it.
                form = {"token": token}
                r = await c.post(f"{survivors[0]}/action/recover/confirm", data=form)
                assert r.status_code == 200, r.text
                again = await c.post(f"{survivors[1]}/action/recover/confirm", data=form)
                assert again.status_code != 200  # single use, across replicas

            async def resolved():  # type: ignore[no-untyped-def]
                return [e for e in await transitions(ledger) if e.stage == Stage.RESOLVED.value]

            await until(resolved, 45, "the incident did not resolve after the kill")
            new_holder = await store.lease_holder(target_lease(TENANT, SERVICE))
            assert new_holder is not None and f":{victim.pid}:" not in new_holder
            # Anything late (a second call, message or stage entry) would come from a
            # survivor's loop: let each finish a whole tick that began after RESOLVED.
            await full_ticks_after_now(survivors, 2, 30, "the survivors' loops stalled")
            stop.set()
            await traffic

        moves = await transitions(ledger)
        assert len({e.incident_id for e in moves}) == 1  # exactly one incident
        assert duplicates(moves) == []  # no stage entered twice
        assert [e.stage for e in moves] == [
            "DETECTED", "PROPOSED", "VALIDATED", "AUTHORIZED", "EXECUTED", "RESOLVED",
        ]  # fmt: skip
        assert len(rx.messages) == 1  # one message on the one channel
        assert len(rx.recoveries) == 1  # one webhook call
        assert (await ledger.verify(TENANT)).ok
        states = await replay(ledger, TENANT)
        (state,) = states.values()
        assert state.stage is Stage.RESOLVED
        assert stats["200"] > 200 and stats["sent"] <= 50_000
    finally:
        stop.set()
        for p in procs:
            p.stop()
        await ledger.close()
        await store.close()
