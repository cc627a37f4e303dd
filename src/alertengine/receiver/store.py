"""What a receiver remembers: the calls it ran (by Idempotency-Key) and what it witnessed.

A small pluggable store: :class:`WitnessStore` is the protocol, :class:`SqliteWitnessStore`
the default (one file, survives restarts: a receiver that forgot what it witnessed could be
shown a rolled-back log again), :class:`MemoryWitnessStore` for tests and demos.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Claimed:
    """The first call with this key, or (``fresh=False``) what the first one left."""

    fresh: bool
    body_sha256: str
    receipt: str


class WitnessStore(Protocol):
    async def witnessed(self, origin: str) -> str | None:
        """The latest checkpoint note witnessed for ``origin``, if any."""
        ...

    async def witness(self, origin: str, note: str, size: int) -> None:
        """Remember ``note`` (tree ``size``) as the latest for ``origin`` unless a larger one
        is already remembered."""
        ...

    async def claim(self, key: str, body_sha256: str, receipt: str) -> Claimed:
        """Record the call ``key`` with its receipt, atomically; a repeat gets the first."""
        ...

    async def receipts(self) -> list[str]:
        """Every receipt issued for a call that ran, oldest first (for reconciliation)."""
        ...

    async def close(self) -> None: ...


class MemoryWitnessStore:
    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, str]] = {}
        self._calls: dict[str, Claimed] = {}

    async def witnessed(self, origin: str) -> str | None:
        got = self._seen.get(origin)
        return got[1] if got else None

    async def witness(self, origin: str, note: str, size: int) -> None:
        if origin not in self._seen or self._seen[origin][0] <= size:
            self._seen[origin] = (size, note)

    async def claim(self, key: str, body_sha256: str, receipt: str) -> Claimed:
        first = self._calls.get(key)
        if first is not None:
            return Claimed(False, first.body_sha256, first.receipt)
        self._calls[key] = Claimed(True, body_sha256, receipt)
        return self._calls[key]

    async def receipts(self) -> list[str]:
        return [c.receipt for c in self._calls.values()]

    async def close(self) -> None:
        return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS witnessed (
  origin TEXT PRIMARY KEY, size INTEGER NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
  n INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
  body_sha256 TEXT NOT NULL, receipt TEXT NOT NULL);
"""


class SqliteWitnessStore:
    """One SQLite file; every operation is one transaction (safe across processes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA busy_timeout=5000")
        self._con.executescript(_SCHEMA)

    def _witnessed(self, origin: str) -> str | None:
        with self._lock:
            row = self._con.execute(
                "SELECT note FROM witnessed WHERE origin = ?", (origin,)
            ).fetchone()
        return None if row is None else str(row[0])

    def _witness(self, origin: str, note: str, size: int) -> None:
        with self._lock:
            self._con.execute(
                "INSERT INTO witnessed (origin, size, note) VALUES (?, ?, ?)"
                " ON CONFLICT(origin) DO UPDATE SET size = excluded.size, note = excluded.note"
                " WHERE excluded.size >= witnessed.size",
                (origin, size, note),
            )

    def _claim(self, key: str, body_sha256: str, receipt: str) -> Claimed:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                row = self._con.execute(
                    "SELECT body_sha256, receipt FROM calls WHERE key = ?", (key,)
                ).fetchone()
                if row is None:
                    self._con.execute(
                        "INSERT INTO calls (key, body_sha256, receipt) VALUES (?, ?, ?)",
                        (key, body_sha256, receipt),
                    )
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
        if row is None:
            return Claimed(True, body_sha256, receipt)
        return Claimed(False, str(row[0]), str(row[1]))

    def _receipts(self) -> list[str]:
        with self._lock:
            rows = self._con.execute("SELECT receipt FROM calls ORDER BY n").fetchall()
        return [str(r[0]) for r in rows]

    async def witnessed(self, origin: str) -> str | None:
        return await asyncio.to_thread(self._witnessed, origin)

    async def all_witnessed(self) -> list[str]:
        """The latest checkpoint of every log witnessed (for ``ledger verify --witness``)."""

        def read() -> list[str]:
            with self._lock:
                rows = self._con.execute("SELECT note FROM witnessed ORDER BY origin").fetchall()
            return [str(r[0]) for r in rows]

        return await asyncio.to_thread(read)

    async def witness(self, origin: str, note: str, size: int) -> None:
        await asyncio.to_thread(self._witness, origin, note, size)

    async def claim(self, key: str, body_sha256: str, receipt: str) -> Claimed:
        return await asyncio.to_thread(self._claim, key, body_sha256, receipt)

    async def receipts(self) -> list[str]:
        return await asyncio.to_thread(self._receipts)

    async def close(self) -> None:
        with self._lock:
            self._con.close()
