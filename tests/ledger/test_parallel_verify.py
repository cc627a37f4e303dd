"""The parallel verifier (seq ranges in worker processes) says exactly what the sequential one does.

Random ledgers, every tamper kind of test_tamper at random positions, plus raw-storage
damage the store could never write (wrong column types, a seq that is not an integer),
split into random range sizes: the whole VerifyResult must match, field for field.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertengine.ledger.chain import VerifyResult
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.sqlite import SqliteLedgerStore, verify_file
from tests.ledger.conftest import KEY, draft, redis_rewrite, sqlite_rewrite
from tests.ledger.test_tamper import tamper, tampers
from tests.support.redis_server import RedisServer

_tenants = itertools.count()
_files = itertools.count()

#: Raw damage to one row (picked by the parameters), triggers dropped.
RAW = [
    "UPDATE ledger_entries SET seq = seq + 0.5 WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET seq = 'x' WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET seq = x'01' WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET seq = -seq WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET seq = seq + 1000 WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET timestamp = 1e999 WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET timestamp = 'soon' WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET confidence = -1e999 WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET actor = 42 WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET data = x'00' WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET data = '{\"i\": 1}' WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET prev_hash = 7 WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET hash = upper(hash) WHERE tenant_id = ? AND seq = ?",
    "UPDATE ledger_entries SET tenant_id = 'other' WHERE tenant_id = ? AND seq = ?",
]


def _both(path: Path, tenant: str, chunk: int) -> tuple[VerifyResult, VerifyResult]:
    seq = verify_file(path, tenant, KEY, workers=1)
    par = verify_file(path, tenant, KEY, workers=2, parallel_min=0, chunk=chunk)
    return seq, par


def _raw_damage(path: Path, tenant: str, k: int, statement: str) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update")
        con.execute(statement, (tenant, k))
    finally:
        con.close()


async def _make(path: Path, n: int) -> tuple[str, list[Any]]:
    tenant = f"p{next(_tenants)}"
    store = SqliteLedgerStore(path, key=KEY)
    try:
        entries = await store.append(tenant, [draft(tenant, i) for i in range(n)])
    finally:
        await store.close()
    return tenant, entries


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=tampers(), chunk=st.integers(1, 6))
def test_sqlite_parallel_agrees_on_tampered_chains(
    tmp_path: Path, case: tuple[int, str, dict[str, Any]], chunk: int
) -> None:
    n, kind, p = case
    if kind == "swap":
        p = {**p, "renumber": True}  # rows come back ordered by their seq column
    path = tmp_path / f"l{next(_files)}.db"  # hypothesis reuses tmp_path across examples
    tenant, entries = asyncio.run(_make(path, n))
    tampered, first_bad = tamper(entries, kind, p)
    asyncio.run(sqlite_rewrite(path)(None, tenant, tampered))  # type: ignore[arg-type]
    seq, par = _both(path, tenant, chunk)
    assert not seq.ok and seq.first_bad_seq == first_bad
    assert par == seq


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    n=st.integers(2, 20),
    data=st.data(),
    damage=st.sampled_from(RAW),
    chunk=st.integers(1, 6),
)
def test_sqlite_parallel_agrees_on_raw_damage(
    tmp_path: Path, n: int, data: st.DataObject, damage: str, chunk: int
) -> None:
    path = tmp_path / f"l{next(_files)}.db"  # a fresh file: 'other' must not already exist
    tenant, _ = asyncio.run(_make(path, n))
    k = data.draw(st.integers(1, n))
    _raw_damage(path, tenant, k, damage)
    seq, par = _both(path, tenant, chunk)
    assert not seq.ok
    assert par == seq


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_sqlite_parallel_agrees_on_intact_chains(tmp_path: Path, chunk: int) -> None:
    path = tmp_path / "l.db"
    tenant, entries = asyncio.run(_make(path, 25))
    seq, par = _both(path, tenant, chunk)
    assert seq.ok and seq.count == 25 and seq.head_hash == entries[-1].hash
    assert par == seq


def test_parallel_progress_counts_every_entry(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    tenant, _ = asyncio.run(_make(path, 30))
    ticks: list[int] = []
    result = verify_file(path, tenant, KEY, ticks.append, workers=2, parallel_min=0, chunk=4)
    assert result.ok and sum(ticks) == 30


async def _redis_case(
    url: str, n: int, kind: str, p: dict[str, Any], chunk: int, garble: tuple[int, int] | None
) -> tuple[VerifyResult, VerifyResult, int]:
    tenant = f"p{next(_tenants)}"
    store = RedisLedgerStore(url, key=KEY)
    try:
        entries = await store.append(tenant, [draft(tenant, i) for i in range(n)])
        tampered, first_bad = tamper(entries, kind, p)
        await redis_rewrite(url)(store, tenant, tampered)
        if garble is not None:  # one stream entry that is not an entry at all
            r = aioredis.Redis.from_url(url)
            try:
                stream = f"ae:ledger:{{{tenant}}}"
                old = await r.xrange(stream)
                await r.delete(stream)
                k, how = garble
                for i, (sid, fields) in enumerate(old):
                    if i == min(k, len(old)) - 1:
                        fields = [{"x": b"1"}, {"e": b"{"}, {"e": b"[1]"}, {"e": b"{}"}][how]
                    await r.xadd(stream, fields, id=sid)
            finally:
                await r.aclose()
        seq = await store.verify(tenant, workers=1)
        par = await store.verify(tenant, workers=2, parallel_min=0, chunk=chunk)
    finally:
        await store.close()
    return seq, par, first_bad


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=tampers(), chunk=st.integers(1, 6))
def test_redis_parallel_agrees_on_tampered_chains(
    redis_server: RedisServer, case: tuple[int, str, dict[str, Any]], chunk: int
) -> None:
    n, kind, p = case
    seq, par, first_bad = asyncio.run(_redis_case(redis_server.url, n, kind, p, chunk, None))
    assert not seq.ok and seq.first_bad_seq == first_bad
    assert par == seq


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    n=st.integers(2, 15),
    k=st.integers(1, 15),
    how=st.integers(0, 3),
    chunk=st.integers(1, 6),
)
def test_redis_parallel_agrees_on_unreadable_entries(
    redis_server: RedisServer, n: int, k: int, how: int, chunk: int
) -> None:
    url = redis_server.url
    seq, par, _ = asyncio.run(_redis_case(url, n, "truncate", {"m": n}, chunk, (k, how)))
    assert not seq.ok and "unreadable" in seq.problem
    assert par == seq


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_redis_parallel_agrees_on_intact_chains(redis_server: RedisServer, chunk: int) -> None:
    async def run() -> tuple[VerifyResult, VerifyResult]:
        store = RedisLedgerStore(redis_server.url, key=KEY)
        try:
            tenant = f"p{next(_tenants)}"
            await store.append(tenant, [draft(tenant, i) for i in range(25)])
            return (
                await store.verify(tenant, workers=1),
                await store.verify(tenant, workers=2, parallel_min=0, chunk=chunk),
            )
        finally:
            await store.close()

    seq, par = asyncio.run(run())
    assert seq.ok and seq.count == 25
    assert par == seq


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 6])
def test_parallel_names_the_rehashed_deletion_like_the_walk(
    tmp_path: Path, redis_server: RedisServer, chunk: int
) -> None:
    """Entry 3 of 6 deleted, the rest renumbered and re-hashed: entry 3 is the first bad one
    whether it sits inside a range or first in one (the seam the caller re-checks)."""
    path = tmp_path / "l.db"
    tenant, entries = asyncio.run(_make(path, 6))
    tampered, first_bad = tamper(entries, "remove_rehash", {"k": 3})
    asyncio.run(sqlite_rewrite(path)(None, tenant, tampered))  # type: ignore[arg-type]
    seq, par = _both(path, tenant, chunk)
    assert (seq.ok, seq.first_bad_seq, first_bad) == (False, 3, 3)
    assert seq.problem == "entry 3 does not follow entry 2 (prev_hash mismatch)"
    assert par == seq
    rseq, rpar, _ = asyncio.run(
        _redis_case(redis_server.url, 6, "remove_rehash", {"k": 3}, chunk, None)
    )
    assert (rseq.ok, rseq.first_bad_seq, rseq.problem) == (False, 3, seq.problem)
    assert rpar == rseq
