"""Open the ledger and the state store from one URL.

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` — embedded default,
  both stores in the one file (parent folder created);
* ``redis://host:port/db`` (or ``rediss://``) — scale-out, several orchestrators share it;
* ``memory://`` — in-process, nothing kept (simulator, tests).
"""

from __future__ import annotations

from pathlib import Path

from alertengine.clock import Clock
from alertengine.ledger.base import LedgerStore
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.sqlite import SqliteLedgerStore
from alertengine.stores.base import StateStore
from alertengine.stores.memory import MemoryStateStore
from alertengine.stores.redis import RedisStateStore
from alertengine.stores.sqlite import SqliteStateStore

#: Used when ``ALERTENGINE_STORE_URL`` is not set: a file under ./var.
DEFAULT_STORE_URL = "sqlite:///var/alertengine.db"

_SCHEMES = "sqlite:///path.db, redis://host:port/db or memory://"


def sqlite_path(url: str) -> Path:
    """The file a ``sqlite:///...`` URL names (three slashes: relative, four: absolute)."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///path/to/file.db)")
    path = url[len("sqlite:///") :]
    if not path:
        raise ValueError(f"the sqlite URL {url!r} names no file")
    return Path(path)


def _kind(url: str) -> str:
    if url.startswith("sqlite:"):
        return "sqlite"
    if url.startswith(("redis://", "rediss://", "unix://")):
        return "redis"
    if url in ("memory://", "memory:"):
        return "memory"
    raise ValueError(f"unsupported store URL {url!r}: use {_SCHEMES}")


def check_store_url(url: str) -> str:
    """The store kind ("sqlite", "redis", "memory"); ``ValueError`` saying why it cannot open."""
    kind = _kind(url)
    if kind == "sqlite":
        sqlite_path(url)
    return kind


def open_ledger(url: str, *, key: bytes | None) -> LedgerStore:
    """The ledger at ``url``. ``key`` signs head checkpoints; None opens it read-only."""
    kind = _kind(url)
    if kind == "sqlite":
        return SqliteLedgerStore(sqlite_path(url), key=key)
    if kind == "redis":
        return RedisLedgerStore(url, key=key)
    return MemoryLedgerStore(key)


def open_state_store(url: str, *, clock: Clock | None = None) -> StateStore:
    """The state store at ``url``; ``clock`` judges expiry (ignored by Redis: server time)."""
    kind = _kind(url)
    if kind == "sqlite":
        return SqliteStateStore(sqlite_path(url), clock=clock)
    if kind == "redis":
        return RedisStateStore(url)
    return MemoryStateStore(clock)


def open_stores(
    url: str, *, ledger_key: bytes | None, clock: Clock | None = None
) -> tuple[LedgerStore, StateStore]:
    """Both stores of a deployment from one URL (see the module docstring for schemes).

    Raises ``ValueError`` for an unknown scheme. Nothing connects yet for Redis; SQLite
    creates its file and tables here.
    """
    return open_ledger(url, key=ledger_key), open_state_store(url, clock=clock)
