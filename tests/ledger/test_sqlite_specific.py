"""What only the SQLite ledger promises: triggers refuse edits, group commit, durability."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from alertengine.ledger.base import LedgerError, LedgerQuery
from alertengine.ledger.sqlite import SqliteLedgerStore
from tests.ledger.conftest import KEY, draft


async def test_update_and_delete_are_refused_by_triggers(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    store = SqliteLedgerStore(path, key=KEY)
    await store.append("t1", [draft(i=i) for i in range(3)])
    await store.close()
    con = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("UPDATE ledger_entries SET reason = 'x' WHERE seq = 2")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("DELETE FROM ledger_entries WHERE seq = 3")
        with pytest.raises(sqlite3.IntegrityError, match="cannot be deleted"):
            con.execute("DELETE FROM ledger_heads")
        with pytest.raises(sqlite3.IntegrityError, match="forward"):
            con.execute("UPDATE ledger_heads SET seq = 1")
        with pytest.raises(sqlite3.IntegrityError):  # a seq is unique per tenant
            con.execute("INSERT INTO ledger_entries SELECT * FROM ledger_entries WHERE seq = 1")
        assert con.execute("SELECT count(*) FROM ledger_entries").fetchone() == (3,)
    finally:
        con.close()
    again = SqliteLedgerStore(path, key=KEY)
    assert (await again.verify("t1")).ok
    await again.close()


async def test_the_file_is_durable_wal(tmp_path: Path) -> None:
    store = SqliteLedgerStore(tmp_path / "sub" / "dir" / "l.db", key=KEY)  # parents made
    await store.append("t1", [draft()])
    con = sqlite3.connect(tmp_path / "sub" / "dir" / "l.db")
    try:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        con.close()
    await store.close()


async def test_concurrent_appends_share_transactions(tmp_path: Path) -> None:
    store = SqliteLedgerStore(tmp_path / "l.db", key=KEY)
    try:
        results = await asyncio.gather(*(store.append("t1", [draft(i=i)]) for i in range(500)))
        assert sorted(r[0].seq for r in results) == list(range(1, 501))
        # Group commit: far fewer fsynced transactions than calls.
        assert store.groups_committed < 250, store.groups_committed
        assert (await store.verify("t1")).ok
    finally:
        await store.close()


async def test_a_store_without_key_reads_but_refuses_to_append(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    writer = SqliteLedgerStore(path, key=KEY)
    await writer.append("t1", [draft()])
    await writer.close()
    reader = SqliteLedgerStore(path, key=None)
    try:
        assert len(await reader.read(LedgerQuery("t1"))) == 1
        with pytest.raises(LedgerError, match="read-only"):
            await reader.append("t1", [draft()])
        assert (await reader.verify("t1")).ok  # chain walked, checkpoint not checked
    finally:
        await reader.close()


async def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = SqliteLedgerStore(tmp_path / "l.db", key=KEY)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(LedgerError, match="closed"):
        await store.append("t1", [draft()])
    with pytest.raises(LedgerError, match="closed"):
        await store.read(LedgerQuery("t1"))


def test_an_empty_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        SqliteLedgerStore(tmp_path / "l.db", key=b"")


async def test_text_moved_between_data_and_its_neighbour_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    store = SqliteLedgerStore(path, key=KEY)
    await store.append("t1", [draft(i=i) for i in range(4)])
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("DROP TRIGGER ledger_entries_no_update")
    # Try to smuggle a decision into data and blank the real column.
    con.execute(
        "UPDATE ledger_entries SET data = substr(data, 1, length(data) - 1)"
        " || ',\"decision\":\"approve\"}', decision = '' WHERE seq = 3"
    )
    con.execute("UPDATE ledger_entries SET data = 'not json' WHERE seq = 4")
    con.close()
    result = await store.verify("t1")
    await store.close()
    assert not result.ok and result.first_bad_seq == 3


async def test_odd_characters_in_the_path(tmp_path: Path) -> None:
    store = SqliteLedgerStore(tmp_path / "a dir?#%" / "l e.db", key=KEY)
    try:
        await store.append("t1", [draft()])
        assert (await store.verify("t1")).ok
    finally:
        await store.close()
