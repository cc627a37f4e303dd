"""The ledger as a transparency log: signed checkpoints and proofs over a store's tree.

:class:`TransparencyLog` reads a :class:`~alertengine.ledger.base.TreeStore` (one round trip
per proof) and signs C2SP checkpoints with the log's Ed25519 key. The ``check_*`` functions
are what an auditor runs offline: they need the proof, the entry, a checkpoint and the
public key, nothing else. Proofs travel as JSON with base64 hashes (as checkpoints write
their root), entry ``seq`` N being leaf index N-1.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alertengine.ledger.base import LedgerError, TreeStore
from alertengine.ledger.chain import Entry, entry_leaf
from alertengine.ledger.checkpoint import (
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    TreeHead,
    open_checkpoint,
    sign_checkpoint,
    split_notes,
)
from alertengine.ledger.merkle import (
    EMPTY_ROOT,
    Coord,
    ProofError,
    assemble,
    consistency_plan,
    fold,
    inclusion_plan,
    node_hash,
    plan_coords,
    root_of,
    root_plan,
    verify_consistency,
    verify_inclusion,
)

#: Origins are ``<log name>/<tenant>``: each tenant's tree is its own log.
DEFAULT_LOG_NAME = "alertengine/ledger"


def origin_for(tenant_id: str, log_name: str = DEFAULT_LOG_NAME) -> str:
    return f"{log_name}/{tenant_id}"


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: Any, what: str) -> bytes:
    if not isinstance(s, str):
        raise ProofError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ProofError(f"{what} is not valid base64") from exc


def _int(d: Mapping[str, Any], key: str) -> int:
    v = d.get(key)
    if type(v) is not int or v < 0:
        raise ProofError(f"{key} must be a non-negative integer")
    return v


@dataclass(frozen=True)
class InclusionProof:
    tenant_id: str
    seq: int
    tree_size: int
    hashes: tuple[bytes, ...]

    @property
    def leaf_index(self) -> int:
        return self.seq - 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "inclusion",
            "tenant_id": self.tenant_id,
            "seq": self.seq,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "hashes": [_b64(h) for h in self.hashes],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InclusionProof:
        if d.get("type") != "inclusion" or not isinstance(d.get("hashes"), list):
            raise ProofError("not an inclusion proof")
        return cls(
            str(d.get("tenant_id", "")),
            _int(d, "seq"),
            _int(d, "tree_size"),
            tuple(_unb64(h, "a proof hash") for h in d["hashes"]),
        )


@dataclass(frozen=True)
class ConsistencyProof:
    tenant_id: str
    from_size: int
    to_size: int
    hashes: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "consistency",
            "tenant_id": self.tenant_id,
            "from_size": self.from_size,
            "to_size": self.to_size,
            "hashes": [_b64(h) for h in self.hashes],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConsistencyProof:
        if d.get("type") != "consistency" or not isinstance(d.get("hashes"), list):
            raise ProofError("not a consistency proof")
        return cls(
            str(d.get("tenant_id", "")),
            _int(d, "from_size"),
            _int(d, "to_size"),
            tuple(_unb64(h, "a proof hash") for h in d["hashes"]),
        )


class TransparencyLog:
    """Checkpoints and proofs for every tenant of a store, signed by one log key."""

    def __init__(
        self, store: TreeStore, signer: NoteSigner, *, log_name: str = DEFAULT_LOG_NAME
    ) -> None:
        self.store = store
        self.signer = signer
        self.log_name = log_name

    @property
    def verifier(self) -> NoteVerifier:
        return self.signer.verifier

    async def _nodes(self, tenant_id: str, coords: set[tuple[int, int]]) -> dict[Any, bytes]:
        return await self.store.tree_nodes(tenant_id, coords) if coords else {}

    async def _size(self, tenant_id: str, size: int | None) -> int:
        current = await self.store.tree_size(tenant_id)
        if size is None:
            return current
        if not 0 <= size <= current:
            raise LedgerError(f"tenant {tenant_id!r}: tree size {size} is beyond {current}")
        return size

    async def tree_head(self, tenant_id: str, size: int | None = None) -> TreeHead:
        n = await self._size(tenant_id, size)
        nodes = await self._nodes(tenant_id, set(root_plan(n)))
        return TreeHead(origin_for(tenant_id, self.log_name), n, root_of(n, nodes))

    async def checkpoint(self, tenant_id: str, size: int | None = None) -> str:
        """The tenant's tree head (the current one by default) as a signed note."""
        return sign_checkpoint(await self.tree_head(tenant_id, size), self.signer)

    async def inclusion_proof(
        self, tenant_id: str, seq: int, size: int | None = None
    ) -> InclusionProof:
        n = await self._size(tenant_id, size)
        if not 1 <= seq <= n:
            raise LedgerError(f"tenant {tenant_id!r}: no entry {seq} in a tree of size {n}")
        plan = inclusion_plan(seq - 1, n)
        hashes = assemble(plan, await self._nodes(tenant_id, plan_coords(plan)))
        return InclusionProof(tenant_id, seq, n, tuple(hashes))

    async def consistency_proof(
        self, tenant_id: str, from_size: int, to_size: int | None = None
    ) -> ConsistencyProof:
        n = await self._size(tenant_id, to_size)
        if not 0 <= from_size <= n:
            raise LedgerError(
                f"tenant {tenant_id!r}: no consistency proof from size {from_size} to {n}"
            )
        plan = consistency_plan(from_size, n)
        hashes = assemble(plan, await self._nodes(tenant_id, plan_coords(plan)))
        return ConsistencyProof(tenant_id, from_size, n, tuple(hashes))


