"""The checkpoints the orchestrator sends are signed with the log's own key, the one
``alertengine ledger public-key`` prints for the same store (so receivers can verify)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertengine.execute.receipts import checkpoint_source
from alertengine.ledger.checkpoint import NoteSigner, open_checkpoint
from alertengine.ledger.keys import ENV_CHECKPOINT_KEY, load_signer
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.sqlite import SqliteLedgerStore
from tests.ledger.conftest import KEY, draft
from tests.support.redis_server import RedisServer


async def test_sqlite_signs_with_the_key_next_to_the_ledger(tmp_path: Path) -> None:
    ledger = SqliteLedgerStore(tmp_path / "ae.db", key=KEY)
    await ledger.append("acme", [draft("acme", 0)])
    source = checkpoint_source(ledger, {})
    assert source is not None
    note = await source("acme")
    key = load_signer({}, state_dir=tmp_path, create=False)  # what `public-key` reads
    assert open_checkpoint(note, [key.verifier]).size == 1
    await ledger.close()


async def test_redis_signs_with_the_key_in_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.chdir(tmp_path)
    ledger = RedisLedgerStore(redis_server.url, key=KEY)
    await ledger.append("acme", [draft("acme", 0)])
    source = checkpoint_source(ledger, {})
    assert source is not None
    note = await source("acme")
    key = load_signer({}, state_dir=Path("var"), create=False)
    assert open_checkpoint(note, [key.verifier]).size == 1
    await ledger.close()


async def test_memory_uses_the_environment_key_else_a_throwaway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ledger = MemoryLedgerStore(KEY)
    await ledger.append("acme", [draft("acme", 0)])
    named = NoteSigner.generate("alertengine")
    source = checkpoint_source(ledger, {ENV_CHECKPOINT_KEY: named.skey})
    assert source is not None
    assert open_checkpoint(await source("acme"), [named.verifier]).size == 1
    throwaway = checkpoint_source(ledger, {})
    assert throwaway is not None and await throwaway("acme")
    assert not (tmp_path / "var").exists()  # nothing written for a memory store
