"""Signed recovery webhooks: the sender's :func:`sign` and the receiver's :func:`verify`.

``X-AlertEngine-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>`` and
``X-AlertEngine-Timestamp: <unix seconds>``. The receiver recomputes the HMAC over the raw
body bytes, compares in constant time and refuses timestamps more than ``tolerance_s`` away
from its clock (replay window). Standard library only, so receivers can vendor this file.

:func:`sign` refuses a key shorter than :data:`MIN_KEY_BYTES`: an empty key would let anyone
forge an "approved" recovery, and a short one can be guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-AlertEngine-Timestamp"
SIGNATURE_HEADER = "X-AlertEngine-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"
MIN_KEY_BYTES = 32


class WeakKeyError(ValueError):
    """The signing key is empty or shorter than :data:`MIN_KEY_BYTES`."""


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def check_key(secret: str | bytes) -> bytes:
    """The key as bytes, or :class:`WeakKeyError` when it is too short to sign with."""
    key = _key(secret)
    if len(key) < MIN_KEY_BYTES:
        what = "empty" if not key else f"only {len(key)} bytes long"
        raise WeakKeyError(
            f"the webhook signing key is {what}; it must be at least {MIN_KEY_BYTES} bytes"
        )
    return key


def signature(secret: str | bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(_key(secret), f"{int(timestamp)}.".encode() + body, hashlib.sha256)
    return mac.hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: float) -> dict[str, str]:
    """Headers to send with ``body``. Refuses (:class:`WeakKeyError`) a short or empty key."""
    ts = int(timestamp)
    return {
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: f"{SCHEME}={signature(check_key(secret), body, ts)}",
    }


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_s: float = 300,
    now: float | None = None,
) -> bool:
    """True when ``body`` was signed with ``secret`` within ``tolerance_s`` of ``now``.

    ``headers`` may be any mapping (case-insensitive lookup is done here). Several ``v1=``
    signatures separated by commas are accepted (secret rotation).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    ts_raw = lower.get(TIMESTAMP_HEADER.lower(), "")
    sig_raw = lower.get(SIGNATURE_HEADER.lower(), "")
    try:
        ts = int(ts_raw)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    expected = signature(secret, body, ts)
    ok = False
    for part in sig_raw.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == SCHEME and hmac.compare_digest(value.encode(), expected.encode()):
            ok = True
    return ok
