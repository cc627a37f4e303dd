from __future__ import annotations

from pathlib import Path

import pytest

from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.sqlite import SqliteLedgerStore
from alertengine.stores.factory import open_stores, sqlite_path
from alertengine.stores.memory import MemoryStateStore
from alertengine.stores.redis import RedisStateStore
from alertengine.stores.sqlite import SqliteStateStore
from tests.ledger.conftest import KEY, draft
from tests.support.redis_server import RedisServer


async def test_sqlite_url_opens_both_stores_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "ae.db"
    ledger, state = open_stores(f"sqlite:///{path}", ledger_key=KEY)
    try:
        assert isinstance(ledger, SqliteLedgerStore) and isinstance(state, SqliteStateStore)
        await ledger.append("t1", [draft()])
        assert await state.claim("k", 10)
        assert ledger.path == state.path == path
    finally:
        await ledger.close()
        await state.close()


def test_relative_and_absolute_sqlite_paths() -> None:
    assert sqlite_path("sqlite:///var/alertengine.db") == Path("var/alertengine.db")
    assert sqlite_path("sqlite:////srv/ae.db") == Path("/srv/ae.db")
    with pytest.raises(ValueError):
        sqlite_path("sqlite:///")


async def test_redis_and_memory_urls(redis_server: RedisServer) -> None:
    ledger, state = open_stores(redis_server.url, ledger_key=KEY)
    try:
        assert isinstance(ledger, RedisLedgerStore) and isinstance(state, RedisStateStore)
        await ledger.append("t1", [draft()])
        assert await state.claim("k", 10)
    finally:
        await ledger.close()
        await state.close()
    m_ledger, m_state = open_stores("memory://", ledger_key=KEY)
    assert isinstance(m_ledger, MemoryLedgerStore) and isinstance(m_state, MemoryStateStore)


def test_unknown_scheme_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_stores("postgres://x", ledger_key=KEY)
