"""Double entry: our ledger's executions against the receivers' receipts.

Accounting's rule, for recoveries: every debit has its credit. Here:

* every EXECUTED has its AUTHORIZED (since the incident last entered VALIDATED) with the
  quorum of distinct approvers the incident required, and the Idempotency-Key derived from
  that AUTHORIZED entry;
* every execution has exactly one accepted receipt for its Idempotency-Key, and every
  accepted receipt has one execution (a receipt for a call we never ledgered means a call
  we cannot account for, or a ledger that lost it: a rollback);
* every receipt's checkpoint (the tree the receiver saw) is consistent with the current
  tree: not larger (rollback, truncation), and a prefix of it (else: a fork);
* every receipt verifies with the receiver's key, and no receiver refused our checkpoint.

:func:`reconcile` is pure but for ``consistency`` (the store's proofs, checked here against
the roots, never trusted). Receipts come from the ledger (``receipt`` entries the executor
wrote) and from the receivers' own records (``--receipts FILE``): a ledger rolled back
has lost its receipt entries, the receivers have not.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from alertengine.ledger.chain import Entry
from alertengine.ledger.checkpoint import CheckpointError, NoteVerifier, TreeHead, split_notes
from alertengine.ledger.merkle import ProofError, verify_consistency
from alertengine.ledger.tlog import ConsistencyProof
from alertengine.receiver.receipt import Receipt, open_receipt, read_receipt_unverified

RECEIPT_KIND = "receipt"

#: Every kind of mismatch, and what it means (docs/ledger.md has the same table).
MISMATCH_KINDS: dict[str, str] = {
    "execution_without_authorization": "an EXECUTED with no AUTHORIZED since VALIDATED",
    "execution_without_quorum": "the AUTHORIZED before an EXECUTED lacks distinct approvers",
    "execution_key_mismatch": "the EXECUTED's Idempotency-Key is not its AUTHORIZED's",
    "missing_receipt": "an execution no receiver gave a receipt for",
    "duplicate_receipt": "two different accepted receipts for one Idempotency-Key",
    "receipt_without_execution": "an accepted receipt for a key no EXECUTED has",
    "receipt_invalid": "a receipt that does not verify with the receiver's key",
    "receipt_checkpoint_ahead": "a receiver saw a larger tree than ours: rolled back",
    "receipt_checkpoint_inconsistent": "a receiver saw a tree ours does not extend: forked",
    "checkpoint_refused": "a receiver refused our checkpoint (it had witnessed another)",
}


@dataclass(frozen=True)
class ReceiptRecord:
    """A receipt note, where it came from, and the receiver key that came with it."""

    note: str
    source: str  # "ledger" or the receipts file
    seq: int | None = None  # the ledger entry's seq, for a ledgered receipt
    receiver_key: str = ""
    index: int = 0  # position in the receipts file


@dataclass(frozen=True)
class Mismatch:
    kind: str
    detail: str
    seq: int | None = None
    incident_id: str | None = None
    idempotency_key: str = ""
    source: str = "ledger"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seq": self.seq,
            "incident_id": self.incident_id,
            "idempotency_key": self.idempotency_key,
            "source": self.source,
            "detail": self.detail,
        }

    def line(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else self.source
        return f"{self.kind} ({where}): {self.detail}"


@dataclass
class Reconciliation:
    tenant_id: str
    tree_size: int
    root_hash: str
    authorizations: int = 0
    executions: int = 0
    receipts: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "balanced": self.balanced,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "authorizations": self.authorizations,
            "executions": self.executions,
            "receipts": self.receipts,
            "mismatches": [m.to_dict() for m in self.mismatches],
        }


def parse_receipts_file(text: str, source: str) -> list[ReceiptRecord]:
    """A receiver's receipts: a JSON list (of notes, or of objects with ``receipt`` and
    ``receiver_key``), JSON lines of such objects, or signed notes one after another."""
    stripped = text.strip()
    items: list[Any]
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not valid JSON: {exc}") from None
        if not isinstance(items, list):
            raise ValueError(f"{source}: expected a JSON list of receipts")
    elif stripped.startswith("{"):
        try:
            items = [json.loads(line) for line in stripped.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}: not valid JSON lines: {exc}") from None
    else:
        items = list(split_notes(text)) if stripped else []
    out: list[ReceiptRecord] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append(ReceiptRecord(item, source, index=i))
        elif isinstance(item, dict) and isinstance(item.get("receipt"), str):
            key = item.get("receiver_key")
            out.append(ReceiptRecord(item["receipt"], source, receiver_key=str(key or ""), index=i))
        else:
            raise ValueError(f"{source}: item {i} is not a receipt")
    return out


def ledgered_receipts(entries: Iterable[Entry]) -> list[ReceiptRecord]:
    out = []
    for e in entries:
        note = e.data.get("receipt") if e.kind == RECEIPT_KIND else None
        if isinstance(note, str):
            key = str(e.data.get("receiver_key") or "")
            out.append(ReceiptRecord(note, "ledger", seq=e.seq, receiver_key=key))
    return out


@dataclass
class _Round:
    """One incident's approval round: since it last entered VALIDATED."""

    required: int = 1
    approvers: set[str] = field(default_factory=set)
    authorized_seq: int | None = None
    authorized_by: frozenset[str] = frozenset()


