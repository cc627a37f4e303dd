"""Recovery tokens: short-lived HS256 JWTs that name one approver for one incident's action.

A token is a capability for exactly one approval. It is signed with ``ALERT_SECRET``
(at least 32 bytes outside demo mode), carries ``iss="alertengine"``, the tenant, the
incident, the action, the approver identity the link was sent to
(``engineer:<channel>:<id>``), a random ``jti`` and ``iat``/``exp``. Decoding looks at the
header *before* the signature and refuses anything but ``{"alg": "HS256"}`` (optionally
``"typ": "JWT"``): no ``alg=none``, no HS512, no RS256 key confusion, no ``kid``/``jku``.
Expiry is checked against the injected :class:`~alertengine.clock.Clock` with zero leeway,
so the simulator's virtual time applies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jwt

from alertengine.clock import Clock

ISSUER = "alertengine"
ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
MAX_TOKEN_CHARS = 4096
REQUIRED_CLAIMS = ("iss", "tenant", "incident", "action", "approver", "jti", "iat", "exp")


class SecretError(ValueError):
    """ALERT_SECRET is missing or too short for production use."""


def check_secret(secret: str | bytes | None, demo: bool = False) -> bytes:
    """The signing key as bytes, or :class:`SecretError` with a clear message.

    Outside demo mode the secret must be at least 32 bytes. In demo mode a missing or short
    secret is replaced by a random one (links then die with the process).
    """
    raw = secret.encode() if isinstance(secret, str) else (secret or b"")
    if len(raw) >= MIN_SECRET_BYTES:
        return raw
    if demo:
        return secrets.token_bytes(MIN_SECRET_BYTES)
    what = "not set" if not raw else f"only {len(raw)} bytes long"
    raise SecretError(
        f"ALERT_SECRET is {what}: approval links are signed with it and it must be at least "
        f"{MIN_SECRET_BYTES} bytes of randomness. Generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` "
        "(or run in demo mode, which uses a throw-away secret)."
    )


class Problem(str, Enum):
    """Why a token (or the approval it carries) is refused, with its HTTP status."""

    MALFORMED = "malformed"
    FORGED = "forged"
    ALGORITHM = "algorithm"
    EXPIRED = "expired"
    USED = "used"
    WRONG_TENANT = "wrong_tenant"
    NOT_APPROVER = "not_approver"
    SELF_APPROVAL = "self_approval"
    ALREADY_APPROVED = "already_approved"
    NOT_AWAITING = "not_awaiting"
    PASSKEY_REQUIRED = "passkey_required"
    PASSKEY_REFUSED = "passkey_refused"

    def __str__(self) -> str:
        return self.value

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS: dict[Problem, int] = {
    Problem.MALFORMED: 400,
    Problem.FORGED: 401,
    Problem.ALGORITHM: 401,
    Problem.EXPIRED: 410,
    Problem.USED: 409,
    Problem.WRONG_TENANT: 403,
    Problem.NOT_APPROVER: 403,
    Problem.SELF_APPROVAL: 403,
    Problem.ALREADY_APPROVED: 409,
    Problem.NOT_AWAITING: 409,
    Problem.PASSKEY_REQUIRED: 401,
    Problem.PASSKEY_REFUSED: 403,
}


class TokenError(Exception):
    """A token that cannot be honoured. ``unverified`` holds claims read without trusting them
    (only for ledgering where the attempt came from), ``claims`` the verified ones if any."""

    def __init__(
        self,
        problem: Problem,
        message: str,
        *,
        unverified: dict[str, Any] | None = None,
        claims: Claims | None = None,
    ) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.unverified = unverified or {}
        self.claims = claims

    @property
    def status(self) -> int:
        return self.problem.status


@dataclass(frozen=True, slots=True)
class Claims:
    tenant: str
    incident: str
    action: str
    approver: str
    jti: str
    iat: float
    exp: float
    #: The channel kind the link was sent through (optional claim ``via``).
    via: str = ""

    def to_payload(self) -> dict[str, Any]:
        extra = {"via": self.via} if self.via else {}
        return {
            **extra,
            "iss": ISSUER,
            "tenant": self.tenant,
            "incident": self.incident,
            "action": self.action,
            "approver": self.approver,
            "jti": self.jti,
            "iat": int(self.iat),
            "exp": int(self.exp),
        }


def token_fingerprint(token: str) -> str:
    """A short hash of a token: safe to ledger and log (the token itself never is)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def _b64json(segment: str) -> Any:
    pad = "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(segment + pad))


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload read without any trust, or TokenError(MALFORMED)."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise TokenError(Problem.MALFORMED, "not a recovery token")
    head, body, _sig = token.split(".")
    try:
        header = _b64json(head)
        payload = _b64json(body)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise TokenError(Problem.MALFORMED, "not a recovery token") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise TokenError(Problem.MALFORMED, "not a recovery token")
    return header, payload


