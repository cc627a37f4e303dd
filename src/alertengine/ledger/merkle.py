"""The RFC 9162 (Certificate Transparency v2) §2.1 Merkle tree: pure functions, no I/O.

leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right); the tree over ``n``
leaves splits at the largest power of two below ``n`` (left-balanced). A store keeps every
*perfect* subtree's hash, addressed by :data:`Coord` ``(level, index)``: the node over
leaves ``[index·2^level, (index+1)·2^level)``. Every root and every proof element of any
tree size is the right fold of at most ~log2(n) such stored nodes, so this module *plans*
which coordinates a root or proof needs (one round trip to the store), then *assembles* the
answer from what the store returned. Verification (§2.1.3.2, §2.1.4.2) needs no store.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence

#: (level, index) of a perfect subtree: level 0 are the leaves.
Coord = tuple[int, int]
#: One proof element: the right fold of these perfect subtrees, left to right.
Plan = list[list[Coord]]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A proof does not prove what it claims (or is malformed). The message says why."""


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): RFC 9162's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[Coord]:
    """The perfect subtrees covering ``[start, end)``, left to right, greedy from the left.

    For the ranges a root or a proof asks about (a subtree of the RFC's split), their
    right fold is the RFC's MTH of the range.
    """
    out: list[Coord] = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length()
        while (1 << level) > end - start:
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """Right fold with :func:`node_hash`: H(h0, H(h1, … hk)). One hash is itself."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root_plan(size: int) -> list[Coord]:
    return range_nodes(0, size)


def inclusion_plan(index: int, size: int) -> Plan:
    """RFC 9162 §2.1.3.1 PATH(index, D[size]): which subtrees each proof hash folds."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    path: Plan = []
    a, b = 0, size
    while b - a > 1:
        k = _split(b - a)
        if index < a + k:
            path.append(range_nodes(a + k, b))
            b = a + k
        else:
            path.append(range_nodes(a, a + k))
            a = a + k
    path.reverse()  # the RFC lists the deepest sibling first
    return path


