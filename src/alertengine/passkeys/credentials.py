"""Enrolled WebAuthn credentials per tenant and person (the operational copy).

The ledger holds the authoritative history (every enrollment with its public key, every
revocation, every sign count an approval used); this store is what the confirm path reads
so it does not fold the ledger on each request. Collection ``passkey_credentials``, keyed by
``<tenant>/<credential id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from alertengine.stores.base import StateStore

CREDENTIALS = "passkey_credentials"


@dataclass(frozen=True, slots=True)
class Credential:
    tenant_id: str
    person_id: str
    credential_id: str  # base64url, as WebAuthn's ``rawId``
    public_key: str  # base64url of the COSE_Key bytes
    sign_count: int
    rp_id: str
    origin: str
    enrolled_at: float
    aaguid: str = ""
    revoked_at: float | None = None
    revoked_by: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> Credential:
        return cls(
            tenant_id=str(d["tenant_id"]),
            person_id=str(d["person_id"]),
            credential_id=str(d["credential_id"]),
            public_key=str(d["public_key"]),
            sign_count=int(d["sign_count"]),
            rp_id=str(d["rp_id"]),
            origin=str(d["origin"]),
            enrolled_at=float(d["enrolled_at"]),
            aaguid=str(d.get("aaguid", "")),
            revoked_at=None if d.get("revoked_at") is None else float(d["revoked_at"]),
            revoked_by=str(d.get("revoked_by", "")),
        )


def _key(tenant_id: str, credential_id: str) -> str:
    return f"{tenant_id}/{credential_id}"


class CredentialStore:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def add(self, cred: Credential) -> None:
        await self.store.put(CREDENTIALS, _key(cred.tenant_id, cred.credential_id), cred.to_doc())

    async def get(self, tenant_id: str, credential_id: str) -> Credential | None:
        doc = await self.store.get(CREDENTIALS, _key(tenant_id, credential_id))
        return Credential.from_doc(doc) if doc is not None else None

    async def of_person(
        self, tenant_id: str, person_id: str | None = None, *, active_only: bool = False
    ) -> list[Credential]:
        found = [Credential.from_doc(d) for d in (await self.store.list(CREDENTIALS)).values()]
        return sorted(
            (
                c
                for c in found
                if c.tenant_id == tenant_id
                and (person_id is None or c.person_id == person_id)
                and (c.active or not active_only)
            ),
            key=lambda c: c.enrolled_at,
        )

    async def set_sign_count(self, cred: Credential, count: int) -> None:
        await self.add(replace(cred, sign_count=count))

    async def revoke(self, cred: Credential, at: float, by: str) -> Credential:
        revoked = replace(cred, revoked_at=at, revoked_by=by)
        await self.add(revoked)
        return revoked
