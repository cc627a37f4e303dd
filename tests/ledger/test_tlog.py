"""The stores' Merkle trees and the transparency log over them, on every backend.

Rollback, fork and truncation of a store are caught by witnessed checkpoints; a verifier
talking to a lying server (GHSA-672p-m5jq-mrh8: a forked tree, an old checkpoint, a proof
for another tree) refuses.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from alertengine.ledger.base import LedgerError, LedgerStore, TreeStore
from alertengine.ledger.chain import entry_leaf
from alertengine.ledger.checkpoint import CheckpointError, NoteSigner
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.merkle import MerkleTree, ProofError
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.sqlite import SqliteLedgerStore
from alertengine.ledger.tlog import (
    ConsistencyProof,
    InclusionProof,
    TransparencyLog,
    check_consistency,
    check_inclusion,
    check_witnessed,
)
from tests.ledger.conftest import KEY, Backend, draft, sqlite_zero_tree_node

SIGNER = NoteSigner.generate("test-log")
V = [SIGNER.verifier]


def tlog(store: LedgerStore) -> TransparencyLog:
    assert isinstance(store, TreeStore)
    return TransparencyLog(store, SIGNER)


async def fill(store: LedgerStore, tenant: str, n: int, start: int = 0, tag: str = "") -> None:
    for i in range(start, start + n):
        await store.append(tenant, [draft(tenant, i, reason=f"entry {i}{tag}")])


async def test_tree_matches_the_entries_and_every_proof_verifies(store: LedgerStore) -> None:
    # Concurrent appends of mixed batch sizes: group commits cut the tree at odd places.
    await asyncio.gather(
        *(
            store.append("t1", [draft("t1", i * 10 + j) for j in range(i % 4 + 1)])
            for i in range(25)
        )
    )
    entries = [e async for e in store.scan("t1")]
    reference = MerkleTree()
    reference.append(entry_leaf(e) for e in entries)
    log = tlog(store)
    n = len(entries)
    assert await log.store.tree_size("t1") == n == await store.count("t1")
    head = await log.tree_head("t1")
    assert head.size == n and head.root == reference.root()
    note = await log.checkpoint("t1")
    for e in entries:
        proof = await log.inclusion_proof("t1", e.seq)
        assert check_inclusion(e, InclusionProof.from_dict(proof.to_dict()), note, V) == head
    for old in range(0, n + 1, 7):
        old_note = await log.checkpoint("t1", old)
        proof = await log.consistency_proof("t1", old)
        check_consistency(old_note, note, ConsistencyProof.from_dict(proof.to_dict()), V)


async def test_proof_requests_outside_the_tree_are_refused(store: LedgerStore) -> None:
    await fill(store, "t1", 5)
    log = tlog(store)
    for bad in (0, 6):
        with pytest.raises(LedgerError):
            await log.inclusion_proof("t1", bad)
    with pytest.raises(LedgerError):
        await log.consistency_proof("t1", 3, 9)
    with pytest.raises(LedgerError):
        await log.consistency_proof("t1", 6, 5)
    assert (await log.tree_head("nobody")).size == 0


async def test_an_altered_entry_fails_its_inclusion_proof(store: LedgerStore) -> None:
    await fill(store, "t1", 9)
    log = tlog(store)
    (e,) = [x async for x in store.scan("t1") if x.seq == 4]
    note, proof = await log.checkpoint("t1"), await log.inclusion_proof("t1", 4)
    import dataclasses

    for changed in (
        dataclasses.replace(e, reason="edited"),
        dataclasses.replace(e, data={**e.data, "i": 999}),
        dataclasses.replace(e, actor="engineer:mallory"),
    ):
        with pytest.raises(ProofError, match="root"):
            check_inclusion(changed, proof, note, V)
    (other,) = [x async for x in store.scan("t1") if x.seq == 5]
    with pytest.raises(ProofError, match="seq"):
        check_inclusion(other, proof, note, V)


# --- a verifier talking to a lying server ---------------------------------------------------


async def test_a_lying_server_is_refused(backend: Backend) -> None:
    honest = backend.open()
    liar = MemoryLedgerStore(KEY)  # the same log key, another history
    try:
        await fill(honest, "t1", 20)
        await fill(liar, "t1", 20, tag=" (forked)")
        await fill(liar, "t2", 30)
        h, f = tlog(honest), tlog(liar)
        trusted = await h.checkpoint("t1")  # what the client saw and kept

        # A forked tree: a validly signed checkpoint of another history, and its own proof.
        await fill(liar, "t1", 5, start=20)
        forked_note = await f.checkpoint("t1")
        with pytest.raises(ProofError, match=r"prefix|fork"):
            check_consistency(trusted, forked_note, await f.consistency_proof("t1", 20), V)

        # An old checkpoint: the server shows a smaller tree than the client already saw.
        old_note = await h.checkpoint("t1", 15)
        with pytest.raises(ProofError, match="backwards"):
            check_consistency(trusted, old_note, ConsistencyProof("t1", 20, 15, ()), V)

        # A proof for another tree: the honest new checkpoint, with the fork's (or another
        # tenant's) consistency proof between the same sizes.
        await fill(honest, "t1", 5, start=20)
        new_note = await h.checkpoint("t1")
        for wrong in (
            await f.consistency_proof("t1", 20, 25),
            await f.consistency_proof("t2", 20, 25),
        ):
            with pytest.raises(ProofError):
                check_consistency(trusted, new_note, wrong, V)
        check_consistency(trusted, new_note, await h.consistency_proof("t1", 20), V)

        # An inclusion proof from another tree, or against another tenant's checkpoint.
        (e,) = [x async for x in honest.scan("t1") if x.seq == 3]
        with pytest.raises(ProofError):
            check_inclusion(e, await f.inclusion_proof("t1", 3, 25), new_note, V)
        with pytest.raises(CheckpointError, match="not 'alertengine/ledger/t1'"):
            check_inclusion(e, await h.inclusion_proof("t1", 3), await f.checkpoint("t2"), V)
        # A proof for another tree size than the checkpoint's.
        with pytest.raises(ProofError, match="size"):
            check_inclusion(e, await h.inclusion_proof("t1", 3, 24), new_note, V)
    finally:
        await honest.close()


# --- rollback, fork, truncation: caught by witnessed checkpoints ---------------------------


async def witness_findings(store: LedgerStore, notes: list[str]) -> list[str]:
    log = tlog(store)
    current = await log.tree_head("t1")

    async def proof(a: int, b: int) -> ConsistencyProof:
        return await log.consistency_proof("t1", a, b)

    found = await check_witnessed("t1", notes, current, V, proof)
    return [f.problem for f in found if not f.ok]


Snapshot = Callable[[], Awaitable[Callable[[], Awaitable[None]]]]


def snapshotter(backend: Backend) -> Snapshot:
    """Take a copy of the whole store now; the returned coroutine puts it back."""
    if backend.name == "sqlite":
        assert backend.path is not None
        path = backend.path

        async def take_sqlite() -> Callable[[], Awaitable[None]]:
            copy = path.with_suffix(".old")
            src = sqlite3.connect(path)
            dst = sqlite3.connect(copy)
            src.backup(dst)
            src.close()
            dst.close()

            async def restore() -> None:
                for suffix in ("-wal", "-shm"):
                    path.with_name(path.name + suffix).unlink(missing_ok=True)
                shutil.copy(copy, path)

            return restore

        return take_sqlite
    assert backend.url is not None
    url = backend.url

    async def take_redis() -> Callable[[], Awaitable[None]]:
        r = aioredis.Redis.from_url(url)
        keys = [k async for k in r.scan_iter("ae:ledger:*")]
        dumps = {k: await r.dump(k) for k in keys}
        await r.aclose()

        async def restore() -> None:
            r = aioredis.Redis.from_url(url)
            await r.flushdb()
            for k, v in dumps.items():
                await r.restore(k, 0, v)
            await r.aclose()

        return restore

    return take_redis


@pytest.fixture(params=["sqlite", "redis"])
def persistent(request: pytest.FixtureRequest, tmp_path: object) -> Backend:
    from pathlib import Path

    from tests.ledger.conftest import redis_rewrite, sqlite_rewrite

    if request.param == "sqlite":
        path = Path(str(tmp_path)) / "ledger.db"
        return Backend(
            "sqlite", lambda: SqliteLedgerStore(path, key=KEY), sqlite_rewrite(path), path=path
        )
    url = request.getfixturevalue("redis_server").url
    return Backend("redis", lambda: RedisLedgerStore(url, key=KEY), redis_rewrite(url), url=url)


async def test_rollback_passes_verify_but_not_the_witness(persistent: Backend) -> None:
    """20 of 30 entries, with their own signed head: the chain verifies, the witness refuses."""
    store = persistent.open()
    await fill(store, "t1", 20)
    restore = await snapshotter(persistent)()
    await fill(store, "t1", 10, start=20)
    witnessed = [await tlog(store).checkpoint("t1", 25), await tlog(store).checkpoint("t1")]
    assert await witness_findings(store, witnessed) == []
    await store.close()

    await restore()  # the older, internally consistent copy replaces the store
    store = persistent.open()
    try:
        result = await store.verify("t1")
        assert result.ok and result.head_seq == 20  # the hash chain alone cannot tell
        problems = await witness_findings(store, witnessed)
        assert len(problems) == 2
        assert all("rolled back or truncated" in p for p in problems)
    finally:
        await store.close()


async def test_fork_is_caught_by_the_witness(persistent: Backend) -> None:
    store = persistent.open()
    await fill(store, "t1", 20)
    restore = await snapshotter(persistent)()
    await fill(store, "t1", 5, start=20)
    witnessed = [await tlog(store).checkpoint("t1")]  # size 25, honest history
    await store.close()

    await restore()
    store = persistent.open()
    try:
        await fill(store, "t1", 10, start=20, tag=" (rewritten)")  # size 30, another history
        assert (await store.verify("t1")).ok
        (problem,) = await witness_findings(store, witnessed)
        assert "not a prefix" in problem
    finally:
        await store.close()


async def test_truncation_is_caught_by_the_witness(persistent: Backend) -> None:
    """Entries cut from the tail, the head re-signed (an attacker with the HMAC key)."""
    store = persistent.open()
    await fill(store, "t1", 30)
    witnessed = [await tlog(store).checkpoint("t1")]
    entries = [e async for e in store.scan("t1")]
    await store.close()
    # Rebuild a 20-entry store from the first 20 entries, chain and signed head intact.
    clone = MemoryLedgerStore(KEY)
    for e in entries[:20]:
        await clone.append("t1", [draft("t1", e.seq - 1)])
    assert [e.hash async for e in clone.scan("t1")] == [e.hash for e in entries[:20]]
    problems = await witness_findings(clone, witnessed)
    assert problems and "rolled back or truncated" in problems[0]


async def test_witnessed_checkpoint_with_a_bad_signature_is_reported(store: LedgerStore) -> None:
    await fill(store, "t1", 4)
    note = await tlog(store).checkpoint("t1")
    forged = note.replace("\n4\n", "\n3\n")
    (problem,) = await witness_findings(store, [forged])
    assert "invalid" in problem


# --- ledgers written before the tree existed -------------------------------------------------


async def drop_tree(backend: Backend) -> None:
    """Remove t1's stored tree, as a ledger from before this version has none."""
    if backend.name == "sqlite":
        con = sqlite3.connect(str(backend.path))
        con.execute("DROP TABLE ledger_tree")
        con.close()
    else:
        r = aioredis.Redis.from_url(str(backend.url))
        for k in [k async for k in r.scan_iter("ae:ledger:{t1}:tree:*")]:
            await r.delete(k)
        await r.aclose()