# --- offline checks: the proof, the entry, a checkpoint and the public key ----------------


def check_inclusion(
    entry: Entry,
    proof: InclusionProof,
    checkpoint: str,
    verifiers: Sequence[NoteVerifier],
    *,
    log_name: str = DEFAULT_LOG_NAME,
) -> TreeHead:
    """Raise :class:`ProofError`/:class:`CheckpointError` unless ``entry`` is in the tree
    the signed ``checkpoint`` commits to. Returns that tree head."""
    head = open_checkpoint(checkpoint, verifiers, origin=origin_for(entry.tenant_id, log_name))
    if proof.tenant_id != entry.tenant_id or proof.seq != entry.seq:
        raise ProofError(
            f"the proof is for {proof.tenant_id!r} seq {proof.seq}, the entry is "
            f"{entry.tenant_id!r} seq {entry.seq}"
        )
    if proof.tree_size != head.size:
        raise ProofError(
            f"the proof is for tree size {proof.tree_size}, the checkpoint is size {head.size}"
        )
    verify_inclusion(proof.leaf_index, head.size, entry_leaf(entry), proof.hashes, head.root)
    return head


def check_consistency(
    old_checkpoint: str,
    new_checkpoint: str,
    proof: ConsistencyProof,
    verifiers: Sequence[NoteVerifier],
    *,
    origin: str | None = None,
) -> tuple[TreeHead, TreeHead]:
    """Raise unless the tree of ``old_checkpoint`` is a prefix of ``new_checkpoint``'s."""
    old = open_checkpoint(old_checkpoint, verifiers, origin=origin)
    new = open_checkpoint(new_checkpoint, verifiers, origin=old.origin)
    if (proof.from_size, proof.to_size) != (old.size, new.size):
        raise ProofError(
            f"the proof is from size {proof.from_size} to {proof.to_size}, the checkpoints"
            f" are sizes {old.size} and {new.size}"
        )
    verify_consistency(old.size, new.size, old.root, new.root, proof.hashes)
    return old, new