def peek(token: str) -> dict[str, Any]:
    """The payload read WITHOUT verification (empty if unreadable): for ledgering only."""
    try:
        return _unverified(token)[1]
    except TokenError:
        return {}


class TokenSigner:
    def __init__(
        self, secret: bytes, clock: Clock, *, jti_factory: Callable[[], str] | None = None
    ) -> None:
        if len(secret) < 1:
            raise SecretError("empty signing secret")
        self._secret = secret
        self.clock = clock
        # Injectable so the governance simulator can make ids reproducible from a seed.
        self._jti_factory = jti_factory or (lambda: secrets.token_urlsafe(16))

    def new_jti(self) -> str:
        return self._jti_factory()

    def issue(
        self,
        *,
        tenant: str,
        incident: str,
        action: str,
        approver: str,
        ttl_s: float,
        via: str = "",
    ) -> tuple[str, Claims]:
        now = self.clock.now()
        claims = Claims(
            tenant=tenant,
            incident=incident,
            action=action,
            approver=approver,
            jti=self.new_jti(),
            iat=float(int(now)),
            exp=float(int(now + ttl_s)),
            via=via,
        )
        token = jwt.encode(
            claims.to_payload(), self._secret, algorithm=ALGORITHM, headers={"typ": "JWT"}
        )
        return token, claims

    def decode(self, token: str) -> Claims:
        """Verified claims, or :class:`TokenError` naming the problem."""
        header, payload = _unverified(token)
        alg = header.get("alg")
        if alg != ALGORITHM or set(header) - {"alg", "typ"} or header.get("typ", "JWT") != "JWT":
            raise TokenError(
                Problem.ALGORITHM,
                f"token algorithm {str(alg)[:20]!r} is not accepted (only HS256)",
                unverified=payload,
            )
        try:
            verified = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                leeway=0,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_signature": True,
                    # exp/iat/nbf are checked below against the injected clock.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise TokenError(
                Problem.FORGED, "token signature is not valid", unverified=payload
            ) from None
        except jwt.InvalidAlgorithmError:
            raise TokenError(Problem.ALGORITHM, "token algorithm not accepted") from None
        except jwt.PyJWTError as exc:
            raise TokenError(
                Problem.MALFORMED, f"token rejected: {type(exc).__name__}", unverified=payload
            ) from None
        claims = _claims(verified)
        if claims is None:
            raise TokenError(Problem.MALFORMED, "token claims have the wrong types")
        if self.clock.now() >= claims.exp:
            raise TokenError(Problem.EXPIRED, "this link has expired", claims=claims)
        return claims


def _claims(d: dict[str, Any]) -> Claims | None:
    try:
        c = Claims(
            tenant=d["tenant"],
            incident=d["incident"],
            action=d["action"],
            approver=d["approver"],
            jti=d["jti"],
            iat=float(d["iat"]),
            exp=float(d["exp"]),
            via=str(d.get("via", ""))[:32],
        )
    except (KeyError, TypeError, ValueError):
        return None
    texts = (c.tenant, c.incident, c.action, c.approver, c.jti)
    if not all(isinstance(x, str) and x for x in texts):
        return None
    return c
