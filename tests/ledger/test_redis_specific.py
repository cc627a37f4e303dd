"""What only the Redis ledger must handle: other processes' appends, and Redis going away."""

from __future__ import annotations

import asyncio

import pytest

from alertengine.ledger.base import LedgerConflict, LedgerUnavailable
from alertengine.ledger.redis import RedisLedgerStore
from tests.ledger.conftest import KEY, draft
from tests.support.redis_server import RedisServer


async def test_many_clients_interleaving_keep_one_valid_chain(redis_server: RedisServer) -> None:
    # Separate stores = separate processes as far as the optimistic check is concerned:
    # none knows the others' heads, so the Lua check and re-seal do all the work.
    stores = [RedisLedgerStore(redis_server.url, key=KEY) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(stores[i % 4].append("t1", [draft(i=i)]) for i in range(200))
        )
        assert sorted(r[0].seq for r in results) == list(range(1, 201))
        result = await stores[0].verify("t1")
        assert result.ok and result.count == 200
    finally:
        for s in stores:
            await s.close()


async def test_redis_down_raises_unavailable_then_recovers(own_redis_server: RedisServer) -> None:
    store = RedisLedgerStore(own_redis_server.url, key=KEY)
    try:
        await store.append("t1", [draft(i=0)])
        own_redis_server.stop()
        with pytest.raises(LedgerUnavailable):
            await store.append("t1", [draft(i=1)])
        with pytest.raises(LedgerUnavailable):
            await store.verify("t1")
        own_redis_server.start()  # empty again: it kept nothing (no persistence in tests)
        written = await store.append("t1", [draft(i=2)])
        # The cached head was from before the restart; the script put us right.
        assert written[0].seq == 1
        assert (await store.verify("t1")).ok
    finally:
        await store.close()


async def test_one_client_group_commits_concurrent_appends(redis_server: RedisServer) -> None:
    store = RedisLedgerStore(redis_server.url, key=KEY)
    try:
        results = await asyncio.gather(*(store.append("t1", [draft(i=i)]) for i in range(300)))
        assert sorted(r[0].seq for r in results) == list(range(1, 301))
        assert store.groups_committed < 100, store.groups_committed
        assert (await store.verify("t1")).ok
    finally:
        await store.close()


async def test_group_members_get_their_own_conflicts(redis_server: RedisServer) -> None:
    store = RedisLedgerStore(redis_server.url, key=KEY)
    try:
        ok, late, plain = await asyncio.gather(
            store.append("t1", [draft(i=0)], expect_seq=0),
            store.append("t1", [draft(i=1)], expect_seq=0),  # decided after the first
            store.append("t1", [draft(i=2)]),
            return_exceptions=True,
        )
        assert isinstance(ok, list) and ok[0].seq == 1
        assert isinstance(late, LedgerConflict) and late.actual == 1
        assert isinstance(plain, list) and plain[0].seq == 2
    finally:
        await store.close()
