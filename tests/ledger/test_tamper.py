"""verify finds each tamper kind, on every backend, and names the first bad seq.

The stored entries are rewritten behind the store's back (SQLite rows with the triggers
dropped, the raw Redis stream, the memory store's list); the signed head stays as it was.

The ``*_rehash`` kinds are what an attacker who knows the format but not the ledger key
does: every entry they touch gets its own hash recomputed (SHA-256 needs no key), so each
entry on its own looks right, and only the ``prev_hash`` link to the entry before gives
the rewrite away, at the first entry it touched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertengine.ledger.chain import GENESIS_HASH, Entry, content_hash, seal
from tests.ledger.conftest import Backend, draft

_tenants = itertools.count()

EDITS: dict[str, Any] = {
    "reason": "nothing to see here",
    "actor": "engineer:telegram:999",
    "decision": "approve",
    "data": {"i": -1},
    "timestamp": 1.5,
    "stage": "RESOLVED",
    "incident_id": "inc-forged",
    "confidence": 0.99,
    "kind": "approval",
    "policy_version": "9.9.9",
    "prev_hash": "f" * 64,
    "hash": "e" * 64,
}


KINDS = ["edit", "remove", "insert", "swap", "truncate"]
#: Rewrites that keep every entry's own hash valid (see the module docstring).
REHASH_KINDS = ["edit_rehash", "remove_rehash", "insert_rehash"]


@st.composite
def tampers(draw: st.DrawFn) -> tuple[int, str, dict[str, Any]]:
    n = draw(st.integers(2, 15))
    kind = draw(st.sampled_from(KINDS + REHASH_KINDS))
    if kind in ("edit", "edit_rehash"):
        fields = sorted(EDITS) if kind == "edit" else sorted(set(EDITS) - {"hash"})
        params: dict[str, Any] = {
            "k": draw(st.integers(1, n)),
            "field": draw(st.sampled_from(fields)),
        }
    elif kind in ("remove", "remove_rehash"):
        params = {"k": draw(st.integers(1, n))}
    elif kind in ("insert", "insert_rehash"):
        params = {"k": draw(st.integers(1, n + 1))}
    elif kind == "swap":
        a = draw(st.integers(1, n - 1))
        params = {"a": a, "b": draw(st.integers(a + 1, n)), "renumber": draw(st.booleans())}
    else:
        params = {"m": draw(st.integers(0, n - 1))}
    return n, kind, params


def rehashed(e: Entry, **changes: Any) -> Entry:
    """``e`` with ``changes`` and its own hash recomputed: valid on its own, links untouched."""
    changed = dataclasses.replace(e, **changes)
    return dataclasses.replace(changed, hash=content_hash(changed))


def tamper(entries: list[Entry], kind: str, p: dict[str, Any]) -> tuple[list[Entry], int]:
    """The tampered raw chain and the seq verify must report as the first bad one."""
    out = list(entries)
    n = len(entries)
    if kind == "edit_rehash":
        # The edited entry hashes right; the next one no longer follows it. An edited
        # prev_hash breaks the entry's own link; the last entry, the signed head.
        k = p["k"]
        out[k - 1] = rehashed(out[k - 1], **{p["field"]: EDITS[p["field"]]})
        return out, (k if p["field"] == "prev_hash" or k == n else k + 1)
    if kind == "remove_rehash":
        # Entry k deleted, the later ones renumbered down and re-hashed: seqs run on
        # without a gap, so the entry now at k (which still links to the deleted one)
        # is the first bad one. Deleting the last entry is a truncation: also k.
        k = p["k"]
        return [*out[: k - 1], *(rehashed(e, seq=e.seq - 1) for e in out[k:])], k
    if kind == "insert_rehash":
        # A forgery sealed after its predecessor, the later entries renumbered up and
        # re-hashed: the entry after the forgery still links to the forgery's predecessor.
        k = p["k"]
        prev = out[k - 2].hash if k > 1 else GENESIS_HASH
        forged = seal(draft(entries[0].tenant_id, 99, reason="forged"), k, prev)
        shifted = [rehashed(e, seq=e.seq + 1) for e in out[k - 1 :]]
        return [*out[: k - 1], forged, *shifted], (k + 1 if k <= n else k)
    if kind == "edit":
        k = p["k"]
        old = out[k - 1]
        value = EDITS[p["field"]]
        assert getattr(old, p["field"]) != value
        out[k - 1] = dataclasses.replace(old, **{p["field"]: value})
        return out, k
    if kind == "remove":
        del out[p["k"] - 1]
        return out, p["k"]
    if kind == "insert":
        # A well-formed forgery: it follows its predecessor and hashes correctly; what
        # gives it away is the entry after it (or, at the end, the signed head).
        k = p["k"]
        prev = out[k - 2].hash if k > 1 else GENESIS_HASH
        forged = seal(draft(entries[0].tenant_id, 99, reason="forged"), k, prev)
        shifted = [dataclasses.replace(e, seq=e.seq + 1) for e in out[k - 1 :]]
        return [*out[: k - 1], forged, *shifted], (k + 1 if k <= len(entries) else k)
    if kind == "swap":
        a, b = p["a"], p["b"]
        ea, eb = out[a - 1], out[b - 1]
        if p["renumber"]:
            ea, eb = dataclasses.replace(ea, seq=b), dataclasses.replace(eb, seq=a)
        out[a - 1], out[b - 1] = eb, ea
        return out, a
    m = p["m"]
    return out[:m], m + 1


async def run_case(backend: Backend, n: int, kind: str, p: dict[str, Any]) -> None:
    if backend.name == "sqlite" and kind == "swap":
        p = {**p, "renumber": True}  # rows come back ordered by their seq column
    tenant = f"t{next(_tenants)}"
    store = backend.open()
    try:
        entries = await store.append(tenant, [draft(tenant, i) for i in range(n)])
        assert (await store.verify(tenant)).ok
        tampered, first_bad = tamper(entries, kind, p)
        await backend.rewrite(store, tenant, tampered)
        result = await store.verify(tenant)
    finally:
        await store.close()
    assert not result.ok, (kind, p)
    assert result.first_bad_seq == first_bad, (kind, p, result)
    assert result.problem


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=tampers())
def test_verify_finds_every_tamper_kind(
    backend: Backend, case: tuple[int, str, dict[str, Any]]
) -> None:
    asyncio.run(run_case(backend, *case))


def test_each_tamper_kind_is_caught_once_explicitly(backend: Backend) -> None:
    """Every kind, one each, so a shrunk Hypothesis run never hides a missing one."""
    cases: list[tuple[str, dict[str, Any]]] = [
        ("edit", {"k": 3, "field": "reason"}),
        ("remove", {"k": 2}),
        ("insert", {"k": 2}),
        ("swap", {"a": 2, "b": 4, "renumber": True}),
        ("truncate", {"m": 4}),
        ("edit_rehash", {"k": 3, "field": "actor"}),
        ("edit_rehash", {"k": 3, "field": "prev_hash"}),
        ("remove_rehash", {"k": 3}),
        ("insert_rehash", {"k": 2}),
    ]
    for kind, p in cases:
        asyncio.run(run_case(backend, 6, kind, p))


async def _deleted_and_rehashed(backend: Backend) -> tuple[list[Entry], Any]:
    tenant = f"t{next(_tenants)}"
    store = backend.open()
    try:
        entries = await store.append(tenant, [draft(tenant, i) for i in range(6)])
        tampered, _ = tamper(entries, "remove_rehash", {"k": 3})
        await backend.rewrite(store, tenant, tampered)
        return tampered, await store.verify(tenant)
    finally:
        await store.close()


def test_deletion_with_later_entries_rehashed_is_bad_at_the_deletion(backend: Backend) -> None:
    """The issue's example: 6 entries, entry 3 deleted, 4..6 renumbered 3..5 and re-hashed.

    Every stored entry hashes right and the seqs run 1..5 without a gap; only the link
    check sees that the entry now at 3 follows the deleted entry, not entry 2. Without
    that check the walk would pass all five and blame the end ("truncated at 6").
    """
    tampered, result = asyncio.run(_deleted_and_rehashed(backend))
    assert all(content_hash(e) == e.hash for e in tampered)
    assert [e.seq for e in tampered] == [1, 2, 3, 4, 5]
    assert not result.ok
    assert result.first_bad_seq == 3, result
    assert result.problem == "entry 3 does not follow entry 2 (prev_hash mismatch)"
    assert result.count == 2 and result.head_seq == 2


def resealed_from(entries: list[Entry], k: int, kept: list[Entry]) -> list[Entry]:
    """``entries`` up to ``k - 1`` as they were, then ``kept`` renumbered and re-sealed
    after them: every hash and every link recomputed, as anyone can without the key."""
    out = list(entries[: k - 1])
    prev = out[-1].hash if out else GENESIS_HASH
    for e in kept:
        sealed = rehashed(e, seq=len(out) + 1, prev_hash=prev)
        out.append(sealed)
        prev = sealed.hash
    return out


async def _resealed_case(backend: Backend, how: str) -> Any:
    tenant = f"t{next(_tenants)}"
    store = backend.open()
    try:
        entries = await store.append(tenant, [draft(tenant, i) for i in range(6)])
        if how == "remove":
            tampered = resealed_from(entries, 3, entries[3:])
        elif how == "insert":
            forged = seal(draft(tenant, 99, reason="forged"), 3, entries[1].hash)
            tampered = resealed_from(entries, 3, [forged, *entries[2:]])
        else:  # edit
            edited = dataclasses.replace(entries[2], reason="nothing to see here")
            tampered = resealed_from(entries, 3, [edited, *entries[3:]])
        await backend.rewrite(store, tenant, tampered)
        return await store.verify(tenant)
    finally:
        await store.close()


def test_a_fully_resealed_rewrite_is_caught_by_the_signed_head(backend: Backend) -> None:
    """The limit of a hash chain, pinned: with every later hash and link recomputed, the
    chain is consistent, and only the key-signed head shows the rewrite. It is reported at
    the head (the chain cannot say where it was changed), never as OK."""
    removed = asyncio.run(_resealed_case(backend, "remove"))
    assert not removed.ok and removed.first_bad_seq == 6 and removed.head_seq == 5
    assert removed.problem.startswith("truncated: signed head is seq 6, chain ends at 5")
    assert "re-sealed" in removed.problem
    inserted = asyncio.run(_resealed_case(backend, "insert"))
    assert not inserted.ok and inserted.first_bad_seq == 7
    assert inserted.problem == "entries after the signed head checkpoint"
    edited = asyncio.run(_resealed_case(backend, "edit"))
    assert not edited.ok and edited.first_bad_seq == 6
    assert edited.problem.startswith("the chain's head differs from the signed checkpoint")
