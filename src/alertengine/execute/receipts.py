"""The executor's side of witnessing: send the log's checkpoint, ledger the receipt.

Every recovery call carries the tenant's latest signed checkpoint (``X-AlertEngine-
Checkpoint``, base64 of the note). A receiver built with :mod:`alertengine.receiver` answers
with a receipt signed by its own key; :meth:`ReceiptBook.observe` checks it (the receiver's
signature, our Idempotency-Key, the SHA-256 of the body we sent) and ledgers it as a
``receipt`` entry, valid or not, so ``ledger reconcile`` can match it to the execution.

A receiver that refuses our checkpoint (it witnessed a larger tree: a rollback; or another
one: a fork) is the loudest thing the executor can hear: an ERROR log line, a ``receipt``
entry with decision ``refused``, a refusal kept for the status page, and the call is not
a success (the executor stops retrying and dead-letters with the reason).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from alertengine.engine import IncidentEngine
from alertengine.incidents import IncidentState
from alertengine.ledger.checkpoint import CheckpointError, NoteSigner, NoteVerifier
from alertengine.receiver.core import CHECKPOINT_HEADER, STATUS_CHECKPOINT_REFUSED
from alertengine.receiver.receipt import body_sha256, open_receipt

log = logging.getLogger(__name__)

RECEIPT_KIND = "receipt"
ACTOR = "receiver"
#: An attempt whose error starts with this was refused by the receiver as a witness.
REFUSED_PREFIX = "witness_refused"
#: How many recent refusals the status page keeps.
KEEP_REFUSALS = 20
#: A receipt is a few hundred bytes; a larger one is not copied into the ledger.
MAX_RECEIPT_CHARS = 4096

CheckpointSource = Callable[[str], Awaitable[str]]


def checkpoint_header(note: str) -> dict[str, str]:
    return {CHECKPOINT_HEADER: base64.b64encode(note.encode()).decode("ascii")}


async def checkpoint_headers(source: CheckpointSource | None, tenant_id: str) -> dict[str, str]:
    """The header carrying ``tenant_id``'s latest checkpoint; none if it cannot be made
    (a store or key problem must not stop a recovery: the receiver decides)."""
    if source is None:
        return {}
    try:
        return checkpoint_header(await source(tenant_id))
    except Exception as exc:
        log.warning("no checkpoint for tenant %s's outgoing call: %s", tenant_id, exc)
        return {}


def _answer(resp: httpx.Response) -> dict[str, Any]:
    try:
        got = resp.json()
    except ValueError:
        return {}
    if isinstance(got, dict) and isinstance(got.get("detail"), dict):
        got = got["detail"]  # FastAPI's HTTPException wraps the refusal
    return got if isinstance(got, dict) else {}


class ReceiptBook:
    def __init__(self, engine: IncidentEngine, checkpoint: CheckpointSource | None) -> None:
        self.engine = engine
        self.checkpoint = checkpoint
        self.refusals: list[dict[str, Any]] = []

    async def headers(self, tenant_id: str) -> dict[str, str]:
        return await checkpoint_headers(self.checkpoint, tenant_id)

    def status(self) -> dict[str, Any]:
        return {"refused_checkpoints": len(self.refusals), "recent": list(self.refusals)}

    async def observe(
        self, state: IncidentState, key: str, body: bytes, resp: httpx.Response
    ) -> str:
        """Ledger the receiver's receipt, if any. Returns the refusal (``witness_refused:
        …``) when the receiver refused our checkpoint, else an empty string."""
        answer = _answer(resp)
        note = answer.get("receipt")
        error = str(answer.get("error") or "")[:100]
        refused = resp.status_code == STATUS_CHECKPOINT_REFUSED and error.startswith("checkpoint")
        if not isinstance(note, str) and not refused:
            return ""  # a receiver without receipts: reconcile reports the missing receipt
        data: dict[str, Any] = {
            "idempotency_key": key,
            "status_code": resp.status_code,
            "duplicate": bool(answer.get("duplicate")),
            "error": error,
        }
        problem = ""
        verdict = "refused" if refused else "unreadable"
        if isinstance(note, str) and len(note) > MAX_RECEIPT_CHARS:
            note = None
            problem = f"the receipt is larger than {MAX_RECEIPT_CHARS} characters"
        if isinstance(note, str):
            vkey = str(answer.get("receiver_key") or "")[:200]
            data.update(receipt=note, receiver_key=vkey)
            try:
                receipt = open_receipt(note, [NoteVerifier.from_vkey(vkey)])
            except CheckpointError as exc:
                problem = f"the receipt does not verify: {exc}"
            else:
                verdict = receipt.verdict
                data.update(receipt.to_dict())
                data["idempotency_key"] = key
                data["receipt_key"] = receipt.key
                if receipt.key != key:
                    problem = f"the receipt is for key {receipt.key!r}, not {key!r}"
                elif receipt.body_sha256 != body_sha256(body):
                    problem = "the receipt's body hash is not the hash of the body we sent"
        data["valid"] = not problem
        data["problem"] = problem
        reason = str(answer.get("reason") or "")[:500]
        try:
            await self.engine.record(
                state.tenant_id,
                state.incident_id,
                kind=RECEIPT_KIND,
                actor=ACTOR,
                decision=verdict if not problem else "invalid",
                reason=problem or reason or f"receipt for {key}",
                data=data,
            )
        except Exception:
            # The call's own outcome is still ledgered by the executor; reconcile will show
            # the receipt as missing unless the receiver's records are handed in.
            log.exception(
                "could not ledger the receipt for tenant %s incident %s key %s",
                state.tenant_id, state.incident_id, key,
            )  # fmt: skip
        if problem:
            log.error(
                "tenant %s incident %s: the receiver's receipt is not valid: %s",
                state.tenant_id, state.incident_id, problem,
            )  # fmt: skip
        if not refused:  # only a 409 is a verdict on our log (a 503 is "retry later")
            return ""
        log.error(
            "WITNESS REFUSED OUR CHECKPOINT: tenant %s incident %s key %s: %s (%s). The "
            "receiver saw a log state ours does not extend: check the ledger (ledger "
            "reconcile / verify --witness) before anything else.",
            state.tenant_id, state.incident_id, key, error or "refused", reason,
        )  # fmt: skip
        self.refusals = [
            *self.refusals[-(KEEP_REFUSALS - 1) :],
            {
                "tenant_id": state.tenant_id,
                "incident_id": state.incident_id,
                "idempotency_key": key,
                "error": error,
                "reason": reason,
                "at": self.engine.clock.now(),
            },
        ]
        return f"{REFUSED_PREFIX}: {error or 'refused'}: {reason}"


def checkpoint_source(
    ledger: object,
    environ: Mapping[str, str] | None = None,
    signer: NoteSigner | None = None,
) -> CheckpointSource | None:
    """The tenant checkpoints of ``ledger`` signed with the log's key (``signer``, else
    :func:`checkpoint_signer`'s), for outgoing calls. None when the store keeps no tree."""
    from alertengine.ledger.base import TreeStore
    from alertengine.ledger.tlog import TransparencyLog

    signer = signer or checkpoint_signer(ledger, environ)
    if signer is None or not isinstance(ledger, TreeStore):
        return None
    return TransparencyLog(ledger, signer).checkpoint


