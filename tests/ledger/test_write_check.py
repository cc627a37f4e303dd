"""Issue 10: a ledger proves it can still write, and says why when it cannot.

A full disk or a read-only store still answers reads; the orchestrator relies on
``check_writable`` (a tiny commit outside every chain) and on the classified ``cause`` of
a failed write ("disk full", "read-only") to say so in /healthz. Real stores only: a SQLite
file on a full tmpfs, a redis-server turned into a read-only replica.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from alertengine.ledger import EntryDraft, LedgerError, LedgerQuery, LedgerUnavailable
from alertengine.ledger.base import DISK_FULL, READ_ONLY, WriteCheck
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.sqlite import SqliteLedgerStore, _write_failure
from tests.faults.ledger_fs import fill, tmpfs
from tests.support.redis_server import RedisServer

KEY = b"k" * 32


def draft(n: int = 0) -> EntryDraft:
    return EntryDraft(
        tenant_id="t", kind="note", actor="test", timestamp=float(n), reason=f"entry {n}"
    )


def test_sqlite_errors_are_classified() -> None:
    full = _write_failure(sqlite3.OperationalError("database or disk is full"))
    assert isinstance(full, LedgerUnavailable) and full.cause == DISK_FULL
    ro = _write_failure(sqlite3.OperationalError("attempt to write a readonly database"))
    assert ro.cause == READ_ONLY
    assert _write_failure(sqlite3.OperationalError("disk I/O error")).cause == "I/O error"
    refused = _write_failure(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert not isinstance(refused, LedgerUnavailable)
    assert _write_failure(sqlite3.OperationalError("database is locked")).cause == "unreachable"


async def test_sqlite_write_check_fails_on_a_full_disk_and_passes_when_space_returns(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "8m") as disk:
        ledger = SqliteLedgerStore(disk / "l.db", key=KEY)
        try:
            assert isinstance(ledger, WriteCheck)
            await ledger.check_writable()
            await ledger.append("t", [draft(1)])
            con = sqlite3.connect(str(disk / "l.db"))  # an empty WAL: the next write needs space
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            fill(disk / "filler")
            assert len(await ledger.read(LedgerQuery(tenant_id="t"))) == 1  # reads still work
            with pytest.raises(LedgerUnavailable) as probe:
                await ledger.check_writable()
            assert probe.value.cause == DISK_FULL and "disk is full" in str(probe.value)
            with pytest.raises(LedgerUnavailable) as append:
                await ledger.append("t", [draft(2)])
            assert append.value.cause == DISK_FULL
            (disk / "filler").unlink()
            await ledger.check_writable()
            await ledger.append("t", [draft(3)])
            assert [e.reason for e in await ledger.read(LedgerQuery(tenant_id="t"))] == [
                "entry 1",
                "entry 3",
            ]
            assert (await ledger.verify("t")).ok
        finally:
            await ledger.close()


@pytest.mark.redis
async def test_redis_refusing_writes_is_read_only_not_unreachable(
    own_redis_server: RedisServer,
) -> None:
    ledger = RedisLedgerStore(own_redis_server.url, key=KEY)
    admin = aioredis.Redis.from_url(own_redis_server.url)
    try:
        await ledger.check_writable()
        await ledger.append("t", [draft(1)])
        await admin.execute_command("REPLICAOF", "127.0.0.1", "1")  # a replica: reads only
        with pytest.raises(LedgerError) as probe:
            await ledger.check_writable()
        assert probe.value.cause == READ_ONLY
        with pytest.raises(LedgerError) as append:
            await ledger.append("t", [draft(2)])
        assert append.value.cause == READ_ONLY
        assert len(await ledger.read(LedgerQuery(tenant_id="t"))) == 1
        await admin.execute_command("REPLICAOF", "NO", "ONE")
        await ledger.check_writable()
        await ledger.append("t", [draft(3)])
        assert (await ledger.verify("t")).ok
    finally:
        await admin.aclose()
        await ledger.close()
