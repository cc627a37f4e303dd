"""Tenants, their API keys and their approvers.

An API key is ``ae_`` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored: the
tenant document (collection ``tenants``) holds the hash, and an index document (collection
``tenant_keys``, keyed by the hash) maps it back to the tenant. Authenticating hashes the
presented key, looks the hash up and compares it with the tenant's current hash in constant
time, so a rotated key stops working even if its index document were left behind.

Approvers are listed per tenant per channel, e.g. ``{"telegram": ["123456"], "web":
["alice@example.com"]}``; an approval identity is ``engineer:<channel>:<id>``.

The request helpers (:func:`authenticate_request`, :func:`require_tenant`) read
``Authorization: Bearer <key>`` or ``X-API-Key``; the admin key comes from
``ALERTENGINE_ADMIN_KEY``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from alertengine.clock import Clock, SystemClock
from alertengine.stores.base import StateStore

TENANTS = "tenants"
KEY_INDEX = "tenant_keys"
KEY_PREFIX = "ae_"
ADMIN_KEY_ENV = "ALERTENGINE_ADMIN_KEY"
#: Ledger tenant id under which attempts that name no existing tenant are recorded.
SYSTEM_TENANT = "_system"

_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CHANNEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class TenantError(ValueError):
    """A tenant operation could not be done (unknown tenant, bad id, duplicate …)."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def approver_id_problem(user_id: str) -> str | None:
    """Why ``user_id`` cannot be an approver id on a channel (None when it can)."""
    if not user_id.strip():
        return "is empty"
    if ":" in user_id:
        return "contains ':' (it separates the parts of engineer:<channel>:<id>)"
    if len(user_id.strip()) > 200:
        return "is longer than 200 characters"
    return None


def engineer_identity(channel: str, user_id: str) -> str:
    return f"engineer:{channel}:{user_id}"


def parse_identity(identity: str) -> tuple[str, str] | None:
    """``engineer:<channel>:<id>`` -> (channel, id); None for anything else."""
    parts = identity.split(":", 2)
    if len(parts) != 3 or parts[0] != "engineer" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


