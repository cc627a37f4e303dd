"""The fast field-by-field hash body is byte-for-byte the canonical JSON it replaces."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertengine.ledger.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    EntryDraft,
    canonical_json,
    content_hash,
    entry_hash,
    seal,
)

text = st.text(max_size=30)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
drafts = st.builds(
    EntryDraft,
    tenant_id=text,
    kind=text,
    actor=text,
    timestamp=finite,
    incident_id=st.none() | text,
    stage=st.none() | text,
    decision=text,
    reason=text,
    confidence=st.none() | finite,
    policy_version=text,
    data=st.dictionaries(text, json_values, max_size=4),
)


@given(d=drafts, seq=st.integers(1, 2**62))
def test_fast_hash_equals_the_canonical_json_hash(d: EntryDraft, seq: int) -> None:
    e = seal(d, seq, GENESIS_HASH)
    fields = e.to_dict()
    assert e.hash == entry_hash(fields) == content_hash(e)
    # Sorted keys: "actor" leads the hashed body.
    assert canonical_json({k: fields[k] for k in HASHED_FIELDS}).startswith('{"actor":')


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_cannot_be_sealed(bad: float) -> None:
    with pytest.raises(ValueError):
        seal(EntryDraft("t", "k", "a", timestamp=bad), 1, GENESIS_HASH)
    with pytest.raises(ValueError):
        seal(EntryDraft("t", "k", "a", timestamp=1.0, confidence=bad), 1, GENESIS_HASH)


@given(d=drafts, seq=st.integers(1, 2**62))
def test_the_leaf_text_is_the_exported_line(d: EntryDraft, seq: int) -> None:
    """A Merkle leaf commits to exactly the JSONL line `ledger export` writes."""
    from alertengine.ledger.chain import entry_leaf, entry_text, seal_text

    e, _, text_ = seal_text(d, seq, GENESIS_HASH)
    assert text_ == e.to_json() == entry_text(e)
    assert e.hash == content_hash(e)
    import hashlib

    assert entry_leaf(e) == hashlib.sha256(b"\x00" + e.to_json().encode()).digest()
