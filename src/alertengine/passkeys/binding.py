"""What a passkey approval is bound to, and who it belongs to: pure functions, no I/O.

The WebAuthn challenge of an approval is not random: it is SHA-256 over a canonical encoding
of (tenant, incident, action, the link's jti, the policy version, the approving person). An
assertion therefore signs exactly one approval, and an auditor can recompute the challenge
from the ledger entry alone and check it against the signed ``clientDataJSON``.
"""

from __future__ import annotations

import hashlib
import json

#: Bumped if the encoding below ever changes; it is part of the hashed bytes.
BINDING_VERSION = 1


def person_of(actor: str) -> str:
    """The person an approver identity belongs to.

    ``person:<id>`` (the person registry's actor) -> ``<id>``; today's channel identities
    ``engineer:<channel>:<identity>`` -> ``<identity>`` (entries that share an identity are
    one person). The one place to switch to the registry's ``parse_person_actor``.
    """
    if actor.startswith("person:"):
        return actor.removeprefix("person:")
    parts = actor.split(":", 2)
    if len(parts) == 3 and parts[0] == "engineer" and parts[2]:
        return parts[2]
    return actor


def person_actor(person_id: str) -> str:
    """The ledger actor of a person (the registry's ``person_actor`` shape)."""
    return f"person:{person_id}"


def approval_challenge(
    *, tenant: str, incident: str, action: str, jti: str, policy_version: str, person: str
) -> bytes:
    """SHA-256 of the canonical JSON array of the approval's fields (order fixed, UTF-8)."""
    fields = [BINDING_VERSION, tenant, incident, action, jti, policy_version, person]
    encoded = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).digest()
