"""verify finds each of the five tamper kinds, on every backend, and names the first bad seq.

The stored entries are rewritten behind the store's back (SQLite rows with the triggers
dropped, the raw Redis stream, the memory store's list); the signed head stays as it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertengine.ledger.chain import GENESIS_HASH, Entry, seal
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


@st.composite
def tampers(draw: st.DrawFn) -> tuple[int, str, dict[str, Any]]:
    n = draw(st.integers(2, 15))
    kind = draw(st.sampled_from(["edit", "remove", "insert", "swap", "truncate"]))
    if kind == "edit":
        params: dict[str, Any] = {
            "k": draw(st.integers(1, n)),
            "field": draw(st.sampled_from(sorted(EDITS))),
        }
    elif kind == "remove":
        params = {"k": draw(st.integers(1, n))}
    elif kind == "insert":
        params = {"k": draw(st.integers(1, n + 1))}
    elif kind == "swap":
        a = draw(st.integers(1, n - 1))
        params = {"a": a, "b": draw(st.integers(a + 1, n)), "renumber": draw(st.booleans())}
    else:
        params = {"m": draw(st.integers(0, n - 1))}
    return n, kind, params


def tamper(entries: list[Entry], kind: str, p: dict[str, Any]) -> tuple[list[Entry], int]:
    """The tampered raw chain and the seq verify must report as the first bad one."""
    out = list(entries)
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
    """The five kinds, one each, so a shrunk Hypothesis run never hides a missing one."""
    cases: list[tuple[str, dict[str, Any]]] = [
        ("edit", {"k": 3, "field": "reason"}),
        ("remove", {"k": 2}),
        ("insert", {"k": 2}),
        ("swap", {"a": 2, "b": 4, "renumber": True}),
        ("truncate", {"m": 4}),
    ]
    for kind, p in cases:
        asyncio.run(run_case(backend, 6, kind, p))
