"""The pure RFC 9162 tree: published vectors, every proof verifies, every changed byte fails."""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertengine.ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    ProofError,
    consistency_plan,
    inclusion_plan,
    leaf_hash,
    node_hash,
    range_nodes,
    size_from_node_count,
    storage_index,
    verify_consistency,
    verify_inclusion,
)

# transparency-dev/merkle testonly/constants.go (the Certificate Transparency test tree):
# leaf inputs, and the root of every prefix of them, sizes 0..8.
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    EMPTY_ROOT.hex(),
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# Perfect-subtree hashes of the same tree, NodeHashes() there: [level][index].
NODES = {
    (1, 0): "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    (1, 3): "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    (2, 1): "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    (3, 0): "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}


def b64(s: str) -> bytes:
    return base64.b64decode(s)


@lru_cache(maxsize=1)
def big_tree() -> MerkleTree:
    t = MerkleTree()
    t.append(leaf_hash(i.to_bytes(4, "big")) for i in range(3000))
    return t


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH, recursively, as written: the oracle for the incremental tree."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def test_roots_match_the_published_vectors() -> None:
    t = MerkleTree()
    assert t.root() == EMPTY_ROOT
    for n, leaf in enumerate(LEAVES, start=1):
        t.append([leaf_hash(leaf)])
        assert t.root().hex() == ROOTS[n]
    for size in range(9):
        assert t.root(size).hex() == ROOTS[size]
    for coord, h in NODES.items():
        assert t.node(coord).hex() == h


def test_proofs_match_the_published_vectors() -> None:
    t = MerkleTree()
    t.append(leaf_hash(x) for x in LEAVES)
    # testdata/inclusion/3/happy-path.json: leaf 2 of a tree of 3.
    assert t.inclusion_proof(2, 3) == [b64("+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU=")]
    verify_inclusion(
        2,
        3,
        b64("ApjRIpBtz8EIkstTpzmS/FufST6kybrbJ7eRtBJ6f+c="),
        [b64("+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU=")],
        b64("rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc="),
    )
    # testdata/consistency/3/happy-path.json: size 2 to size 5.
    proof = [
        b64("Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4="),
        b64("vBoGQ7EuTS18d5GPROD095qDi2z57FtcKD4fTYhZnms="),
    ]
    assert t.consistency_proof(2, 5) == proof
    verify_consistency(
        2,
        5,
        b64("+sVCA+fMaWzw38tCySodnbr3CtnmIfS9jZhmLwDjwSU="),
        b64("Tju7H3tHjc/nH7YxYxUZo7yhLJrvyhYSv85ME6hiZNQ="),
        proof,
    )


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_incremental_root_equals_the_rfc_definition(leaves: list[bytes]) -> None:
    t = MerkleTree()
    for leaf in leaves:  # one at a time: every append path, not only batches
        t.append([leaf_hash(leaf)])
    for n in range(len(leaves) + 1):
        assert t.root(n) == reference_root(leaves[:n])


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 3000).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_inclusion_proof_verifies(pair: tuple[int, int]) -> None:
    size, index = pair
    t = big_tree()
    verify_inclusion(index, size, t.node((0, index)), t.inclusion_proof(index, size), t.root(size))


def test_inclusion_every_pair_up_to_64() -> None:
    t = big_tree()
    for size in range(1, 65):
        for index in range(size):
            proof = t.inclusion_proof(index, size)
            assert len(proof) == len(inclusion_plan(index, size)) <= size.bit_length()
            verify_inclusion(index, size, t.node((0, index)), proof, t.root(size))


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 3000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_every_consistency_proof_verifies(pair: tuple[int, int]) -> None:
    old, new = pair
    t = big_tree()
    proof = t.consistency_proof(old, new)
    assert len(consistency_plan(old, new)) == len(proof)
    verify_consistency(old, new, t.root(old), t.root(new), proof)