def consistency_plan(old: int, new: int) -> Plan:
    """RFC 9162 §2.1.4.1 PROOF(old, D[new]) (empty for ``old`` 0 or ``old == new``)."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old == 0 or old == new:
        return []
    out: Plan = []
    a, b, m, whole = 0, new, old, True
    while True:
        if m == b - a:
            if not whole:
                out.append(range_nodes(a, b))
            break
        k = _split(b - a)
        if m <= k:
            out.append(range_nodes(a + k, b))
            b = a + k
        else:
            out.append(range_nodes(a, a + k))
            a, m, whole = a + k, m - k, False
    out.reverse()
    return out


def plan_coords(plan: Iterable[Sequence[Coord]]) -> set[Coord]:
    return {c for part in plan for c in part}


def assemble(plan: Iterable[Sequence[Coord]], nodes: Mapping[Coord, bytes]) -> list[bytes]:
    """Each proof element from the stored nodes (KeyError if the store lacks one)."""
    return [fold([nodes[c] for c in part]) for part in plan]


def root_of(size: int, nodes: Mapping[Coord, bytes]) -> bytes:
    return EMPTY_ROOT if size == 0 else fold([nodes[c] for c in root_plan(size)])


def append_nodes(
    size: int, leaves: Iterable[bytes], get: Callable[[Coord], bytes]
) -> list[tuple[int, int, bytes]]:
    """The perfect-subtree nodes that appending ``leaves`` to a tree of ``size`` creates.

    ``get`` returns an already stored node; only the tree's right frontier (the roots of
    :func:`root_plan` of ``size``) is asked for. A compact range: O(1) amortised per leaf.
    """
    # The frontier's levels fall strictly left to right; a new node merges with the
    # top while their levels match (binary carry).
    stack = [(level, get((level, idx))) for level, idx in root_plan(size)]
    out: list[tuple[int, int, bytes]] = []
    i = size
    for h in leaves:
        out.append((0, i, h))
        level, idx = 0, i
        while stack and stack[-1][0] == level:
            h = _sha256(b"\x01" + stack.pop()[1] + h).digest()
            level, idx = level + 1, idx >> 1
            out.append((level, idx, h))
        stack.append((level, h))
        i += 1
    return out


def storage_index(level: int, idx: int) -> int:
    """The node's position in post-order: the order :func:`append_nodes` creates nodes in.

    A store keyed by it writes every append's new nodes at consecutive keys (one B-tree
    page, not one per level). The node completes when leaf ``m - 1`` is appended,
    ``m = (idx + 1)·2^level``; before that leaf the tree held ``2(m-1) - popcount(m-1)``
    nodes, and the leaf's append makes levels 0..level in turn.
    """
    m = (idx + 1) << level
    return 2 * (m - 1) - (m - 1).bit_count() + level


def size_from_node_count(total: int) -> int:
    """The leaf count n of a tree holding ``total`` = 2n - popcount(n) perfect nodes."""
    lo, hi = 0, total
    while lo < hi:  # 2n - popcount(n) grows strictly with n: bisect
        mid = (lo + hi) // 2
        if 2 * mid - mid.bit_count() < total:
            lo = mid + 1
        else:
            hi = mid
    if 2 * lo - lo.bit_count() != total:
        raise ValueError(f"{total} nodes is no complete tree")
    return lo


class MerkleTree:
    """Every perfect-subtree node in memory (the memory store's tree; a test oracle)."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = []

    @property
    def size(self) -> int:
        return len(self.levels[0]) if self.levels else 0

    def append(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        made = append_nodes(self.size, leaves, self.node)
        for level, idx, h in made:
            while len(self.levels) <= level:
                self.levels.append([])
            assert len(self.levels[level]) == idx
            self.levels[level].append(h)
        return made

    def node(self, c: Coord) -> bytes:
        return self.levels[c[0]][c[1]]

    def nodes(self, coords: Iterable[Coord]) -> dict[Coord, bytes]:
        return {c: self.node(c) for c in coords}

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        return root_of(size, self.nodes(root_plan(size)))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        plan = inclusion_plan(index, size)
        return assemble(plan, self.nodes(plan_coords(plan)))

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        plan = consistency_plan(old, new)
        return assemble(plan, self.nodes(plan_coords(plan)))


# --- verification (what a third party runs: no store, no tree) ---------------------------


def _eq(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _check_hashes(hashes: Sequence[bytes], what: str) -> None:
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ProofError(f"{what}: every hash must be {HASH_SIZE} bytes")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root that ``proof`` leads to from ``leaf`` at ``index``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hashes([leaf, *proof], "inclusion proof")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long for this index and tree size")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is too short for this index and tree size")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``leaf`` is at ``index`` of the tree with ``root``."""
    if not _eq(root_from_inclusion_proof(index, size, leaf, proof), root):
        raise ProofError("inclusion proof does not lead to the checkpoint's root hash")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: raise :class:`ProofError` unless the tree of ``old_size`` with
    ``old_root`` is a prefix of the tree of ``new_size`` with ``new_root``."""
    _check_hashes([old_root, new_root, *proof], "consistency proof")
    if old_size < 0 or old_size > new_size:
        raise ProofError(
            f"tree size went backwards: {old_size} then {new_size} (a rollback or truncation)"
        )
    if old_size == new_size:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if not _eq(old_root, new_root):
            raise ProofError(f"two different roots for the same tree size {old_size} (a fork)")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("empty consistency proof between different sizes")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if not _eq(fr, old_root):
        raise ProofError(
            f"the tree of size {old_size} is not a prefix of the tree of size {new_size}"
            " (old root mismatch: a fork or a rewritten history)"
        )
    if not _eq(sr, new_root):
        raise ProofError(f"consistency proof does not lead to the root of size {new_size}")