def _engineer(actor: str) -> bool:
    """A human approver: ``person:<id>`` (people), or ``engineer:<channel>:<id>`` of older
    ledgers; the same rule the incident fold counts approvals by."""
    from alertengine.incidents import is_engineer

    return is_engineer(actor)


def _check_authorizations(
    tenant_id: str, entries: Sequence[Entry], out: Reconciliation
) -> dict[str, tuple[int, str]]:
    """Walk the ledger; returns every execution's key -> (EXECUTED seq, incident)."""
    from alertengine.execute.executor import idempotency_key

    rounds: dict[str, _Round] = {}
    executions: dict[str, tuple[int, str]] = {}
    for e in entries:
        i = e.incident_id
        if i is None:
            continue
        r = rounds.setdefault(i, _Round())
        if e.kind == "approval" and _engineer(e.actor):
            r.approvers.add(e.actor)
        if e.kind != "transition":
            continue
        if e.stage == "DETECTED":
            r.required = int(e.data.get("approvals_required") or 1)
        elif e.stage == "VALIDATED":
            rounds[i] = _Round(required=r.required)
        elif e.stage == "AUTHORIZED":
            r.authorized_seq = e.seq
            r.authorized_by = frozenset(a for a in {*r.approvers, e.actor} if _engineer(a))
            out.authorizations += 1
        elif e.stage == "EXECUTED":
            out.executions += 1
            key = str(e.data.get("idempotency_key") or "")
            if r.authorized_seq is None:
                out.mismatches.append(
                    Mismatch(
                        "execution_without_authorization",
                        f"{i} was EXECUTED with no AUTHORIZED since it was last VALIDATED",
                        e.seq, i, key,
                    )
                )  # fmt: skip
            else:
                if len(r.authorized_by) < r.required:
                    names = ", ".join(sorted(r.authorized_by)) or "nobody"
                    out.mismatches.append(
                        Mismatch(
                            "execution_without_quorum",
                            f"{i} was EXECUTED on AUTHORIZED seq {r.authorized_seq} by "
                            f"{len(r.authorized_by)} of {r.required} distinct approvers "
                            f"({names})",
                            e.seq, i, key,
                        )
                    )  # fmt: skip
                expected = idempotency_key(tenant_id, i, r.authorized_seq)
                if key != expected:
                    out.mismatches.append(
                        Mismatch(
                            "execution_key_mismatch",
                            f"{i}'s EXECUTED names key {key!r}, its AUTHORIZED seq "
                            f"{r.authorized_seq} gives {expected!r}",
                            e.seq, i, key,
                        )
                    )  # fmt: skip
            if key:
                executions[key] = (e.seq, i)
    return executions


def _open(rec: ReceiptRecord, keys: Sequence[NoteVerifier]) -> tuple[Receipt | None, str]:
    """The receipt if it verifies with its own key or any known receiver key."""
    candidates = list(keys)
    if rec.receiver_key:
        try:
            own = NoteVerifier.from_vkey(rec.receiver_key)
        except CheckpointError as exc:
            return None, f"its receiver key is malformed: {exc}"
        candidates.append(own)
    if not candidates:
        return None, "no receiver key is known to verify it (give --receiver-key)"
    try:
        return open_receipt(rec.note, candidates), ""
    except CheckpointError as exc:
        return None, str(exc)