async def test_a_pre_tree_ledger_gets_its_tree(persistent: Backend) -> None:
    store = persistent.open()
    await fill(store, "t1", 23)
    want = (await tlog(store).tree_head("t1")).root
    await store.close()
    await drop_tree(persistent)

    store = persistent.open()
    try:
        assert isinstance(store, TreeStore)
        assert await store.tree_size("t1") == 0
        seen: list[int] = []
        assert await store.build_tree("t1", progress=seen.append) == 23
        assert sum(seen) == 23
        assert (await tlog(store).tree_head("t1")).root == want
        assert await store.build_tree("t1") == 0
    finally:
        await store.close()


async def test_an_append_to_a_pre_tree_ledger_builds_the_tree_first(persistent: Backend) -> None:
    store = persistent.open()
    await fill(store, "t1", 11)
    await store.close()
    await drop_tree(persistent)
    store = persistent.open()
    try:
        await fill(store, "t1", 3, start=11)
        entries = [e async for e in store.scan("t1")]
        reference = MerkleTree()
        reference.append(entry_leaf(e) for e in entries)
        head = await tlog(store).tree_head("t1")
        assert head.size == 14 and head.root == reference.root()
    finally:
        await store.close()


# --- the stored tree checked against the entries -----------------------------------------


async def tamper_node(backend: Backend, level: int, idx: int) -> None:
    """Flip one byte of a stored tree node behind the store's back."""
    if backend.name == "sqlite":
        assert backend.path is not None
        sqlite_zero_tree_node(backend.path, "t1", level, idx)
    else:
        r = aioredis.Redis.from_url(str(backend.url))
        await r.setrange(f"ae:ledger:{{t1}}:tree:{level}", idx * 32, b"\x00" * 32)
        await r.aclose()


