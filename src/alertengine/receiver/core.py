"""The receiver: what the tenant's own service runs in front of its recovery action.

:meth:`Receiver.receive` takes the request's headers and raw body and answers with an
:class:`Answer` (status, JSON body, and whether to run the action now). In order:

1. the HMAC signature and timestamp window (:func:`alertengine.execute.signing.verify`);
   a forgery or a stale replay is 401 and nothing else is looked at;
2. the JSON body and its ``Idempotency-Key`` (400 when missing or not the body's);
3. the log's checkpoint (``X-AlertEngine-Checkpoint``): its Ed25519 signature with the
   log's public key, then its consistency with the last checkpoint this receiver witnessed
   (a consistency proof fetched from the orchestrator and checked here, never trusted).
   A smaller tree than witnessed (rollback) or one that does not extend it (fork) is
   refused with **409** and a signed receipt whose verdict is ``refused`` and says why;
4. de-duplication by Idempotency-Key: the first call runs (``Answer.run``), a repeat gets
   the first call's receipt back and does not run;
5. a receipt signed with the receiver's own Ed25519 key (:mod:`.receipt`). When the proof
   cannot be fetched the answer is 503 with no receipt (not a verdict on the log: retry).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alertengine.execute.signing import IDEMPOTENCY_HEADER, verify
from alertengine.ledger.checkpoint import (
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    TreeHead,
    open_checkpoint,
)
from alertengine.ledger.merkle import ProofError, verify_consistency
from alertengine.ledger.tlog import DEFAULT_LOG_NAME, ConsistencyProof, origin_for
from alertengine.receiver.receipt import Receipt, body_sha256, sign_receipt
from alertengine.receiver.store import WitnessStore

#: The log's latest signed checkpoint, base64 of the note text (a note spans lines).
CHECKPOINT_HEADER = "X-AlertEngine-Checkpoint"

#: ``fetch(tenant_id, from_size, to_size)``: a consistency proof from the orchestrator.
ConsistencyFetch = Callable[[str, int, int], Awaitable[ConsistencyProof]]

#: Statuses of the answers that are not a success, each with a JSON ``error`` and ``reason``.
STATUS_BAD_SIGNATURE = 401
STATUS_BAD_REQUEST = 400
STATUS_WRONG_TENANT = 403
STATUS_CHECKPOINT_REFUSED = 409  # rollback, fork, forged or foreign checkpoint
STATUS_KEY_REUSED = 422  # the same Idempotency-Key with another body
STATUS_NO_CHECKPOINT = 428
STATUS_CANNOT_CHECK = 503  # the consistency proof could not be fetched: retry later


class Inconsistent(Exception):
    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


@dataclass
class Answer:
    """What to answer. Run the recovery action only when ``run`` is true (once per key)."""

    status: int
    body: dict[str, Any]
    run: bool = False
    payload: dict[str, Any] = field(default_factory=dict)
    receipt: Receipt | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def read_checkpoint_header(headers: Mapping[str, str]) -> str | None:
    lower = {k.lower(): v for k, v in headers.items()}
    raw = lower.get(CHECKPOINT_HEADER.lower())
    if raw is None:
        return None
    try:
        return base64.b64decode(raw.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return ""


async def check_witnessed_consistency(
    tenant_id: str,
    new: TreeHead,
    last: TreeHead | None,
    fetch: ConsistencyFetch | None,
) -> None:
    """Raise :class:`Inconsistent` unless ``new`` extends the witnessed ``last`` (pure but
    for ``fetch``). The proof is verified here against both roots."""
    if last is None or last.size == 0:
        return
    if new.size < last.size:
        raise Inconsistent(
            "checkpoint_rollback",
            f"the log shows tree size {new.size} but this receiver already witnessed size "
            f"{last.size}: the log was rolled back or truncated",
        )
    if new.size == last.size:
        if new.root != last.root:
            raise Inconsistent(
                "checkpoint_fork",
                f"the log shows another root at tree size {new.size} than the one this "
                "receiver witnessed: the log forked",
            )
        return
    if fetch is None:
        raise Inconsistent("consistency_unavailable", "no consistency proof source is configured")
    try:
        proof = await fetch(tenant_id, last.size, new.size)
    except Exception as exc:  # any transport or server failure: cannot check now
        raise Inconsistent(
            "consistency_unavailable",
            f"could not fetch a consistency proof {last.size}->{new.size}: {type(exc).__name__}",
        ) from exc
    try:
        if (proof.from_size, proof.to_size) != (last.size, new.size):
            raise ProofError(
                f"the proof is for sizes {proof.from_size}->{proof.to_size}, "
                f"not {last.size}->{new.size}"
            )
        verify_consistency(last.size, new.size, last.root, new.root, proof.hashes)
    except ProofError as exc:
        raise Inconsistent(
            "checkpoint_fork",
            f"the log's tree of size {new.size} does not extend the tree of size {last.size}"
            f" this receiver witnessed: {exc}",
        ) from None


class Receiver:
    """Verify, de-duplicate and witness recovery calls; answer with signed receipts."""

    def __init__(
        self,
        *,
        secret: str | bytes,
        log_keys: Sequence[str | NoteVerifier],
        signer: NoteSigner,
        store: WitnessStore,
        fetch_consistency: ConsistencyFetch | None = None,
        tenant_id: str | None = None,
        tolerance_s: float = 300,
        require_checkpoint: bool = True,
        log_name: str = DEFAULT_LOG_NAME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.verifiers = [
            k if isinstance(k, NoteVerifier) else NoteVerifier.from_vkey(k) for k in log_keys
        ]
        if not self.verifiers:
            raise ValueError("the receiver needs the log's public key (ledger public-key)")
        self.signer = signer
        self.store = store
        self.fetch_consistency = fetch_consistency
        self.tenant_id = tenant_id
        self.tolerance_s = tolerance_s
        self.require_checkpoint = require_checkpoint
        self.log_name = log_name
        self.clock = clock
        # One witness step at a time: two calls must not both pass a check against the
        # same old checkpoint and then store in the wrong order.
        self._lock = asyncio.Lock()

    @property
    def public_key(self) -> str:
        """This receiver's verifier key: give it to the orchestrator's auditors."""
        return self.signer.verifier.vkey

    def _refuse(self, status: int, error: str, reason: str) -> Answer:
        return Answer(status, {"error": error, "reason": reason})

    def _signed(self, receipt: Receipt) -> dict[str, Any]:
        return {
            "verdict": receipt.verdict,
            "receipt": sign_receipt(receipt, self.signer),
            "receiver_key": self.public_key,
        }

    async def receive(self, headers: Mapping[str, str], body: bytes) -> Answer:
        now = self.clock()
        if not verify(self.secret, headers, body, self.tolerance_s, now):
            return self._refuse(
                STATUS_BAD_SIGNATURE,
                "bad_signature",
                "the signature does not verify or the timestamp is outside the window",
            )
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return self._refuse(STATUS_BAD_REQUEST, "bad_body", "the body is not a JSON object")
        lower = {k.lower(): v for k, v in headers.items()}
        key = lower.get(IDEMPOTENCY_HEADER.lower(), "")
        if not key or payload.get("idempotency_key", key) != key:
            return self._refuse(
                STATUS_BAD_REQUEST,
                "bad_idempotency_key",
                "the Idempotency-Key header is missing or differs from the body's",
            )
        tenant = str(payload.get("tenant_id") or self.tenant_id or "")
        if self.tenant_id is not None and tenant != self.tenant_id:
            return self._refuse(
                STATUS_WRONG_TENANT, "wrong_tenant", f"this receiver serves {self.tenant_id!r}"
            )
        digest = body_sha256(body)
        note = read_checkpoint_header(headers)
        head: TreeHead | None = None
        if note is None or note == "":
            if note == "" or self.require_checkpoint:
                return self._refuse(
                    STATUS_NO_CHECKPOINT if note is None else STATUS_BAD_REQUEST,
                    "checkpoint_missing" if note is None else "checkpoint_malformed",
                    f"the call carries no readable {CHECKPOINT_HEADER} header",
                )
        else:
            async with self._lock:
                try:
                    head = await self._witness(tenant, note)
                except Inconsistent as exc:
                    if exc.error == "consistency_unavailable":
                        # Not a verdict on the log: no receipt, the sender retries later.
                        return self._refuse(STATUS_CANNOT_CHECK, exc.error, exc.reason)
                    status = STATUS_CHECKPOINT_REFUSED
                    refusal = Receipt(
                        key, digest, _head_or_none(note, self.verifiers), "refused",
                        exc.reason, int(now),
                    )  # fmt: skip
                    return Answer(
                        status,
                        {"error": exc.error, "reason": exc.reason, **self._signed(refusal)},
                        receipt=refusal,
                    )
        receipt = Receipt(key, digest, head, "accepted", "", int(now))
        signed = self._signed(receipt)
        claimed = await self.store.claim(key, digest, signed["receipt"])
        if not claimed.fresh:
            if claimed.body_sha256 != digest:
                return self._refuse(
                    STATUS_KEY_REUSED,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used with another body",
                )
            # The same call again (a retry or a replay): the first receipt, and do not run.
            return Answer(
                200,
                {**signed, "receipt": claimed.receipt, "duplicate": True},
                run=False,
                payload=payload,
            )
        signed["duplicate"] = False
        return Answer(200, signed, run=True, payload=payload, receipt=receipt)

    async def witness(self, tenant_id: str, note: str) -> TreeHead:
        """Witness a checkpoint that came with something else than a recovery call (a signed
        notification webhook carries one too): verify it and its consistency with the last
        one witnessed, and remember it. Raises :class:`Inconsistent` (``error``, ``reason``)
        when it does not verify or does not extend what was witnessed."""
        async with self._lock:
            return await self._witness(tenant_id, note)

    async def _witness(self, tenant: str, note: str) -> TreeHead:
        origin = origin_for(tenant, self.log_name)
        try:
            head = open_checkpoint(note, self.verifiers, origin=origin)
        except CheckpointError as exc:
            raise Inconsistent(
                "checkpoint_invalid", f"the checkpoint does not verify: {exc}"
            ) from None
        last_note = await self.store.witnessed(origin)
        last = _head_or_none(last_note, self.verifiers) if last_note else None
        await check_witnessed_consistency(tenant, head, last, self.fetch_consistency)
        await self.store.witness(origin, note, head.size)
        return head


def _head_or_none(note: str, verifiers: Sequence[NoteVerifier]) -> TreeHead | None:
    try:
        return open_checkpoint(note, verifiers)
    except CheckpointError:
        return None