async def reconcile(
    tenant_id: str,
    entries: Sequence[Entry],
    current: TreeHead,
    consistency: Callable[[int, int], Awaitable[ConsistencyProof]],
    *,
    receipts: Sequence[ReceiptRecord] = (),
    receiver_keys: Sequence[NoteVerifier] = (),
) -> Reconciliation:
    """Balance ``tenant_id``'s books. ``entries`` is the tenant's whole ledger in seq order;
    ``receipts`` adds the receivers' own records to the ledgered ones."""
    import base64

    out = Reconciliation(tenant_id, current.size, base64.b64encode(current.root).decode())
    executions = _check_authorizations(tenant_id, entries, out)

    # Every distinct receipt once (a receipt ledgered and also in the receiver's file, or
    # handed back again for a retried call, is the same note).
    seen: dict[str, ReceiptRecord] = {}
    for rec in [*ledgered_receipts(entries), *receipts]:
        seen.setdefault(rec.note, rec)
    ledger_keys = [r.receiver_key for r in seen.values() if r.receiver_key]
    known = list(receiver_keys)
    for k in ledger_keys:
        try:
            v = NoteVerifier.from_vkey(k)
        except CheckpointError:
            continue
        if v not in known:
            known.append(v)

    accepted: dict[str, list[tuple[Receipt, ReceiptRecord]]] = {}
    heads: dict[tuple[int, bytes], tuple[Receipt, ReceiptRecord]] = {}
    from alertengine.ledger.tlog import origin_for

    origin = current.origin or origin_for(tenant_id)
    for rec in seen.values():
        receipt, problem = _open(rec, known)
        where = rec.source if rec.seq is not None else f"{rec.source} #{rec.index}"
        if receipt is None:
            try:
                unverified: Receipt | None = read_receipt_unverified(rec.note)
            except CheckpointError:
                unverified = None
            if unverified is not None and unverified.checkpoint is not None:
                if unverified.checkpoint.origin != origin:
                    continue  # another tenant's receipt in a shared file
            out.mismatches.append(
                Mismatch(
                    "receipt_invalid",
                    f"a receipt does not verify: {problem}",
                    rec.seq, None, unverified.key if unverified else "", where,
                )
            )  # fmt: skip
            continue
        if receipt.checkpoint is not None and receipt.checkpoint.origin != origin:
            continue
        out.receipts += 1
        if receipt.checkpoint is not None:
            heads.setdefault((receipt.checkpoint.size, receipt.checkpoint.root), (receipt, rec))
        if receipt.verdict == "accepted":
            accepted.setdefault(receipt.key, []).append((receipt, rec))
        else:
            out.mismatches.append(
                Mismatch(
                    "checkpoint_refused",
                    f"the receiver refused our checkpoint for {receipt.key}: {receipt.reason}",
                    rec.seq, None, receipt.key, where,
                )
            )  # fmt: skip

    for key, (seq, incident) in executions.items():
        got = accepted.get(key, [])
        if not got:
            out.mismatches.append(
                Mismatch(
                    "missing_receipt",
                    f"{incident} was executed with key {key} and no receiver receipt says "
                    "it was received",
                    seq, incident, key,
                )
            )  # fmt: skip
        elif len(got) > 1:
            where = ", ".join(
                f"seq {r.seq}" if r.seq is not None else f"{r.source} #{r.index}" for _, r in got
            )
            out.mismatches.append(
                Mismatch(
                    "duplicate_receipt",
                    f"{len(got)} different accepted receipts for key {key} ({where}): the "
                    "receiver ran the call more than once",
                    seq, incident, key,
                )
            )  # fmt: skip
    for key, got in accepted.items():
        if key not in executions:
            receipt, rec = got[0]
            out.mismatches.append(
                Mismatch(
                    "receipt_without_execution",
                    f"a receiver accepted a call with key {key} at {receipt.time} and no "
                    "EXECUTED in this ledger has that key",
                    rec.seq, None, key,
                    rec.source if rec.seq is not None else f"{rec.source} #{rec.index}",
                )
            )  # fmt: skip

    for (size, root), (receipt, rec) in sorted(heads.items(), key=lambda kv: kv[0][0]):
        where = rec.source if rec.seq is not None else f"{rec.source} #{rec.index}"
        if size > current.size:
            out.mismatches.append(
                Mismatch(
                    "receipt_checkpoint_ahead",
                    f"a receiver saw tree size {size} (receipt for {receipt.key}); the "
                    f"ledger has only {current.size}: it was rolled back or truncated",
                    rec.seq, None, receipt.key, where,
                )
            )  # fmt: skip
            continue
        try:
            proof = await consistency(size, current.size)
            verify_consistency(size, current.size, root, current.root, proof.hashes)
        except (ProofError, ValueError) as exc:
            out.mismatches.append(
                Mismatch(
                    "receipt_checkpoint_inconsistent",
                    f"a receiver saw a tree of size {size} (receipt for {receipt.key}) that "
                    f"is not a prefix of the current tree (size {current.size}): {exc}",
                    rec.seq, None, receipt.key, where,
                )
            )  # fmt: skip
    out.mismatches.sort(key=lambda m: (m.seq is None, m.seq or 0, m.kind))
    return out