def _flip(b: bytes, i: int, bit: int) -> bytes:
    return b[:i] + bytes([b[i] ^ (1 << bit)]) + b[i + 1 :]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_changed_byte_of_an_inclusion_proof_fails(data: st.DataObject) -> None:
    t = big_tree()
    size = data.draw(st.integers(2, 3000))
    index = data.draw(st.integers(0, size - 1))
    leaf, proof, root = t.node((0, index)), t.inclusion_proof(index, size), t.root(size)
    # (Not the size alone: a root binds a proof to its size only through the checkpoint,
    # which signs size and root together; see test_tlog for a proof against another size.)
    target = data.draw(st.sampled_from(["leaf", "root", "proof", "index", "drop"]))
    bit = data.draw(st.integers(0, 7))
    byte = data.draw(st.integers(0, 31))
    if target == "leaf":
        leaf = _flip(leaf, byte, bit)
    elif target == "root":
        root = _flip(root, byte, bit)
    elif target == "proof":
        k = data.draw(st.integers(0, len(proof) - 1))
        proof[k] = _flip(proof[k], byte, bit)
    elif target == "index":
        index = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    else:
        proof = proof[:-1]
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, proof, root)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_changed_byte_of_a_consistency_proof_fails(data: st.DataObject) -> None:
    t = big_tree()
    new = data.draw(st.integers(2, 3000))
    old = data.draw(st.integers(1, new - 1))
    old_root, new_root, proof = t.root(old), t.root(new), t.consistency_proof(old, new)
    target = data.draw(st.sampled_from(["old", "new", "proof", "drop", "extra"]))
    bit, byte = data.draw(st.integers(0, 7)), data.draw(st.integers(0, 31))
    if target == "old":
        old_root = _flip(old_root, byte, bit)
    elif target == "new":
        new_root = _flip(new_root, byte, bit)
    elif target == "proof":
        k = data.draw(st.integers(0, len(proof) - 1))
        proof[k] = _flip(proof[k], byte, bit)
    elif target == "drop":
        proof = proof[:-1]
    else:
        proof = [*proof, proof[-1]]
    with pytest.raises(ProofError):
        verify_consistency(old, new, old_root, new_root, proof)


def test_a_forked_tree_is_not_consistent() -> None:
    """Same size-20 prefix length, one different entry: no proof from the fork verifies."""
    honest, forked = MerkleTree(), MerkleTree()
    honest.append(leaf_hash(bytes([i])) for i in range(30))
    forked.append(leaf_hash(bytes([i if i != 7 else 99])) for i in range(30))
    with pytest.raises(ProofError, match=r"fork|prefix"):
        verify_consistency(
            20, 30, honest.root(20), forked.root(30), forked.consistency_proof(20, 30)
        )
    with pytest.raises(ProofError, match="fork"):
        verify_consistency(30, 30, honest.root(30), forked.root(30), [])


def test_a_rollback_is_not_consistent() -> None:
    t = MerkleTree()
    t.append(leaf_hash(bytes([i])) for i in range(30))
    with pytest.raises(ProofError, match="backwards"):
        verify_consistency(30, 20, t.root(30), t.root(20), [])


def test_range_nodes_cover_the_range_with_perfect_subtrees() -> None:
    for start in range(0, 64, 8):
        for end in range(start, 70):
            covered = []
            for level, idx in range_nodes(start, end):
                covered.extend(range(idx << level, (idx + 1) << level))
            assert covered == list(range(start, end))


def test_storage_index_is_the_append_order() -> None:
    """A store keyed by storage_index writes each append's nodes at consecutive keys."""
    t, pos = MerkleTree(), 0
    for i in range(600):
        for level, idx, _ in t.append([leaf_hash(i.to_bytes(2, "big"))]):
            assert storage_index(level, idx) == pos
            pos += 1
        assert size_from_node_count(pos) == t.size
    with pytest.raises(ValueError):
        size_from_node_count(2)  # one leaf is 1 node, two leaves 3: 2 is no tree
