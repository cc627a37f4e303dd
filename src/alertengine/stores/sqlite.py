"""The embedded :class:`~alertengine.stores.base.StateStore`: tables in a SQLite file.

Usually the same file as the ledger (other tables). Every operation is one SQL statement
in its own durable transaction, run on one worker thread that owns the connection:

* claims: a unique insert that may only overwrite an *expired* row (``ON CONFLICT ... DO
  UPDATE ... WHERE expires_at <= now``), so exactly one caller sees a changed row;
* leases: the same insert, also allowed when the caller already holds the lease; renew,
  release and take-over (from a holder known dead) are ``UPDATE``/``DELETE ... WHERE
  holder = ?`` (compare-and-set/-delete);
* documents: JSON text keyed by (collection, key).

Expiry is judged on the injected clock, so the simulator's virtual time applies.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from alertengine.clock import Clock, SystemClock
from alertengine.ledger.sqlite import connect
from alertengine.stores.base import StoreUnavailable

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS ae_claims (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ae_leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ae_docs (
    collection TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (collection, key)
) WITHOUT ROWID;
"""

_CLAIM = (
    "INSERT INTO ae_claims (key, value, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
    " WHERE ae_claims.expires_at <= ?"
)
_ACQUIRE = (
    "INSERT INTO ae_leases (name, holder, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
    " WHERE ae_leases.expires_at <= ? OR ae_leases.holder = excluded.holder"
)

#: Expired claims are swept every this many claims, so the table does not grow forever.
_SWEEP_EVERY = 1000


class SqliteStateStore:
    """State store on a SQLite file (created with its parent folder if missing)."""

    def __init__(self, path: str | Path, *, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock or SystemClock()
        try:
            self._con = connect(self.path)
            self._con.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open the SQLite store at {self.path}: {exc}") from exc
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="state-store")
        self._claims = 0
        self._closed = False

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the state store is closed")

        def call() -> T:
            try:
                return fn(self._con)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the SQLite state store failed: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._worker, call)

    # -- claims ------------------------------------------------------------------------------
    async def claim(self, key: str, ttl_s: float, value: str = "1") -> bool:
        now = self._clock.now()
        self._claims += 1
        sweep = self._claims % _SWEEP_EVERY == 0

        def run(c: sqlite3.Connection) -> bool:
            if sweep:
                c.execute("DELETE FROM ae_claims WHERE expires_at <= ?", (now,))
            return c.execute(_CLAIM, (key, value, now + ttl_s, now)).rowcount == 1

        return await self._run(run)

    async def claimed(self, key: str) -> str | None:
        now = self._clock.now()
        row = await self._run(
            lambda c: c.execute(
                "SELECT value FROM ae_claims WHERE key = ? AND expires_at > ?", (key, now)
            ).fetchone()
        )
        return None if row is None else str(row[0])

    # -- leases ------------------------------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        now = self._clock.now()
        return await self._run(
            lambda c: c.execute(_ACQUIRE, (name, holder, now + ttl_s, now)).rowcount == 1
        )

    async def renew_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        now = self._clock.now()
        return await self._run(
            lambda c: (
                c.execute(
                    "UPDATE ae_leases SET expires_at = ?"
                    " WHERE name = ? AND holder = ? AND expires_at > ?",
                    (now + ttl_s, name, holder, now),
                ).rowcount
                == 1
            )
        )

    async def release_lease(self, name: str, holder: str) -> bool:
        now = self._clock.now()
        return await self._run(
            lambda c: (
                c.execute(
                    "DELETE FROM ae_leases WHERE name = ? AND holder = ? AND expires_at > ?",
                    (name, holder, now),
                ).rowcount
                == 1
            )
        )

    async def take_over_lease(self, name: str, previous: str, holder: str, ttl_s: float) -> bool:
        now = self._clock.now()
        return await self._run(
            lambda c: (
                c.execute(
                    "UPDATE ae_leases SET holder = ?, expires_at = ? WHERE name = ? AND holder = ?",
                    (holder, now + ttl_s, name, previous),
                ).rowcount
                == 1
            )
        )

    async def lease_holder(self, name: str) -> str | None:
        now = self._clock.now()
        row = await self._run(
            lambda c: c.execute(
                "SELECT holder FROM ae_leases WHERE name = ? AND expires_at > ?", (name, now)
            ).fetchone()
        )
        return None if row is None else str(row[0])

    # -- documents ---------------------------------------------------------------------------
    async def put(self, collection: str, key: str, doc: Mapping[str, Any]) -> None:
        body = json.dumps(dict(doc), separators=(",", ":"), allow_nan=False)
        await self._run(
            lambda c: c.execute(
                "INSERT INTO ae_docs (collection, key, body) VALUES (?, ?, ?)"
                " ON CONFLICT(collection, key) DO UPDATE SET body = excluded.body",
                (collection, key, body),
            )
        )

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT body FROM ae_docs WHERE collection = ? AND key = ?", (collection, key)
            ).fetchone()
        )
        if row is None:
            return None
        doc: dict[str, Any] = json.loads(row[0])
        return doc

    async def delete(self, collection: str, key: str) -> bool:
        return await self._run(
            lambda c: (
                c.execute(
                    "DELETE FROM ae_docs WHERE collection = ? AND key = ?", (collection, key)
                ).rowcount
                == 1
            )
        )

    async def list(self, collection: str) -> dict[str, dict[str, Any]]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT key, body FROM ae_docs WHERE collection = ? ORDER BY key", (collection,)
            ).fetchall()
        )
        return {str(k): json.loads(b) for k, b in rows}

    async def ping(self) -> bool:
        try:
            return await self._run(lambda c: c.execute("SELECT 1").fetchone() == (1,))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._worker.shutdown(wait=True)
        self._con.close()
