"""An in-process :class:`~alertengine.ledger.base.LedgerStore`, for the simulator and tests.

Clock-free: timestamps come from the drafts, so a simulator on virtual time gets a ledger
on virtual time. Same contract as the persistent backends (chain, signed head,
compare-and-append), nothing survives the process.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Collection, Sequence

from alertengine.ledger.base import (
    BAD_ENTRY,
    LedgerConflict,
    LedgerError,
    LedgerQuery,
    check_drafts,
)
from alertengine.ledger.chain import (
    GENESIS_HASH,
    ChainVerifier,
    Checkpoint,
    Entry,
    EntryDraft,
    VerifyResult,
    entry_leaf,
    seal_many,
    sign_checkpoint,
)
from alertengine.ledger.merkle import Coord, MerkleTree


class MemoryLedgerStore:
    """Chains per tenant in lists. ``key`` signs heads; a random one if not given."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key else secrets.token_bytes(32)
        self._chains: dict[str, list[Entry]] = {}
        self._heads: dict[str, Checkpoint] = {}
        self._trees: dict[str, MerkleTree] = {}

    async def append(
        self, tenant_id: str, drafts: Sequence[EntryDraft], *, expect_seq: int | None = None
    ) -> list[Entry]:
        check_drafts(tenant_id, drafts)
        chain = self._chains.get(tenant_id, [])
        head_seq = len(chain)
        if expect_seq is not None and expect_seq != head_seq:
            raise LedgerConflict(tenant_id, expect_seq, head_seq)
        if not drafts:
            return []
        try:
            sealed = seal_many(drafts, head_seq, chain[-1].hash if chain else GENESIS_HASH)
        except (ValueError, TypeError) as exc:
            raise LedgerError(f"cannot seal the entries: {exc}", cause=BAD_ENTRY) from exc
        # Sealing can fail (a NaN, a non-JSON value): only touch state once it succeeded.
        self._chains.setdefault(tenant_id, chain).extend(sealed)
        self._tree(tenant_id).append(entry_leaf(e) for e in sealed)
        last = sealed[-1]
        self._heads[tenant_id] = sign_checkpoint(self._key, tenant_id, last.seq, last.hash)
        return sealed

    async def read(self, query: LedgerQuery) -> list[Entry]:
        chain = self._chains.get(query.tenant_id, [])
        out: list[Entry] = []
        for e in chain[query.after_seq :]:
            if query.limit is not None and len(out) >= query.limit:
                break
            if query.matches(e):
                out.append(e)
        return out

    async def scan(self, tenant_id: str, *, batch: int = 5000) -> AsyncIterator[Entry]:
        chain = self._chains.get(tenant_id, [])
        end = len(chain)  # a snapshot: entries appended while scanning are not included
        for start in range(0, end, batch):
            for e in chain[start : min(start + batch, end)]:
                yield e
            await asyncio.sleep(0)  # let other tasks run between batches

    async def head(self, tenant_id: str) -> Checkpoint | None:
        return self._heads.get(tenant_id)

    async def tenants(self) -> list[str]:
        return sorted(t for t, c in self._chains.items() if c)

    async def count(self, tenant_id: str) -> int:
        return len(self._chains.get(tenant_id, []))

    async def verify(
        self, tenant_id: str, *, progress: Callable[[int], None] | None = None
    ) -> VerifyResult:
        chain = list(self._chains.get(tenant_id, []))
        checkpoint = self._heads.get(tenant_id)
        verifier = ChainVerifier(tenant_id)
        for e in chain:
            if not verifier.feed(e):
                break
            if progress is not None and verifier.count % 10_000 == 0:
                progress(10_000)
        if progress is not None:
            progress(verifier.count % 10_000)
        return verifier.finish(checkpoint, self._key)

    async def close(self) -> None:
        return None

    # -- the Merkle tree (TreeStore) -------------------------------------------------------
    def _tree(self, tenant_id: str) -> MerkleTree:
        tree = self._trees.get(tenant_id)
        if tree is None:
            tree = self._trees[tenant_id] = MerkleTree()
        return tree

    async def tree_size(self, tenant_id: str) -> int:
        return self._tree(tenant_id).size

    async def tree_nodes(self, tenant_id: str, coords: Collection[Coord]) -> dict[Coord, bytes]:
        try:
            return self._tree(tenant_id).nodes(coords)
        except IndexError:
            raise LedgerError(f"tenant {tenant_id!r}: the tree lacks a node asked for") from None

    async def build_tree(
        self, tenant_id: str, *, progress: Callable[[int], None] | None = None
    ) -> int:
        tree, chain = self._tree(tenant_id), self._chains.get(tenant_id, [])
        missing = chain[tree.size :]
        tree.append(entry_leaf(e) for e in missing)
        if progress is not None:
            progress(len(missing))
        return len(missing)

    # -- for tamper tests and the simulator's "what if" runs; not part of the contract ----
    def _raw_chain(self, tenant_id: str) -> list[Entry]:
        return self._chains.setdefault(tenant_id, [])
