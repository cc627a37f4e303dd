"""A software WebAuthn authenticator for tests: a real P-256 or Ed25519 key (cryptography)
producing real registration and assertion responses in the shapes browsers send, encoded with the
WebAuthn library's own CBOR helper. It lets a test make what a browser cannot be asked to
make: a cloned authenticator's stale counter, an assertion for another RP ID or origin."""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, encode_cbor

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


def _client_data(kind: str, challenge: bytes, origin: str) -> bytes:
    return json.dumps(
        {
            "type": kind,
            "challenge": bytes_to_base64url(challenge),
            "origin": origin,
            "crossOrigin": False,
        },
        separators=(",", ":"),
    ).encode()


@dataclass
class SoftAuthenticator:
    rp_id: str = "localhost"
    origin: str = "http://localhost:8700"
    counter: int = 0  # 0 = a passkey without a counter (most synced passkeys)
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    user_handle: bytes = b""

    @classmethod
    def ed25519(cls, **kw: Any) -> SoftAuthenticator:
        return cls(key=ed25519.Ed25519PrivateKey.generate(), **kw)

    def cose_key(self) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):  # COSE OKP, EdDSA, Ed25519
            raw = self.key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            return encode_cbor({1: 1, 3: -8, -1: 6, -2: raw})
        pub = self.key.public_key().public_numbers()  # COSE EC2, ES256, P-256
        return encode_cbor(
            {1: 2, 3: -7, -1: 1, -2: pub.x.to_bytes(32, "big"), -3: pub.y.to_bytes(32, "big")}
        )

    def _sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(data)
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def _auth_data(self, rp_id: str, flags: int, count: int, attested: bytes = b"") -> bytes:
        return (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([flags])
            + struct.pack(">I", count)
            + attested
        )

    def create(self, options_json: str) -> dict[str, Any]:
        """navigator.credentials.create(): a ``none``-attestation registration response."""
        options = json.loads(options_json)
        self.user_handle = base64url_to_bytes(options["user"]["id"])
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id
        auth = self._auth_data(
            options["rp"]["id"],
            FLAG_UP | FLAG_UV | FLAG_AT,
            self.counter,
            attested + self.cose_key(),
        )
        cdj = _client_data("webauthn.create", base64url_to_bytes(options["challenge"]), self.origin)
        att = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth})
        cid = bytes_to_base64url(self.credential_id)
        return {
            "id": cid,
            "rawId": cid,
            "type": "public-key",
            "response": {
                "clientDataJSON": bytes_to_base64url(cdj),
                "attestationObject": bytes_to_base64url(att),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        challenge: bytes,
        *,
        rp_id: str | None = None,
        origin: str | None = None,
        count: int | None = None,
        user_verified: bool = True,
    ) -> dict[str, Any]:
        """navigator.credentials.get() for ``challenge`` (advances the counter if it has one)."""
        if count is None and self.counter:
            self.counter += 1
        n = self.counter if count is None else count
        flags = FLAG_UP | (FLAG_UV if user_verified else 0)
        auth = self._auth_data(rp_id or self.rp_id, flags, n)
        cdj = _client_data("webauthn.get", challenge, origin or self.origin)
        sig = self._sign(auth + hashlib.sha256(cdj).digest())
        cid = bytes_to_base64url(self.credential_id)
        return {
            "id": cid,
            "rawId": cid,
            "type": "public-key",
            "response": {
                "authenticatorData": bytes_to_base64url(auth),
                "clientDataJSON": bytes_to_base64url(cdj),
                "signature": bytes_to_base64url(sig),
                "userHandle": bytes_to_base64url(self.user_handle) if self.user_handle else None,
            },
            "clientExtensionResults": {},
        }

    def get_for(self, options_json: str, **kw: Any) -> dict[str, Any]:
        return self.get(base64url_to_bytes(json.loads(options_json)["challenge"]), **kw)
