"""Claims are single use, leases have one holder, documents round-trip: on every backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from alertengine.stores.base import StateStore, StoreUnavailable
from alertengine.stores.redis import RedisStateStore
from alertengine.stores.sqlite import SqliteStateStore
from tests.stores.conftest import StateBackend
from tests.support.redis_server import RedisServer

TTL = 0.3  # short, so Redis (real time) expires it within the test


async def test_a_claim_is_taken_exactly_once_by_1000_concurrent_claimers(
    state_backend: StateBackend, state: StateStore
) -> None:
    other = state_backend.open()
    try:
        stores = [state, other]
        results = await asyncio.gather(
            *(stores[i % 2].claim("token:abc", 60, value=f"c{i}") for i in range(1000))
        )
    finally:
        if other is not state:
            await other.close()
    assert results.count(True) == 1
    winner = results.index(True)
    assert await state.claimed("token:abc") == f"c{winner}"


async def test_distinct_claims_are_independent(state: StateStore) -> None:
    assert await asyncio.gather(*(state.claim(f"k{i}", 60) for i in range(50))) == [True] * 50
    assert await state.claimed("k3") == "1"
    assert await state.claimed("never") is None


async def test_a_claim_can_be_taken_again_once_expired(
    state_backend: StateBackend, state: StateStore
) -> None:
    assert await state.claim("k", TTL, value="first")
    assert not await state.claim("k", TTL, value="second")
    await state_backend.pass_time(TTL + 0.2)
    assert await state.claimed("k") is None
    assert await state.claim("k", TTL, value="third")
    assert await state.claimed("k") == "third"


async def test_lease_has_one_holder_and_compare_and_set(
    state_backend: StateBackend, state: StateStore
) -> None:
    assert await state.acquire_lease("loop", "a", TTL)
    assert not await state.acquire_lease("loop", "b", TTL)
    assert await state.acquire_lease("loop", "a", TTL)  # re-acquire by the holder
    assert await state.lease_holder("loop") == "a"
    assert not await state.renew_lease("loop", "b", TTL)
    assert await state.renew_lease("loop", "a", TTL)
    assert not await state.release_lease("loop", "b")
    assert await state.lease_holder("loop") == "a"
    assert await state.release_lease("loop", "a")
    assert await state.lease_holder("loop") is None
    assert not await state.release_lease("loop", "a")
    assert await state.acquire_lease("loop", "b", TTL)


async def test_an_expired_lease_goes_to_the_next_holder(
    state_backend: StateBackend, state: StateStore
) -> None:
    assert await state.acquire_lease("loop", "a", TTL)
    await state_backend.pass_time(TTL + 0.2)
    assert await state.lease_holder("loop") is None
    assert not await state.renew_lease("loop", "a", TTL)  # too late to renew
    assert await state.acquire_lease("loop", "b", TTL)
    assert not await state.release_lease("loop", "a")
    assert await state.lease_holder("loop") == "b"


async def test_many_racing_acquirers_get_one_lease(
    state_backend: StateBackend, state: StateStore
) -> None:
    results = await asyncio.gather(*(state.acquire_lease("x", f"h{i}", 60) for i in range(200)))
    assert results.count(True) == 1
    assert await state.lease_holder("x") == f"h{results.index(True)}"


async def test_a_lease_is_taken_over_only_from_the_holder_named(
    state_backend: StateBackend, state: StateStore
) -> None:
    """For a holder known dead: moved at once (no waiting for the lease to lapse), by
    compare-and-set, so of many takers one wins and a holder that changed is kept."""
    assert await state.acquire_lease("exec", "dead", 60)
    assert not await state.take_over_lease("exec", "someone-else", "b", 60)
    assert await state.lease_holder("exec") == "dead"
    other = state_backend.open()
    try:
        stores = [state, other]
        won = await asyncio.gather(
            *(stores[i % 2].take_over_lease("exec", "dead", f"n{i}", 60) for i in range(100))
        )
    finally:
        if other is not state:
            await other.close()
    assert won.count(True) == 1
    winner = f"n{won.index(True)}"
    assert await state.lease_holder("exec") == winner
    assert await state.renew_lease("exec", winner, 60)  # a lease like any other now
    assert not await state.renew_lease("exec", "dead", 60)  # the old holder is fenced off
    assert not await state.release_lease("exec", "dead")
    assert await state.lease_holder("exec") == winner


async def test_documents_round_trip(state: StateStore) -> None:
    doc = {"name": "Acme", "limits": {"rps": 5}, "tags": ["a", "ü"], "n": None, "ok": True}
    await state.put("tenants", "t1", doc)
    await state.put("tenants", "t2", {"name": "B"})
    await state.put("other", "t1", {"x": 1})
    assert await state.get("tenants", "t1") == doc
    got = await state.get("tenants", "t1")
    assert got is not None
    got["name"] = "changed"  # a copy: changing it changes nothing stored
    assert (await state.get("tenants", "t1")) == doc
    assert await state.list("tenants") == {"t1": doc, "t2": {"name": "B"}}
    await state.put("tenants", "t2", {"name": "B2"})
    assert await state.get("tenants", "t2") == {"name": "B2"}
    assert await state.delete("tenants", "t2")
    assert not await state.delete("tenants", "t2")
    assert await state.get("tenants", "t2") is None
    assert await state.list("empty") == {}
    assert await state.ping()


async def test_sqlite_state_survives_reopening(tmp_path: Path) -> None:
    s = SqliteStateStore(tmp_path / "s.db")
    assert await s.claim("token", 600)
    await s.put("c", "k", {"v": 1})
    await s.close()
    again = SqliteStateStore(tmp_path / "s.db")
    try:
        assert not await again.claim("token", 600)  # single use across restarts
        assert await again.get("c", "k") == {"v": 1}
    finally:
        await again.close()
    with pytest.raises(StoreUnavailable):
        await s.claim("x", 1)  # closed


async def test_redis_down_is_unavailable_and_ping_says_false(
    own_redis_server: RedisServer,
) -> None:
    s = RedisStateStore(own_redis_server.url)
    try:
        assert await s.ping()
        own_redis_server.stop()
        assert not await s.ping()
        with pytest.raises(StoreUnavailable):
            await s.claim("k", 1)
        with pytest.raises(StoreUnavailable):
            await s.get("c", "k")
        own_redis_server.start()
        assert await s.ping()
        assert await s.claim("k", 1)
    finally:
        await s.close()
