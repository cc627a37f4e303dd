"""A receiver's receipt: what it saw, signed with its own Ed25519 key (a C2SP signed note).

The receipt is the other side of the books: the tenant's service says "I received the call
with this Idempotency-Key, this body (SHA-256), while your log showed me this checkpoint
(origin, size, root), and here is what I did". It is a cosignature in C2SP terms: the
receiver witnessed our log's checkpoint. The note text is one ``field value`` per line::

    alertengine-receipt/v1
    key ae-3f…
    body-sha256 9c1e…
    origin alertengine/ledger/acme
    tree-size 42
    root-hash <base64>
    verdict accepted
    reason <one line, for a refusal>
    time 1717344123

Pure: no I/O. Signing and opening reuse :mod:`alertengine.ledger.checkpoint`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from alertengine.ledger.checkpoint import (
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    TreeHead,
    open_note,
    sign_note,
)

RECEIPT_HEADER_LINE = "alertengine-receipt/v1"
Verdict = Literal["accepted", "refused"]
VERDICTS: tuple[str, ...] = ("accepted", "refused")
_FIELDS = ("key", "body-sha256", "origin", "tree-size", "root-hash", "verdict", "reason", "time")


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _one_line(value: str) -> str:
    """A field value on one printable line (a reason may quote anything)."""
    flat = " ".join(value.split())
    return "".join(c if c.isprintable() else "?" for c in flat)[:500]


@dataclass(frozen=True)
class Receipt:
    key: str  # the Idempotency-Key
    body_sha256: str  # hex
    checkpoint: TreeHead | None  # the checkpoint the call carried (None: it carried none)
    verdict: Verdict
    reason: str = ""
    time: int = 0

    def text(self) -> str:
        cp = self.checkpoint
        lines = [
            RECEIPT_HEADER_LINE,
            f"key {_one_line(self.key)}",
            f"body-sha256 {self.body_sha256}",
            f"origin {_one_line(cp.origin) if cp else '-'}",
            f"tree-size {cp.size if cp else 0}",
            f"root-hash {base64.b64encode(cp.root).decode() if cp else '-'}",
            f"verdict {self.verdict}",
        ]
        if self.reason:
            lines.append(f"reason {_one_line(self.reason)}")
        lines.append(f"time {int(self.time)}")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, object]:
        cp = self.checkpoint
        return {
            "key": self.key,
            "body_sha256": self.body_sha256,
            "origin": cp.origin if cp else None,
            "tree_size": cp.size if cp else None,
            "root_hash": base64.b64encode(cp.root).decode() if cp else None,
            "verdict": self.verdict,
            "reason": self.reason,
            "time": self.time,
        }


def sign_receipt(receipt: Receipt, signer: NoteSigner) -> str:
    return sign_note(receipt.text(), signer)


def parse_receipt_text(text: str) -> Receipt:
    lines = text.split("\n")
    if len(lines) < 2 or lines[0] != RECEIPT_HEADER_LINE or lines[-1] != "":
        raise CheckpointError(f"a receipt starts with {RECEIPT_HEADER_LINE!r}")
    fields: dict[str, str] = {}
    for line in lines[1:-1]:
        name, _, value = line.partition(" ")
        if name not in _FIELDS or name in fields:
            raise CheckpointError(f"unknown or repeated receipt field {name[:30]!r}")
        fields[name] = value
    try:
        verdict = fields["verdict"]
        if verdict not in VERDICTS:
            raise CheckpointError(f"unknown verdict {verdict[:30]!r}")
        size = int(fields["tree-size"])
        checkpoint = None
        if fields["origin"] != "-":
            root = base64.b64decode(fields["root-hash"], validate=True)
            if len(root) != 32:
                raise CheckpointError("the receipt's root hash is not 32 bytes")
            checkpoint = TreeHead(fields["origin"], size, root)
        return Receipt(
            key=fields["key"],
            body_sha256=fields["body-sha256"],
            checkpoint=checkpoint,
            verdict="accepted" if verdict == "accepted" else "refused",
            reason=fields.get("reason", ""),
            time=int(fields["time"]),
        )
    except (KeyError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"malformed receipt: {exc}") from None


def open_receipt(note: str, verifiers: Sequence[NoteVerifier]) -> Receipt:
    """Verify a signed receipt with the receiver's public key(s) and read it."""
    text, _ = open_note(note, verifiers)
    return parse_receipt_text(text)


def read_receipt_unverified(note: str) -> Receipt:
    """Read a receipt without checking who signed it (to report on it; never to trust it)."""
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("a receipt is a signed note: no signature block")
    return parse_receipt_text(note[: cut + 1])
