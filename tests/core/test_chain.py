"""The pure hash chain: sealing, and verification finding each kind of tampering."""

from __future__ import annotations

import dataclasses
import itertools

from hypothesis import given
from hypothesis import strategies as st

from alertengine.ledger.chain import (
    GENESIS_HASH,
    EntryDraft,
    canonical_json,
    seal_many,
    sign_checkpoint,
    verify_chain,
)

KEY = b"k" * 32


def drafts(n: int, tenant: str = "t1") -> list[EntryDraft]:
    return [
        EntryDraft(
            tenant_id=tenant,
            kind="transition",
            actor="policy",
            timestamp=1000.0 + i,
            incident_id=f"inc-{i % 3}",
            stage="DETECTED",
            reason=f"r{i}",
            data={"i": i, "nested": {"x": [1, 2]}},
        )
        for i in range(n)
    ]


def chain(n: int):
    entries = seal_many(drafts(n), 0, GENESIS_HASH)
    cp = sign_checkpoint(KEY, "t1", entries[-1].seq, entries[-1].hash) if entries else None
    return entries, cp


def test_sealed_chain_verifies_and_links():
    entries, cp = chain(5)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    r = verify_chain("t1", entries, cp, KEY)
    assert r.ok and r.count == 5 and r.head_hash == entries[-1].hash


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": [2, {"d": 1, "c": 2}]}) == canonical_json(
        {"a": [2, {"c": 2, "d": 1}], "b": 1}
    )


sizes = st.integers(min_value=3, max_value=25)


@given(sizes, st.data())
def test_edited_field_is_found(n, data):
    entries, cp = chain(n)
    i = data.draw(st.integers(0, n - 1))
    entries[i] = dataclasses.replace(entries[i], reason="edited")
    r = verify_chain("t1", entries, cp, KEY)
    assert not r.ok and r.first_bad_seq == i + 1


@given(sizes, st.data())
def test_removed_entry_is_found(n, data):
    entries, cp = chain(n)
    i = data.draw(st.integers(0, n - 2))  # removing the last one is truncation, tested below
    del entries[i]
    r = verify_chain("t1", entries, cp, KEY)
    assert not r.ok and r.first_bad_seq == i + 1


@given(sizes, st.data())
def test_inserted_entry_is_found(n, data):
    entries, cp = chain(n)
    i = data.draw(st.integers(1, n - 1))
    forged = dataclasses.replace(entries[i], reason="forged")
    entries.insert(i, forged)
    r = verify_chain("t1", entries, cp, KEY)
    assert not r.ok and r.first_bad_seq is not None and r.first_bad_seq <= i + 1


@given(sizes, st.data())
def test_swapped_entries_are_found(n, data):
    entries, cp = chain(n)
    i = data.draw(st.integers(0, n - 2))
    entries[i], entries[i + 1] = entries[i + 1], entries[i]
    r = verify_chain("t1", entries, cp, KEY)
    assert not r.ok and r.first_bad_seq == i + 1


@given(sizes, st.data())
def test_truncated_tail_is_found_by_the_signed_checkpoint(n, data):
    entries, cp = chain(n)
    k = data.draw(st.integers(1, n - 1))
    r = verify_chain("t1", entries[:-k], cp, KEY)
    assert not r.ok and r.first_bad_seq == n - k + 1
    assert "truncated" in r.problem


def test_rewritten_chain_with_forged_checkpoint_is_found():
    entries, _ = chain(4)
    forged_cp = sign_checkpoint(b"not-the-key" * 4, "t1", entries[-1].seq, entries[-1].hash)
    r = verify_chain("t1", entries, forged_cp, KEY)
    assert not r.ok and "signature" in r.problem


def test_recomputed_tail_differs_from_checkpoint():
    _, cp = chain(4)
    rewritten = seal_many(
        [dataclasses.replace(d, reason="rewritten") for d in drafts(4)], 0, GENESIS_HASH
    )
    r = verify_chain("t1", rewritten, cp, KEY)
    assert not r.ok and r.first_bad_seq == 4
