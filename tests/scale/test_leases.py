"""Per-target leases on a real redis-server: one holder at a time, renewal, takeover on expiry,
release on a clean stop, and what a replica does while the store is unreachable."""

from __future__ import annotations

import asyncio

import pytest

from alertengine.orchestrator.leases import SWEEP, Leases, lease_ttl_for, target_lease
from alertengine.stores.redis import RedisStateStore

pytestmark = pytest.mark.redis

NAMES = [target_lease("t1", f"svc{i}") for i in range(12)] + [SWEEP]


async def _rounds(replicas: list[Leases], n: int) -> list[frozenset[str]]:
    held: list[frozenset[str]] = []
    for _ in range(n):
        held = [h for h, _ in await asyncio.gather(*(r.hold(NAMES) for r in replicas))]
    return held


def _disjoint(held: list[frozenset[str]]) -> bool:
    return sum(len(h) for h in held) == len(frozenset().union(*held))


async def test_each_lease_has_exactly_one_holder_and_work_is_shared_fairly(redis_server):
    stores = [RedisStateStore(redis_server.url) for _ in range(3)]
    replicas = [Leases(s, f"r{i}", ttl_s=5.0) for i, s in enumerate(stores)]
    try:
        # The first replica starts alone and takes everything...
        alone, _ = await replicas[0].hold(NAMES)
        assert alone == frozenset(NAMES)
        # ...every round after, each lease has one holder, and soon each holds its share.
        for _ in range(3):
            held = await _rounds(replicas, 1)
            assert _disjoint(held)
        assert frozenset().union(*held) == frozenset(NAMES)  # nothing left unheld
        share = -(-len(NAMES) // 3)
        assert all(len(h) <= share for h in held), [len(h) for h in held]
        assert min(len(h) for h in held) >= len(NAMES) - 2 * share  # nobody idle
        for r, h in zip(replicas, held, strict=True):
            for name in h:
                assert await stores[0].lease_holder(name) == r.holder
        again = await _rounds(replicas, 1)
        assert again == held  # settled: renewal keeps every lease where it was
        assert all(r.peers == 3 for r in replicas)
        assert replicas[0].released >= len(NAMES) - share  # it handed its surplus over
    finally:
        for s in stores:
            await s.close()


async def test_when_a_replica_dies_the_others_share_its_work(redis_server):
    stores = [RedisStateStore(redis_server.url) for _ in range(3)]
    replicas = [Leases(s, f"d{i}", ttl_s=0.8) for i, s in enumerate(stores)]
    try:
        held = await _rounds(replicas, 3)
        assert frozenset().union(*held) == frozenset(NAMES)
        dead_had = held[2]
        assert dead_had
        # d2 dies: it stops renewing and stops announcing itself.
        await asyncio.sleep(0.9)
        survivors = replicas[:2]
        held = await _rounds(survivors, 2)
        assert _disjoint(held)
        assert frozenset().union(*held) == frozenset(NAMES)  # its leases were taken over
        assert all(len(h) <= -(-len(NAMES) // 2) for h in held)
        assert all(r.peers == 2 for r in survivors)
    finally:
        for s in stores:
            await s.close()


async def test_a_dead_holder_loses_its_leases_within_the_lease_time(redis_server):
    a_store, b_store = RedisStateStore(redis_server.url), RedisStateStore(redis_server.url)
    a, b = Leases(a_store, "a", ttl_s=0.6), Leases(b_store, "b", ttl_s=0.6)
    try:
        held_a, _ = await a.hold(NAMES)
        assert held_a == frozenset(NAMES)
        held_b, _ = await b.hold(NAMES)
        assert held_b == frozenset()  # a holds everything
        # a "dies": it stops renewing. Within the lease time b takes over everything.
        await asyncio.sleep(0.7)
        held_b, new_b = await b.hold(NAMES)
        assert held_b == new_b == frozenset(NAMES)
        assert b.acquired == len(NAMES)
        # a comes back: its renewals fail (compare-and-set), it holds nothing, it notices.
        held_a, _ = await a.hold(NAMES)
        assert held_a == frozenset()
        assert a.lost == len(NAMES)
    finally:
        await a_store.close()
        await b_store.close()


async def test_release_hands_over_at_once_and_only_the_holder_can_release(redis_server):
    a_store, b_store = RedisStateStore(redis_server.url), RedisStateStore(redis_server.url)
    a, b = Leases(a_store, "a", ttl_s=30.0), Leases(b_store, "b", ttl_s=30.0)
    try:
        await a.hold(NAMES)
        await b.release_all()  # b holds nothing: releases nothing of a's
        assert await b_store.release_lease(SWEEP, "b") is False
        assert await a_store.lease_holder(SWEEP) == "a"
        await a.release_all()
        held_b, _ = await b.hold(NAMES)
        assert held_b == frozenset(NAMES)
        # A lease no longer asked for (a target removed from the config) is released.
        held_b, _ = await b.hold([SWEEP])
        assert held_b == frozenset({SWEEP})
        assert await b_store.lease_holder(NAMES[0]) is None
    finally:
        await a_store.close()
        await b_store.close()


async def test_during_a_store_outage_a_replica_acts_only_until_its_leases_would_lapse(
    own_redis_server,
):
    store = RedisStateStore(own_redis_server.url)
    now = [100.0]
    leases = Leases(store, "a", ttl_s=3.0, monotonic=lambda: now[0])
    try:
        held, _ = await leases.hold(NAMES)
        assert held == frozenset(NAMES)
        own_redis_server.stop()
        now[0] += 1.0
        held, _ = await leases.hold(NAMES)
        assert held == frozenset(NAMES)  # still within the lease time: nobody else can have it
        assert leases.errors == len(NAMES) + 1  # every renewal and the heartbeat
        now[0] += 2.5
        held, _ = await leases.hold(NAMES)
        assert held == frozenset()  # past it: another replica may hold them now
    finally:
        own_redis_server.start()
        await store.close()


def test_lease_time_outlives_a_slow_tick():
    assert lease_ttl_for(5.0, 3.0) == 15.0
    assert lease_ttl_for(0.5, 1.0) == 2.5
    assert lease_ttl_for(0.1, 0.2) == 2.0
