"""Per-target leases on a real redis-server: one holder at a time, renewal, takeover on expiry,
release on a clean stop, and what a replica does while the store is unreachable."""

from __future__ import annotations

import asyncio

import pytest

from alertengine.orchestrator.leases import SWEEP, Leases, lease_ttl_for, target_lease
from alertengine.stores.redis import RedisStateStore

pytestmark = pytest.mark.redis

NAMES = [target_lease("t1", f"svc{i}") for i in range(12)] + [SWEEP]


async def test_each_lease_has_exactly_one_holder_and_renewal_keeps_it(redis_server):
    stores = [RedisStateStore(redis_server.url) for _ in range(3)]
    replicas = [Leases(s, f"r{i}", ttl_s=5.0) for i, s in enumerate(stores)]
    try:
        first = await asyncio.gather(*(r.hold(NAMES) for r in replicas))
        held = [h for h, _ in first]
        assert sum(len(h) for h in held) == len(NAMES)  # every lease taken, none twice
        for a in range(3):
            for b in range(a + 1, 3):
                assert not held[a] & held[b]
        for r, h in zip(replicas, held, strict=True):
            for name in h:
                assert await stores[0].lease_holder(name) == r.holder
        again = await asyncio.gather(*(r.hold(NAMES) for r in replicas))
        assert [h for h, _ in again] == held  # renewal keeps every lease where it was
        assert all(not new for _, new in again)
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
        assert leases.errors == len(NAMES)
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
