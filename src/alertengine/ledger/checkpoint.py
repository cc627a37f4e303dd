"""Tree heads as C2SP ``tlog-checkpoint`` notes, signed as C2SP ``signed-note`` (Ed25519).

A checkpoint is the note text::

    <origin>
    <tree size, decimal>
    <root hash, base64>

then a blank line and one line per signature: ``— <key name> <base64(key ID ‖ sig)>``,
where the key ID is the first 4 bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key) and
the Ed25519 signature covers the note text (with its final newline). Keys are written as
the Go ``golang.org/x/mod/sumdb/note`` tools write them: the verifier key
``<name>+<key ID hex>+<base64(0x01 ‖ public key)>``, the signer key
``PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 ‖ seed)>``. Verifying needs the verifier
key only. Pure: no I/O (loading keys from the environment lives in :mod:`.keys`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # an em dash and a space start every signature line
#: A note carrying more signature lines than this is refused unread (as Go's note does).
MAX_SIGNATURES = 100


class CheckpointError(ValueError):
    """A note, key or checkpoint is malformed, unsigned by a known key, or badly signed."""


def _valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" for c in name) and name.isprintable()


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


def _b64decode(s: str, what: str) -> bytes:
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise CheckpointError(f"{what} is not valid base64") from exc


@dataclass(frozen=True)
class NoteVerifier:
    """A public key with its name: all a third party needs to check a checkpoint."""

    name: str
    key: bytes  # the 32-byte Ed25519 public key

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.key)

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        parts = vkey.strip().split("+", 2)  # the base64 part may hold a '+' itself
        if len(parts) != 3 or not _valid_name(parts[0]):
            raise CheckpointError("a verifier key reads <name>+<key id hex>+<base64 key>")
        name, kid_hex, blob = parts
        raw = _b64decode(blob, "the verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointError("the verifier key is not an Ed25519 key")
        v = cls(name, raw[1:])
        if not hmac.compare_digest(v.key_id.hex(), kid_hex.lower()):
            raise CheckpointError("the verifier key's id does not match its name and key")
        return v

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A named Ed25519 private key (never logged, never ledgered, never in the config)."""

    name: str
    seed: bytes  # the 32-byte Ed25519 private key

    def __post_init__(self) -> None:
        if not _valid_name(self.name):
            raise CheckpointError(f"key name {self.name!r} must be non-empty, no spaces or '+'")
        if len(self.seed) != 32:
            raise CheckpointError("an Ed25519 private key is 32 bytes")

    def __repr__(self) -> str:  # keep the seed out of tracebacks and logs
        return f"NoteSigner(name={self.name!r}, key_id={self.verifier.key_id.hex()})"

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        from cryptography.hazmat.primitives import serialization

        raw = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(name, raw)

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        parts = skey.strip().split("+", 4)  # the base64 part may hold a '+' itself
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise CheckpointError("a signer key reads PRIVATE+KEY+<name>+<key id hex>+<base64 key>")
        name, kid_hex, blob = parts[2:]
        raw = _b64decode(blob, "the signer key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise CheckpointError("the signer key is not an Ed25519 key")
        signer = cls(name, raw[1:])
        if not hmac.compare_digest(signer.verifier.key_id.hex(), kid_hex.lower()):
            raise CheckpointError("the signer key's id does not match its name and key")
        return signer

    @property
    def skey(self) -> str:
        encoded = base64.b64encode(bytes([ALG_ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{encoded}"

    @property
    def verifier(self) -> NoteVerifier:
        from cryptography.hazmat.primitives import serialization

        pub = (
            Ed25519PrivateKey.from_private_bytes(self.seed)
            .public_key()
            .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        return NoteVerifier(self.name, pub)

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def sign_note(text: str, signer: NoteSigner) -> str:
    """``text`` (which must end in a newline) as a signed note with one signature."""
    if not text.endswith("\n") or "\n\n" in text:
        raise CheckpointError("note text must end with a newline and hold no blank line")
    sig = signer.verifier.key_id + signer.sign(text.encode())
    return f"{text}\n{SIG_PREFIX}{signer.name} {base64.b64encode(sig).decode()}\n"


def open_note(note: str, verifiers: Sequence[NoteVerifier]) -> tuple[str, list[NoteVerifier]]:
    """The note's text and the known keys that signed it.

    Refuses a malformed note, a note that no known key signed, and a note where a
    signature claiming a known key's name and ID does not verify (a forgery).
    Signatures by unknown keys are skipped (a witness may add its cosignature).
    """
    if not note.endswith("\n"):
        raise CheckpointError("a signed note ends with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("no signature block (a signed note has a blank line before it)")
    text, block = note[: cut + 1], note[cut + 2 :]
    lines = block.splitlines()
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"more than {MAX_SIGNATURES} signatures")
    known = {(v.name, v.key_id): v for v in verifiers}
    good: list[NoteVerifier] = []
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise CheckpointError(f"malformed signature line {line[:40]!r}")
        name, _, blob = line[len(SIG_PREFIX) :].partition(" ")
        if not _valid_name(name) or " " in blob:
            raise CheckpointError(f"malformed signature line {line[:40]!r}")
        raw = _b64decode(blob, "a signature")
        if len(raw) < 5:
            raise CheckpointError("a signature is shorter than its key id")
        v = known.get((name, raw[:4]))
        if v is None:
            continue
        if not v.verify(text.encode(), raw[4:]):
            raise CheckpointError(
                f"the signature by {name!r} does not verify: the note was altered"
            )
        good.append(v)
    if not good:
        names = ", ".join(sorted(v.name for v in verifiers)) or "none given"
        raise CheckpointError(f"no signature by a known key ({names})")
    return text, good


@dataclass(frozen=True)
class TreeHead:
    """What a checkpoint says: the log (``origin``), its tree size and root hash."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    def to_dict(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "tree_size": self.size,
            "root_hash": base64.b64encode(self.root).decode(),
        }


def sign_checkpoint(head: TreeHead, signer: NoteSigner) -> str:
    if not head.origin or "\n" in head.origin or not head.origin.isprintable():
        raise CheckpointError("the origin must be one printable line")
    return sign_note(head.text(), signer)


def parse_checkpoint_text(text: str) -> TreeHead:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise CheckpointError("a checkpoint has an origin, a tree size and a root hash line")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not origin:
        raise CheckpointError("the checkpoint's origin line is empty")
    if not size_s.isascii() or not size_s.isdigit() or (size_s.startswith("0") and size_s != "0"):
        raise CheckpointError(f"the checkpoint's tree size {size_s[:20]!r} is not a decimal")
    root = _b64decode(root_s, "the checkpoint's root hash")
    if len(root) != 32:
        raise CheckpointError("the checkpoint's root hash is not 32 bytes")
    return TreeHead(origin, int(size_s), root)


def open_checkpoint(
    note: str, verifiers: Sequence[NoteVerifier], *, origin: str | None = None
) -> TreeHead:
    """Verify a signed checkpoint with the public keys only, and say what it commits to.

    With ``origin``, refuse a checkpoint of another log (another tenant's tree, say).
    """
    text, _ = open_note(note, verifiers)
    head = parse_checkpoint_text(text)
    if origin is not None and head.origin != origin:
        raise CheckpointError(f"checkpoint is for log {head.origin!r}, not {origin!r}")
    return head


def split_notes(blob: str) -> list[str]:
    """Several signed notes written one after another (a witness file) as separate notes.

    A note's signature block ends where the next note's first line (not a signature line)
    begins; blank lines between notes are ignored.
    """
    notes: list[str] = []
    cur: list[str] = []
    in_sigs = False
    for line in blob.splitlines():
        if in_sigs and not line.startswith(SIG_PREFIX):
            notes.append("\n".join(cur) + "\n")
            cur, in_sigs = [], False
            if not line:
                continue
        if not cur and not line:
            continue
        cur.append(line)
        if not line and cur:
            in_sigs = True
    if cur:
        notes.append("\n".join(cur) + "\n")
    return notes