@dataclass(frozen=True, slots=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: float
    key_rotated_at: float
    approvers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def is_approver(self, identity: str) -> bool:
        parsed = parse_identity(identity)
        if parsed is None:
            return False
        channel, user_id = parsed
        return any(hmac.compare_digest(user_id, x) for x in self.approvers.get(channel, ()))

    def identities(self) -> list[str]:
        return [engineer_identity(ch, i) for ch, ids in self.approvers.items() for i in ids]

    def to_public(self) -> dict[str, Any]:
        """What may be shown (no key hash)."""
        return {
            "tenant_id": self.tenant_id,
            "name": self.name,
            "created_at": self.created_at,
            "key_rotated_at": self.key_rotated_at,
            "approvers": {k: list(v) for k, v in self.approvers.items()},
        }


def _tenant_from_doc(doc: Mapping[str, Any]) -> Tenant:
    return Tenant(
        tenant_id=str(doc["tenant_id"]),
        name=str(doc.get("name", "")),
        created_at=float(doc.get("created_at", 0.0)),
        key_rotated_at=float(doc.get("key_rotated_at", 0.0)),
        approvers={
            str(ch): tuple(str(i) for i in ids)
            for ch, ids in dict(doc.get("approvers") or {}).items()
        },
    )


class TenantRegistry:
    """Tenants in a :class:`StateStore`. Keys are returned once, never stored in clear."""

    def __init__(self, store: StateStore, clock: Clock | None = None) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()

    async def _doc(self, tenant_id: str) -> dict[str, Any]:
        doc = await self.store.get(TENANTS, tenant_id)
        if doc is None:
            raise TenantError(f"no such tenant: {tenant_id!r}")
        return doc

    async def add(self, tenant_id: str, name: str) -> str:
        """Create a tenant; returns its API key (shown once)."""
        if tenant_id == SYSTEM_TENANT or not _TENANT_ID.match(tenant_id):
            raise TenantError(
                f"invalid tenant id {tenant_id!r}: use 1-63 of a-z 0-9 _ - (starting a-z0-9)"
            )
        if await self.store.get(TENANTS, tenant_id) is not None:
            raise TenantError(f"tenant {tenant_id!r} already exists")
        key = new_api_key()
        now = self.clock.now()
        await self.store.put(KEY_INDEX, hash_key(key), {"tenant_id": tenant_id})
        await self.store.put(
            TENANTS,
            tenant_id,
            {
                "tenant_id": tenant_id,
                "name": name,
                "created_at": now,
                "key_rotated_at": now,
                "key_sha256": hash_key(key),
                "approvers": {},
            },
        )
        return key

    async def rotate_key(self, tenant_id: str) -> str:
        """A new key; the old one stops working at once."""
        doc = await self._doc(tenant_id)
        key = new_api_key()
        old = str(doc.get("key_sha256", ""))
        await self.store.put(KEY_INDEX, hash_key(key), {"tenant_id": tenant_id})
        await self.store.put(
            TENANTS,
            tenant_id,
            {**doc, "key_sha256": hash_key(key), "key_rotated_at": self.clock.now()},
        )
        if old:
            await self.store.delete(KEY_INDEX, old)
        return key

    async def authenticate(self, key: str | None) -> str | None:
        """The tenant id the key belongs to, or None."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = hash_key(key)
        index = await self.store.get(KEY_INDEX, digest)
        if index is None:
            return None
        doc = await self.store.get(TENANTS, str(index.get("tenant_id", "")))
        if doc is None:
            return None
        current = str(doc.get("key_sha256", ""))
        if not hmac.compare_digest(current.encode(), digest.encode()):
            return None
        return str(doc["tenant_id"])

    async def get(self, tenant_id: str) -> Tenant | None:
        doc = await self.store.get(TENANTS, tenant_id)
        return _tenant_from_doc(doc) if doc is not None else None

    async def exists(self, tenant_id: str) -> bool:
        return await self.store.get(TENANTS, tenant_id) is not None

    async def list(self) -> list[Tenant]:
        docs = await self.store.list(TENANTS)
        return sorted((_tenant_from_doc(d) for d in docs.values()), key=lambda t: t.tenant_id)

    async def set_approvers(self, tenant_id: str, channel: str, ids: Sequence[str]) -> Tenant:
        """Replace the tenant's approver list for one channel (an empty list removes it)."""
        if not _CHANNEL.match(channel):
            raise TenantError(f"invalid channel {channel!r}")
        clean = []
        for raw in ids:
            i = raw.strip()
            if approver_id_problem(i):
                raise TenantError(f"invalid approver id {raw!r} for channel {channel}")
            if i not in clean:
                clean.append(i)
        doc = await self._doc(tenant_id)
        approvers = dict(doc.get("approvers") or {})
        if clean:
            approvers[channel] = clean
        else:
            approvers.pop(channel, None)
        doc["approvers"] = approvers
        await self.store.put(TENANTS, tenant_id, doc)
        return _tenant_from_doc(doc)

    async def is_approver(self, tenant_id: str, identity: str) -> bool:
        tenant = await self.get(tenant_id)
        return tenant is not None and tenant.is_approver(identity)


# --- request helpers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a tenant (by API key), the admin, or nobody."""

    tenant_id: str | None
    admin: bool = False

    @property
    def authenticated(self) -> bool:
        return self.admin or self.tenant_id is not None


ANONYMOUS = Principal(None, False)


def admin_key_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    value = env.get(ADMIN_KEY_ENV, "").strip()
    return value or None


def presented_key(conn: HTTPConnection) -> str | None:
    auth = conn.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = conn.headers.get("x-api-key", "").strip()
    return key or None


async def authenticate_request(
    conn: HTTPConnection, registry: TenantRegistry, admin_key: str | None
) -> Principal:
    key = presented_key(conn)
    if key is None:
        return ANONYMOUS
    if admin_key and hmac.compare_digest(key.encode(), admin_key.encode()):
        return Principal(None, True)
    tenant_id = await registry.authenticate(key)
    return Principal(tenant_id, False) if tenant_id else ANONYMOUS


def access_refusal(principal: Principal, tenant_id: str) -> str | None:
    """Why ``principal`` may not touch ``tenant_id``'s resources, or None (for ledgering)."""
    if principal.admin:
        return None
    if principal.tenant_id is None:
        return "no valid API key"
    if not hmac.compare_digest(principal.tenant_id.encode(), tenant_id.encode()):
        return f"tenant {principal.tenant_id!r} may not access tenant {tenant_id!r}'s resources"
    return None


def require_tenant(principal: Principal, tenant_id: str) -> None:
    """Raise HTTP 401 (no key) or 403 (another tenant's resource); the caller ledgers it."""
    why = access_refusal(principal, tenant_id)
    if why is None:
        return
    if not principal.authenticated:
        raise HTTPException(401, detail=why, headers={"WWW-Authenticate": "Bearer"})
    raise HTTPException(403, detail=why)
