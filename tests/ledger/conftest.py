"""One set of contract tests, every ledger backend: memory, SQLite, Redis.

``backend`` knows how to open a store (a second client on the same data, too) and how to
rewrite a tenant's raw stored entries behind the store's back, for the tamper tests.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from alertengine.ledger.base import LedgerStore
from alertengine.ledger.chain import Entry, EntryDraft
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.sqlite import SqliteLedgerStore, _row_of

KEY = b"test-ledger-key-0123456789abcdef"


@dataclass
class Backend:
    name: str
    open: Callable[[], LedgerStore]
    #: Store exactly these entries as the tenant's raw chain (bypassing the store; the
    #: signed head is left as it was).
    rewrite: Callable[[LedgerStore, str, list[Entry]], Awaitable[None]]
    path: Path | None = None
    url: str | None = None


def draft(tenant: str = "t1", i: int = 0, **kw: object) -> EntryDraft:
    fields: dict[str, object] = {
        "tenant_id": tenant,
        "kind": "transition",
        "actor": "policy",
        "timestamp": 1_700_000_000.0 + i,
        "incident_id": f"inc-{i % 3}",
        "stage": "DETECTED",
        "decision": "open",
        "reason": f"entry {i}",
        "confidence": 0.5,
        "policy_version": "1.0.0",
        "data": {"i": i, "score": 70 + i % 30},
    }
    fields.update(kw)
    return EntryDraft(**fields)  # type: ignore[arg-type]


def sqlite_rewrite(path: Path) -> Callable[[LedgerStore, str, list[Entry]], Awaitable[None]]:
    async def rewrite(_store: LedgerStore, tenant: str, entries: list[Entry]) -> None:
        con = sqlite3.connect(path, isolation_level=None)
        try:
            # An attacker with file access: drop the guards, then rewrite the rows.
            con.execute("DROP TRIGGER IF EXISTS ledger_entries_no_update")
            con.execute("DROP TRIGGER IF EXISTS ledger_entries_no_delete")
            con.execute("BEGIN")
            con.execute("DELETE FROM ledger_entries WHERE tenant_id = ?", (tenant,))
            con.executemany(
                "INSERT INTO ledger_entries (tenant_id, seq, timestamp, incident_id, kind,"
                " stage, actor, decision, reason, confidence, policy_version, data,"
                " prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [_row_of(e) for e in entries],
            )
            con.execute("COMMIT")
        finally:
            con.close()

    return rewrite


def redis_rewrite(url: str) -> Callable[[LedgerStore, str, list[Entry]], Awaitable[None]]:
    async def rewrite(_store: LedgerStore, tenant: str, entries: list[Entry]) -> None:
        r = aioredis.Redis.from_url(url)
        stream = f"ae:ledger:{{{tenant}}}"
        try:
            # A stream never takes an id below its last one, even after XDEL: rebuild it.
            await r.delete(stream)
            last = 0
            for e in entries:
                # Keep id = seq where the order allows (ids must only grow).
                last = e.seq if e.seq > last else last + 1
                await r.xadd(stream, {"e": e.to_json()}, id=f"{last}-0")
        finally:
            await r.aclose()

    return rewrite


async def memory_rewrite(store: LedgerStore, tenant: str, entries: list[Entry]) -> None:
    assert isinstance(store, MemoryLedgerStore)
    store._raw_chain(tenant)[:] = entries


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        shared = MemoryLedgerStore(KEY)
        yield Backend("memory", lambda: shared, memory_rewrite)
    elif request.param == "sqlite":
        path = tmp_path / "ledger.db"
        yield Backend(
            "sqlite", lambda: SqliteLedgerStore(path, key=KEY), sqlite_rewrite(path), path=path
        )
    else:
        url = request.getfixturevalue("redis_server").url
        yield Backend("redis", lambda: RedisLedgerStore(url, key=KEY), redis_rewrite(url), url=url)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[LedgerStore]:
    s = backend.open()
    yield s
    await s.close()


def sqlite_zero_tree_node(path: Path, tenant: str, level: int, idx: int) -> None:
    """Overwrite one stored tree node with zeros (an attacker with file access)."""
    from alertengine.ledger.merkle import storage_index

    pos = storage_index(level, idx)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("DROP TRIGGER IF EXISTS ledger_tree_no_update")
        start, blob = con.execute(
            "SELECT pos, hashes FROM ledger_tree WHERE tenant_id = ? AND pos <= ?"
            " ORDER BY pos DESC LIMIT 1",
            (tenant, pos),
        ).fetchone()
        off = 32 * (pos - start)
        assert off + 32 <= len(blob)
        con.execute(
            "UPDATE ledger_tree SET hashes = ? WHERE tenant_id = ? AND pos = ?",
            (blob[:off] + bytes(32) + blob[off + 32 :], tenant, start),
        )
    finally:
        con.close()