def checkpoint_signer(
    ledger: object, environ: Mapping[str, str] | None = None
) -> NoteSigner | None:
    """The log's checkpoint key for ``ledger``: the one outgoing calls and the API's
    checkpoints and proofs are signed with.

    The key is found as :func:`alertengine.ledger.keys.load_signer` says, in the state
    directory ``ledger public-key`` reads for the same store: next to a SQLite ledger, else
    ``var/`` (created there on first start). A memory store with no key in the environment
    signs with a throw-away key (logged: such checkpoints cannot be checked later). None
    when the store keeps no tree.
    """
    from alertengine.ledger.base import TreeStore
    from alertengine.ledger.keys import DEFAULT_KEY_NAME, load_signer
    from alertengine.ledger.memory import MemoryLedgerStore

    if not isinstance(ledger, TreeStore):
        return None
    path = getattr(ledger, "path", None)
    if isinstance(ledger, MemoryLedgerStore):
        try:
            signer = load_signer(environ, create=False)
        except CheckpointError as exc:
            log.warning("outgoing checkpoints are signed with a throw-away key: %s", exc)
            signer = NoteSigner.generate(DEFAULT_KEY_NAME)
    else:
        state_dir = Path(path).parent if path is not None else Path("var")
        signer = load_signer(environ, state_dir=state_dir)
    return signer
