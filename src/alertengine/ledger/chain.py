"""The ledger's hash chain: plain data and pure functions, no I/O.

Every entry commits to the one before it (``prev_hash``) and to all of its own fields
(``hash`` = SHA-256 of the canonical JSON of every field but ``hash``). Each tenant has its
own chain, numbered from 1, so one tenant's ledger can be exported and verified without
anyone else's. A chain alone cannot show that its tail was cut off, so the store keeps a
*signed head checkpoint* (HMAC-SHA256 with a key separate from the token secret) and
:func:`verify_chain` checks the chain ends exactly where the checkpoint says.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

GENESIS_HASH = "0" * 64

#: Fields hashed, in the order they appear in exports. ``hash`` itself is excluded.
HASHED_FIELDS = (
    "seq",
    "timestamp",
    "tenant_id",
    "incident_id",
    "kind",
    "stage",
    "actor",
    "decision",
    "reason",
    "confidence",
    "policy_version",
    "data",
    "prev_hash",
)


@dataclass(frozen=True, slots=True)
class EntryDraft:
    """What a caller appends; the store assigns ``seq``, ``prev_hash`` and ``hash``.

    ``kind`` says what the entry records: ``transition`` (a stage change; the only kind
    :func:`alertengine.incidents.fold` moves stages on), ``refused`` (an attempt the system
    turned down), ``diagnosis``, ``approval``, ``token``, ``delivery``, ``execution``,
    ``mode`` … ``stage`` is the incident's stage the entry is about (the target stage for a
    transition or a refused transition). ``data`` holds structured detail (numbers, the
    diagnosis, a delivery's outcome); it is hashed like every other field and must never
    hold a secret.
    """

    tenant_id: str
    kind: str
    actor: str
    timestamp: float
    incident_id: str | None = None
    stage: str | None = None
    decision: str = ""
    reason: str = ""
    confidence: float | None = None
    policy_version: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    timestamp: float
    tenant_id: str
    incident_id: str | None
    kind: str
    stage: str | None
    actor: str
    decision: str
    reason: str
    confidence: float | None
    policy_version: str
    data: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data"] = dict(self.data)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Entry:
        return cls(
            seq=int(d["seq"]),
            timestamp=float(d["timestamp"]),
            tenant_id=str(d["tenant_id"]),
            incident_id=d.get("incident_id"),
            kind=str(d["kind"]),
            stage=d.get("stage"),
            actor=str(d["actor"]),
            decision=str(d.get("decision", "")),
            reason=str(d.get("reason", "")),
            confidence=None if d.get("confidence") is None else float(d["confidence"]),
            policy_version=str(d.get("policy_version", "")),
            data=dict(d.get("data") or {}),
            prev_hash=str(d["prev_hash"]),
            hash=str(d["hash"]),
        )

    def to_json(self) -> str:
        return canonical_json(self.to_dict())


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
# The same string escaper json.dumps(ensure_ascii=False) uses (the C one when available).
_json_str: Callable[[str], str] = json.encoder.encode_basestring


_float_repr = float.__repr__
_int_repr = int.__repr__


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept, no NaN."""
    # One shared encoder: json.dumps with options builds a new encoder on every call.
    out: str = _CANONICAL.encode(obj)
    return out


def _finite(x: float, name: str) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    return x


def canonical_body(
    *,
    seq: int,
    timestamp: float,
    tenant_id: str,
    incident_id: str | None,
    kind: str,
    stage: str | None,
    actor: str,
    decision: str,
    reason: str,
    confidence: float | None,
    policy_version: str,
    data_json: str,
    prev_hash: str,
) -> str:
    """The exact string an entry's hash covers, built field by field.

    Equal to ``canonical_json`` of the :data:`HASHED_FIELDS` (keys in sorted order, floats
    by ``repr`` as :mod:`json` writes them), but several times faster, which is what lets
    ``verify`` stream a million entries in seconds. ``data_json`` must be the canonical
    JSON of ``data``. A verifier may take it raw from storage: every other field is
    encoded here (numbers have no quotes, strings escape every inner quote), so the key
    literals around ``data`` can only line up one way, and no text can move between
    ``data`` and its neighbours without changing the body, hence the hash.
    """
    # One f-string (one allocation, no intermediate strings), evaluated left to right:
    # the same checks in the same order as field-by-field concatenation.
    return (
        f'{{"actor":{_json_str(actor)},"confidence":'
        f"{'null' if confidence is None else _float_repr(_finite(confidence, 'confidence'))},"
        f'"data":{_as_str(data_json)},"decision":{_json_str(decision)},"incident_id":'
        f'{"null" if incident_id is None else _json_str(incident_id)},"kind":{_json_str(kind)},'
        f'"policy_version":{_json_str(policy_version)},"prev_hash":{_json_str(prev_hash)},'
        f'"reason":{_json_str(reason)},"seq":{_int_repr(seq)},"stage":'
        f'{"null" if stage is None else _json_str(stage)},"tenant_id":{_json_str(tenant_id)},'
        f'"timestamp":{_float_repr(_finite(timestamp, "timestamp"))}}}'
    )


def _as_str(s: str) -> str:
    # An f-string would format anything; the hashed body takes stored data text only.
    if type(s) is not str:
        raise TypeError(f"data must be JSON text, not {type(s).__name__}")
    return s


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def entry_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the :data:`HASHED_FIELDS` of ``fields``."""
    payload = {k: fields[k] for k in HASHED_FIELDS}
    return body_hash(canonical_json(payload))


def content_hash(e: Entry) -> str:
    """What ``e.hash`` should be, recomputed from the entry's other fields."""
    if type(e.seq) is not int or type(e.timestamp) is not float:
        # Odd types (e.g. an Entry built by hand): take the generic, slower path.
        return entry_hash(e.to_dict())
    conf = e.confidence
    if conf is not None and type(conf) is not float:
        return entry_hash(e.to_dict())
    return body_hash(
        canonical_body(
            seq=e.seq,
            timestamp=e.timestamp,
            tenant_id=e.tenant_id,
            incident_id=e.incident_id,
            kind=e.kind,
            stage=e.stage,
            actor=e.actor,
            decision=e.decision,
            reason=e.reason,
            confidence=conf,
            policy_version=e.policy_version,
            data_json=canonical_json(dict(e.data)),
            prev_hash=e.prev_hash,
        )
    )


def seal(draft: EntryDraft, seq: int, prev_hash: str) -> Entry:
    """Turn a draft into the entry that follows ``prev_hash`` at position ``seq``.

    Raises ``ValueError``/``TypeError`` if the draft cannot be hashed (a NaN, an object
    that is not JSON); nothing is sealed then.
    """
    return seal_encoded(draft, seq, prev_hash)[0]


#: Value types that come back from JSON as they went in (same type, equal value).
_JSON_NATIVE = frozenset((str, int, float, bool, type(None)))


def seal_encoded(draft: EntryDraft, seq: int, prev_hash: str) -> tuple[Entry, str]:
    """:func:`seal`, also returning the canonical JSON of ``data`` (what a store writes)."""
    e, data_json, _ = seal_text(draft, seq, prev_hash)
    return e, data_json


def seal_text(draft: EntryDraft, seq: int, prev_hash: str) -> tuple[Entry, str, str]:
    """:func:`seal_encoded`, also returning the canonical entry (:func:`entry_text`).

    The hashed body and the canonical entry share every field but ``hash``, which sorts
    between ``decision`` and ``incident_id``: both are built from the same two halves.
    """
    timestamp = _finite(float(draft.timestamp), "timestamp")
    confidence = None if draft.confidence is None else float(draft.confidence)
    data = dict(draft.data)
    data_json = canonical_json(data)
    incident, stage = draft.incident_id, draft.stage
    # Exactly canonical_body's text (same checks, same order), cut before "incident_id".
    head = (
        f'{{"actor":{_json_str(draft.actor)},"confidence":'
        f"{'null' if confidence is None else _float_repr(_finite(confidence, 'confidence'))},"
        f'"data":{_as_str(data_json)},"decision":{_json_str(draft.decision)},'
    )
    tail = (
        f'"incident_id":{"null" if incident is None else _json_str(incident)},'
        f'"kind":{_json_str(draft.kind)},"policy_version":{_json_str(draft.policy_version)},'
        f'"prev_hash":{_json_str(prev_hash)},"reason":{_json_str(draft.reason)},'
        f'"seq":{_int_repr(seq)},"stage":{"null" if stage is None else _json_str(stage)},'
        f'"tenant_id":{_json_str(draft.tenant_id)},"timestamp":{_float_repr(timestamp)}}}'
    )
    h = hashlib.sha256((head + tail).encode()).hexdigest()
    text = f'{head}"hash":"{h}",{tail}'
    # What is hashed must be exactly what any store gives back (keys sorted, as parsed
    # from the canonical JSON): a flat object of str keys and JSON-native values comes
    # back as itself (encoding just succeeded, so every float is finite); anything else
    # (nested, tuples, int subclasses …) goes through JSON.
    if all(type(k) is str and type(v) in _JSON_NATIVE for k, v in data.items()):
        data = dict(sorted(data.items()))
    else:
        data = json.loads(data_json)
    return (
        Entry(
            seq=seq,
            timestamp=timestamp,
            tenant_id=draft.tenant_id,
            incident_id=incident,
            kind=draft.kind,
            stage=stage,
            actor=draft.actor,
            decision=draft.decision,
            reason=draft.reason,
            confidence=confidence,
            policy_version=draft.policy_version,
            data=data,
            prev_hash=prev_hash,
            hash=h,
        ),
        data_json,
        text,
    )


def seal_many(drafts: Iterable[EntryDraft], head_seq: int, head_hash: str) -> list[Entry]:
    return [e for e, _ in seal_many_encoded(drafts, head_seq, head_hash)]


def seal_many_text(
    drafts: Iterable[EntryDraft], head_seq: int, head_hash: str
) -> list[tuple[Entry, str, str]]:
    """:func:`seal_many`, each entry with its ``data`` as canonical JSON and its canonical
    entry text (what a Merkle leaf hashes, what the Redis stream stores)."""
    out: list[tuple[Entry, str, str]] = []
    seq, prev = head_seq, head_hash
    for d in drafts:
        seq += 1
        triple = seal_text(d, seq, prev)
        out.append(triple)
        prev = triple[0].hash
    return out


def seal_many_encoded(
    drafts: Iterable[EntryDraft], head_seq: int, head_hash: str
) -> list[tuple[Entry, str]]:
    """:func:`seal_many`, each entry with its ``data`` as canonical JSON."""
    out: list[tuple[Entry, str]] = []
    seq, prev = head_seq, head_hash
    for d in drafts:
        seq += 1
        pair = seal_encoded(d, seq, prev)
        out.append(pair)
        prev = pair[0].hash
    return out


# --- signed head checkpoint -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tenant_id: str
    seq: int
    hash: str
    signature: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _checkpoint_message(tenant_id: str, seq: int, head_hash: str) -> bytes:
    return f"alertengine-ledger-head\x00{tenant_id}\x00{seq}\x00{head_hash}".encode()


def sign_checkpoint(key: bytes, tenant_id: str, seq: int, head_hash: str) -> Checkpoint:
    sig = hmac.new(key, _checkpoint_message(tenant_id, seq, head_hash), hashlib.sha256)
    return Checkpoint(tenant_id, seq, head_hash, sig.hexdigest())


def checkpoint_valid(key: bytes, cp: Checkpoint) -> bool:
    expected = sign_checkpoint(key, cp.tenant_id, cp.seq, cp.hash).signature
    return hmac.compare_digest(expected, cp.signature)


# --- verification -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    tenant_id: str
    count: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """One contiguous run of a chain's stored records, verified on its own (in a worker).

    The worker cannot know the chain's state before its first record, so it assumes that
    record passes and checks every later one against it: ``count``, ``expected_seq``,
    ``prev_hash`` and ``failure`` are the verifier's state after the chunk's *other*
    records (see :meth:`ChainVerifier.absorb`). ``first`` is the raw first record
    (picklable), ``rows`` how many records were read (for progress).
    """

    first: Any
    rows: int
    count: int
    expected_seq: int
    prev_hash: str
    failure: tuple[int, str] | None


class ChainVerifier:
    """Incremental verifier, so a million entries can be streamed through in one pass."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.count = 0
        self.expected_seq = 1
        self.prev_hash = GENESIS_HASH
        self.failure: tuple[int, str] | None = None

    def feed(self, e: Entry) -> bool:
        """Check one entry; returns False (and remembers why) at the first bad one."""
        if self.failure is not None:
            return False
        return self.feed_parts(e.seq, e.tenant_id, e.prev_hash, e.hash, content_hash(e))

    def feed_parts(
        self, seq: int, tenant_id: str, prev_hash: str, stored_hash: str, computed_hash: str
    ) -> bool:
        """Like :meth:`feed`, for a store that recomputed the content hash from raw rows."""
        if self.failure is not None:
            return False
        if tenant_id != self.tenant_id:
            self.failure = (seq, f"entry {seq} belongs to tenant {tenant_id!r}")
        elif seq != self.expected_seq:
            what = "missing or reordered" if seq > self.expected_seq else "duplicated or reordered"
            self.failure = (
                self.expected_seq,
                f"expected seq {self.expected_seq}, found {seq} ({what})",
            )
        elif prev_hash != self.prev_hash:
            self.failure = (
                seq,
                f"entry {seq} does not follow entry {seq - 1} (prev_hash mismatch)",
            )
        elif computed_hash != stored_hash:
            self.failure = (seq, f"entry {seq} was altered (its hash does not match its content)")
        if self.failure is not None:
            return False
        self.count += 1
        self.expected_seq = seq + 1
        self.prev_hash = stored_hash
        return True

    def absorb(self, chunk: ChunkResult, check_first: Callable[[ChainVerifier, Any], bool]) -> bool:
        """Take in a chunk verified elsewhere (another process) as if fed here, row by row.

        The chunk's first record is re-checked here, against the chain so far, with
        ``check_first`` (the backend's per-record check, the one its sequential walk uses).
        If it passes, the state after it is exactly the state the chunk was verified from,
        so the chunk's own outcome (its count, last hash, first failure) is the sequential
        walk's outcome too. Returns False once the chain has failed.
        """
        if self.failure is not None:
            return False
        if chunk.rows == 0:
            return True
        if not check_first(self, chunk.first):
            return False
        self.count += chunk.count
        self.expected_seq = chunk.expected_seq
        self.prev_hash = chunk.prev_hash
        if chunk.failure is not None:
            self.failure = chunk.failure
            return False
        return True

    def fail(self, seq: int, why: str) -> None:
        """Record a failure found outside the chain walk (e.g. an unreadable row)."""
        if self.failure is None:
            self.failure = (seq, why)

    def finish(self, checkpoint: Checkpoint | None, key: bytes | None) -> VerifyResult:
        head_seq = self.expected_seq - 1
        if self.failure is None and key is not None:
            if checkpoint is None:
                if head_seq > 0:
                    self.failure = (1, "no signed head checkpoint for a non-empty ledger")
            elif not checkpoint_valid(key, checkpoint) or checkpoint.tenant_id != self.tenant_id:
                self.failure = (checkpoint.seq, "the head checkpoint's signature is invalid")
            elif checkpoint.seq > head_seq:
                # Every link held, so either the tail was cut off or entries were removed
                # and everything after them re-sealed: only the signed head knows, and it
                # cannot say where (that would take a signature per entry).
                self.failure = (
                    head_seq + 1,
                    f"truncated: signed head is seq {checkpoint.seq}, chain ends at {head_seq}"
                    " (its tail cut off, or entries removed and the rest re-sealed)",
                )
            elif checkpoint.seq == head_seq and not _eq(checkpoint.hash, self.prev_hash):
                self.failure = (
                    head_seq,
                    "the chain's head differs from the signed checkpoint"
                    " (the last entry rewritten, or an earlier one and all after it re-sealed)",
                )
            elif checkpoint.seq < head_seq:
                # Entries appended after the last signed checkpoint: the store signs on every
                # append, so an unsigned tail was written around the store.
                self.failure = (checkpoint.seq + 1, "entries after the signed head checkpoint")
        if self.failure is not None:
            seq, why = self.failure
            return VerifyResult(
                False, self.tenant_id, self.count, head_seq, self.prev_hash, seq, why
            )
        return VerifyResult(True, self.tenant_id, self.count, head_seq, self.prev_hash)


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def verify_chain(
    tenant_id: str,
    entries: Iterable[Entry],
    checkpoint: Checkpoint | None = None,
    key: bytes | None = None,
) -> VerifyResult:
    v = ChainVerifier(tenant_id)
    for e in entries:
        if not v.feed(e):
            break
    return v.finish(checkpoint, key)


# --- the entry as a Merkle leaf ------------------------------------------------------------


def entry_text(e: Entry, data_json: str | None = None) -> str:
    """The canonical entry: exactly :meth:`Entry.to_json` (every field, ``hash`` included).

    This is what a Merkle leaf commits to and what ``ledger export`` writes per line, so
    an auditor holding an exported line can check its inclusion proof. ``data_json``, if
    given, must be the canonical JSON of ``e.data`` (the stores have it already).
    """
    ts, conf, seq = e.timestamp, e.confidence, e.seq
    if (
        type(ts) is not float
        or type(seq) is not int
        or (conf is not None and type(conf) is not float)
    ):
        return e.to_json()
    data = canonical_json(dict(e.data)) if data_json is None else data_json
    stage, incident = e.stage, e.incident_id
    return (
        f'{{"actor":{_json_str(e.actor)},"confidence":'
        f"{'null' if conf is None else _float_repr(_finite(conf, 'confidence'))},"
        f'"data":{data},"decision":{_json_str(e.decision)},"hash":{_json_str(e.hash)},'
        f'"incident_id":{"null" if incident is None else _json_str(incident)},'
        f'"kind":{_json_str(e.kind)},"policy_version":{_json_str(e.policy_version)},'
        f'"prev_hash":{_json_str(e.prev_hash)},"reason":{_json_str(e.reason)},'
        f'"seq":{_int_repr(seq)},"stage":{"null" if stage is None else _json_str(stage)},'
        f'"tenant_id":{_json_str(e.tenant_id)},'
        f'"timestamp":{_float_repr(_finite(ts, "timestamp"))}}}'
    )


def entry_leaf(e: Entry, data_json: str | None = None) -> bytes:
    """The entry's RFC 9162 leaf hash: SHA-256(0x00 ‖ canonical entry, UTF-8)."""
    return hashlib.sha256(b"\x00" + entry_text(e, data_json).encode()).digest()