def parse_witness_file(text: str) -> list[str]:
    """Checkpoints a witness saw: a JSON list of notes, or notes one after another."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"the witness file is not valid JSON: {exc}") from exc
        if not all(isinstance(i, str) for i in items):
            raise CheckpointError("the witness file's JSON list must hold checkpoint notes")
        return list(items)
    return split_notes(text)


@dataclass(frozen=True)
class WitnessFinding:
    index: int  # the checkpoint's position in the witness file, from 0
    ok: bool
    size: int | None
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "ok": self.ok, "size": self.size, "problem": self.problem}


async def check_witnessed(
    tenant_id: str,
    notes: Sequence[str],
    current: TreeHead,
    verifiers: Sequence[NoteVerifier],
    consistency: Callable[[int, int], Awaitable[ConsistencyProof]],
    *,
    log_name: str = DEFAULT_LOG_NAME,
) -> list[WitnessFinding]:
    """Check each witnessed checkpoint of ``tenant_id`` against the store's current tree.

    Each must verify with the public keys, be for this tenant's log, not be larger than
    the current tree (else the store was rolled back or truncated), and be consistent with
    it (else history was rewritten: a fork). ``consistency(a, b)`` asks the store for a
    proof; the proof is checked here, never trusted. Notes of another tenant's log are
    skipped (a witness file may hold several tenants).
    """
    out: list[WitnessFinding] = []
    origin = origin_for(tenant_id, log_name)
    for i, note in enumerate(notes):
        try:
            head = open_checkpoint(note, verifiers)
        except CheckpointError as exc:
            out.append(WitnessFinding(i, False, None, f"witnessed checkpoint is invalid: {exc}"))
            continue
        if head.origin != origin:
            continue
        if head.size > current.size:
            out.append(
                WitnessFinding(
                    i,
                    False,
                    head.size,
                    f"a witness saw tree size {head.size}, the store has only {current.size}:"
                    " the ledger was rolled back or truncated",
                )
            )
            continue
        try:
            proof = await consistency(head.size, current.size)
            verify_consistency(head.size, current.size, head.root, current.root, proof.hashes)
        except (ProofError, LedgerError) as exc:
            out.append(
                WitnessFinding(
                    i,
                    False,
                    head.size,
                    f"witnessed size {head.size} is not a prefix of the current tree"
                    f" (size {current.size}): {exc}",
                )
            )
            continue
        out.append(WitnessFinding(i, True, head.size))
    return out


# --- key rotation, ledgered ------------------------------------------------------------------

#: The ledger entry kind that records a checkpoint key rotation.
ROTATION_KIND = "checkpoint-key"


def _rotation_message(old_vkey: str, new_vkey: str) -> bytes:
    return f"alertengine checkpoint key rotation\n{old_vkey}\n{new_vkey}\n".encode()


def rotation_data(old: NoteSigner, new: NoteSigner) -> dict[str, str]:
    """What a rotation entry holds: both verifier keys, each signing the pair.

    The old key's signature says its holder handed over to the new key; the new key's
    says the new holder accepts the log's history. Public keys and signatures only.
    """
    msg = _rotation_message(old.verifier.vkey, new.verifier.vkey)
    return {
        "old_key": old.verifier.vkey,
        "new_key": new.verifier.vkey,
        "old_signature": _b64(old.sign(msg)),
        "new_signature": _b64(new.sign(msg)),
    }


def keys_from_rotations(
    rotations: Sequence[Mapping[str, Any]], current: NoteVerifier
) -> list[NoteVerifier]:
    """Every key the log has used, trusted back from ``current`` through rotation records.

    Walking newest first: a record whose new key is already trusted and whose two
    signatures verify makes its old key trusted too (so checkpoints a witness saw before a
    rotation still verify). A record that does not verify breaks the walk there.
    """
    trusted = [current]
    for data in reversed(rotations):
        try:
            old = NoteVerifier.from_vkey(str(data["old_key"]))
            new = NoteVerifier.from_vkey(str(data["new_key"]))
            msg = _rotation_message(old.vkey, new.vkey)
            ok = (
                any(t.vkey == new.vkey for t in trusted)
                and old.verify(msg, _unb64(data["old_signature"], "old_signature"))
                and new.verify(msg, _unb64(data["new_signature"], "new_signature"))
            )
        except (KeyError, CheckpointError, ProofError):
            break
        if not ok:
            break
        if all(t.vkey != old.vkey for t in trusted):
            trusted.append(old)
    return trusted


# --- the stored tree against the entries -------------------------------------------------


class RootAccumulator:
    """The RFC 9162 root of a stream of leaves, in O(log n) memory (a compact range).

    ``made`` collects every perfect-subtree node as it completes (for a caller to compare
    with stored nodes and then clear).
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # (level, hash), levels strictly falling
        self.made: list[tuple[Coord, bytes]] = []

    def add(self, leaf: bytes) -> None:
        level, h, idx = 0, leaf, self.size
        self.made.append(((0, idx), h))
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            h, level, idx = node_hash(left, h), level + 1, idx >> 1
            self.made.append(((level, idx), h))
        self._stack.append((level, h))
        self.size += 1

    def root(self) -> bytes:
        return fold([h for _, h in self._stack]) if self._stack else EMPTY_ROOT


#: Leaves between two comparisons of computed with stored nodes in :func:`verify_tree`.
_TREE_BATCH = 4096


async def verify_tree(
    store: TreeStore,
    entries: AsyncIterator[Entry],
    tenant_id: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> str:
    """Recompute the tenant's tree from its entries and compare every stored node with it.

    Returns "" if the stored tree (its size and every perfect-subtree node, hence every
    root and proof) matches the entries, else the first difference. The chain walk does
    not read the tree; this does, at the cost of a second pass over the entries.
    """
    acc = RootAccumulator()
    stored_size = await store.tree_size(tenant_id)

    async def compare() -> str:
        made = [(c, h) for c, h in acc.made if (c[1] + 1) << c[0] <= stored_size]
        acc.made.clear()
        if not made:
            return ""
        try:
            stored = await store.tree_nodes(tenant_id, [c for c, _ in made])
        except LedgerError as exc:
            return str(exc)
        for c, h in made:
            if not hmac.compare_digest(stored[c], h):
                first = (c[1] << c[0]) + 1
                return (
                    f"stored tree node {c} does not match the entries (the tree was altered;"
                    f" proofs over entries from seq {first} on would fail)"
                )
        return ""

    async for e in entries:
        acc.add(entry_leaf(e))
        if acc.size % _TREE_BATCH == 0:
            if problem := await compare():
                return problem
            if progress is not None:
                progress(_TREE_BATCH)
    if problem := await compare():
        return problem
    if progress is not None:
        progress(acc.size % _TREE_BATCH)
    if stored_size != acc.size:
        return f"the tree holds {stored_size} leaves, the chain {acc.size} entries" + (
            " (run `alertengine ledger migrate`)" if stored_size < acc.size else ""
        )
    return ""