@pytest.mark.parametrize(("level", "idx", "first_seq"), [(0, 9, 10), (1, 5, 11), (3, 2, 17)])
async def test_verify_tree_finds_an_altered_node(
    persistent: Backend, level: int, idx: int, first_seq: int
) -> None:
    from alertengine.ledger.tlog import verify_tree

    store = persistent.open()
    try:
        await store.append("t1", [draft("t1", i) for i in range(5000)])
        assert isinstance(store, TreeStore)
        seen: list[int] = []
        assert await verify_tree(store, store.scan("t1"), "t1", progress=seen.append) == ""
        assert sum(seen) == 5000
        await tamper_node(persistent, level, idx)
        problem = await verify_tree(store, store.scan("t1"), "t1")
        assert f"node ({level}, {idx})" in problem and f"seq {first_seq} on" in problem
        assert (await store.verify("t1")).ok  # the chain walk does not read the tree
    finally:
        await store.close()


async def test_verify_tree_reports_a_lagging_tree(persistent: Backend) -> None:
    from alertengine.ledger.tlog import verify_tree

    store = persistent.open()
    await fill(store, "t1", 7)
    await store.close()
    await drop_tree(persistent)
    store = persistent.open()
    try:
        assert isinstance(store, TreeStore)
        problem = await verify_tree(store, store.scan("t1"), "t1")
        assert "0 leaves, the chain 7" in problem and "migrate" in problem
    finally:
        await store.close()


async def _proved_entry() -> tuple[str, InclusionProof, str]:
    store = MemoryLedgerStore(KEY)
    await fill(store, "t1", 13)
    log = tlog(store)
    (e,) = [x async for x in store.scan("t1") if x.seq == 6]
    return e.to_json(), await log.inclusion_proof("t1", 6), await log.checkpoint("t1")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_changed_byte_of_the_entry_fails_its_proof(data: st.DataObject) -> None:
    import json

    from alertengine.ledger.chain import Entry

    line, proof, note = asyncio.run(_proved_entry())
    raw = line.encode()
    i = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[i]))
    changed = raw[:i] + bytes([new]) + raw[i + 1 :]
    try:
        entry = Entry.from_dict(json.loads(changed))
    except (ValueError, KeyError, TypeError):
        return  # no longer an entry at all
    if entry.to_json() == line:
        return  # the same entry written differently (e.g. "1.0" vs "1.00"): same leaf
    with pytest.raises((ProofError, CheckpointError)):
        check_inclusion(entry, proof, note, V)
