"""The LedgerStore contract, run unchanged against memory, SQLite and Redis."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from alertengine.ledger.base import LedgerConflict, LedgerError, LedgerQuery, LedgerStore
from alertengine.ledger.chain import GENESIS_HASH, checkpoint_valid, content_hash
from tests.ledger.conftest import KEY, Backend, draft


async def test_append_seals_a_chain_and_signs_the_head(store: LedgerStore) -> None:
    first = await store.append("t1", [draft(i=0), draft(i=1)])
    second = await store.append("t1", [draft(i=2)])
    entries = first + second
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS_HASH
    for a, b in itertools.pairwise(entries):
        assert b.prev_hash == a.hash
    assert all(content_hash(e) == e.hash for e in entries)
    head = await store.head("t1")
    assert head is not None
    assert (head.seq, head.hash) == (3, entries[-1].hash)
    assert checkpoint_valid(KEY, head)
    assert await store.count("t1") == 3


async def test_what_is_read_back_is_what_was_sealed(store: LedgerStore) -> None:
    odd = draft(
        i=7,
        reason='quotes " and \\ and ünïcode \u2028 and emoji 🚨',
        confidence=None,
        stage=None,
        incident_id=None,
        data={"nested": {"z": [1, 2.5, None, True], "a": "x"}, "big": 2**53},
    )
    written = await store.append("t1", [odd])
    assert await store.read(LedgerQuery("t1")) == written
    assert [e async for e in store.scan("t1")] == written


async def test_tenants_have_separate_chains(store: LedgerStore) -> None:
    await store.append("a", [draft("a", 0)])
    await store.append("b", [draft("b", 0), draft("b", 1)])
    await store.append("a", [draft("a", 1)])
    assert await store.tenants() == ["a", "b"]
    assert [e.seq for e in await store.read(LedgerQuery("a"))] == [1, 2]
    assert await store.count("b") == 2
    assert await store.count("nobody") == 0
    assert await store.head("nobody") is None
    assert (await store.verify("a")).ok and (await store.verify("b")).ok


async def test_read_filters(store: LedgerStore) -> None:
    await store.append(
        "t1", [draft(i=i, kind="k-even" if i % 2 == 0 else "k-odd") for i in range(12)]
    )
    base = 1_700_000_000.0

    async def seqs(**kw: object) -> list[int]:
        return [e.seq for e in await store.read(LedgerQuery("t1", **kw))]  # type: ignore[arg-type]

    assert await seqs() == list(range(1, 13))
    assert await seqs(incident_id="inc-1") == [2, 5, 8, 11]
    assert await seqs(since=base + 3, until=base + 6) == [4, 5, 6]
    assert await seqs(after_seq=9) == [10, 11, 12]
    assert await seqs(limit=2) == [1, 2]
    assert await seqs(kinds=frozenset({"k-odd"})) == [2, 4, 6, 8, 10, 12]
    assert await seqs(incident_id="inc-2", kinds=frozenset({"k-even"}), after_seq=3) == [9]
    assert await seqs(incident_id="inc-0", limit=2, after_seq=1) == [4, 7]
    assert await seqs(incident_id="nope") == []
    assert await store.read(LedgerQuery("other")) == []


async def test_scan_streams_everything_in_order_across_batches(store: LedgerStore) -> None:
    for start in range(0, 25, 5):
        await store.append("t1", [draft(i=i) for i in range(start, start + 5)])
    assert [e.seq async for e in store.scan("t1", batch=4)] == list(range(1, 26))
    assert [e async for e in store.scan("nobody")] == []


async def test_compare_and_append(store: LedgerStore) -> None:
    await store.append("t1", [draft(i=0)], expect_seq=0)
    await store.append("t1", [draft(i=1)], expect_seq=1)
    with pytest.raises(LedgerConflict) as info:
        await store.append("t1", [draft(i=2)], expect_seq=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert await store.count("t1") == 2  # nothing written
    assert (await store.verify("t1")).ok


async def test_only_one_of_many_racing_compare_and_appends_wins(
    backend: Backend, store: LedgerStore
) -> None:
    other = backend.open()
    try:
        stores = [store, other]
        results = await asyncio.gather(
            *(stores[i % 2].append("t1", [draft(i=i)], expect_seq=0) for i in range(40)),
            return_exceptions=True,
        )
    finally:
        if other is not store:
            await other.close()
    wins = [r for r in results if isinstance(r, list)]
    assert len(wins) == 1
    assert all(isinstance(r, LedgerConflict) for r in results if not isinstance(r, list))
    assert await store.count("t1") == 1


async def test_concurrent_appenders_from_two_clients_keep_one_chain(
    backend: Backend, store: LedgerStore
) -> None:
    other = backend.open()
    try:
        stores = [store, other]
        calls = [
            stores[i % 2].append("t1", [draft(i=i)] if i % 3 else [draft(i=i), draft(i=i)])
            for i in range(150)
        ]
        results = await asyncio.gather(*calls)
    finally:
        if other is not store:
            await other.close()
    total = sum(len(r) for r in results)
    assert total == 200
    for r in results:  # each call's entries are contiguous and in its own order
        assert [e.seq for e in r] == list(range(r[0].seq, r[0].seq + len(r)))
    assert sorted(e.seq for r in results for e in r) == list(range(1, 201))
    result = await store.verify("t1")
    assert result.ok, result
    assert result.count == 200


async def test_a_draft_of_another_tenant_is_refused(store: LedgerStore) -> None:
    with pytest.raises(ValueError, match="tenant"):
        await store.append("t1", [draft("t2")])
    assert await store.count("t1") == 0


async def test_an_unhashable_draft_writes_nothing(store: LedgerStore) -> None:
    await store.append("t1", [draft(i=0)])
    with pytest.raises(LedgerError):
        await store.append("t1", [draft(i=1), draft(i=2, data={"x": math.nan})])
    with pytest.raises(LedgerError):
        await store.append("t1", [draft(i=3, timestamp=math.inf)])
    assert await store.count("t1") == 1
    assert [e.seq for e in await store.append("t1", [draft(i=4)])] == [2]
    assert (await store.verify("t1")).ok


async def test_empty_append_is_a_no_op_but_still_compares(store: LedgerStore) -> None:
    assert await store.append("t1", []) == []
    assert await store.append("t1", [], expect_seq=0) == []
    with pytest.raises(LedgerConflict):
        await store.append("t1", [], expect_seq=3)


async def test_verify_reports_counts_and_head(store: LedgerStore) -> None:
    empty = await store.verify("t1")
    assert empty.ok and empty.count == 0 and empty.head_seq == 0
    written = await store.append("t1", [draft(i=i) for i in range(10)])
    seen: list[int] = []
    result = await store.verify("t1", progress=seen.append)
    assert result.ok
    assert (result.count, result.head_seq, result.head_hash) == (10, 10, written[-1].hash)
    assert sum(seen) == 10


async def test_a_checkpoint_signed_with_another_key_fails(backend: Backend) -> None:
    if backend.name == "memory":
        pytest.skip("the memory store has one key for its life")
    s = backend.open()
    await s.append("t1", [draft(i=0)])
    await s.close()
    if backend.path is not None:
        from alertengine.ledger.sqlite import SqliteLedgerStore

        wrong: LedgerStore = SqliteLedgerStore(backend.path, key=b"another key")
    else:
        from alertengine.ledger.redis import RedisLedgerStore

        assert backend.url is not None
        wrong = RedisLedgerStore(backend.url, key=b"another key")
    try:
        result = await wrong.verify("t1")
    finally:
        await wrong.close()
    assert not result.ok
    assert "signature" in result.problem


async def test_entries_survive_a_new_client(backend: Backend) -> None:
    s = backend.open()
    written = await s.append("t1", [draft(i=i) for i in range(5)])
    await s.close()
    again = backend.open()
    try:
        assert await again.read(LedgerQuery("t1")) == written
        appended = await again.append("t1", [draft(i=5)], expect_seq=5)
        assert appended[0].prev_hash == written[-1].hash
        assert (await again.verify("t1")).ok
    finally:
        await again.close()
