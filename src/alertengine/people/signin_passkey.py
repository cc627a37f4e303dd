"""Dashboard sign-in as a person with their enrolled passkey, instead of the channel link.

When the person sits at the dashboard themselves, their passkey (passkeys/) proves it at once:
the server issues a WebAuthn challenge bound to (tenant, person, requester, a single-use
nonce), the browser asks the authenticator (user verification required), and the server
verifies the assertion against the person's own enrolled credential, moving the sign count
forward once (a cloned authenticator is refused). Ledgered as the link flow is: ``confirmed``
by ``person:<id>`` with ``via: passkey``; refusals as kind ``refused``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any

from webauthn import (
    generate_authentication_options,
    options_to_json,
    verify_authentication_response,
)
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidJSONStructure
from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

from alertengine.passkeys.service import AssertionCheck, Passkeys
from alertengine.people.model import person_actor
from alertengine.people.signin import SignInError, SignIns, hash_ref, secret_hash

CHALLENGES = "person_signin_passkey"
CHALLENGE_TTL_S = 120.0


def signin_challenge(tenant: str, person: str, requester: str, nonce: str) -> bytes:
    """What the authenticator signs: this sign-in and no other (not an approval's)."""
    parts = [b"alertengine/person-signin/v1", *(x.encode() for x in (tenant, person, requester))]
    return hashlib.sha256(b"\0".join([*parts, nonce.encode()])).digest()


class PasskeySignIn:
    def __init__(self, passkeys: Passkeys, signins: SignIns) -> None:
        self.passkeys, self.signins = passkeys, signins

    async def options(self, tenant: str, person_id: str, requester: str) -> tuple[str, str]:
        """(WebAuthn request options as JSON, the nonce to send back with the assertion)."""
        person = await self.signins.people.get(tenant, person_id) if person_id else None
        creds = (
            await self.passkeys.credentials.of_person(tenant, person_id, active_only=True)
            if person is not None
            else []
        )
        if not creds:
            raise SignInError(409, f"person {person_id[:64]!r} has no passkey enrolled here")
        nonce = secrets.token_urlsafe(24)
        now = self.signins.clock.now()
        await self.signins.store.put(
            CHALLENGES,
            secret_hash(nonce),
            {
                "tenant": tenant,
                "person": person_id,
                "requester": requester,
                "expires_at": now + CHALLENGE_TTL_S,
            },
        )
        options = generate_authentication_options(
            rp_id=self.passkeys.rp_id,
            challenge=signin_challenge(tenant, person_id, requester, nonce),
            allow_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(c.credential_id)) for c in creds
            ],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json(options), nonce

    async def finish(self, tenant: str, requester: str, nonce: str, assertion: Any) -> str:
        """The person id the assertion proves; :class:`SignInError` (ledgered) otherwise."""
        nh = secret_hash(nonce) if 16 <= len(nonce) <= 64 else ""
        doc = await self.signins.store.get(CHALLENGES, nh) if nh else None
        if doc is None or not hmac.compare_digest(str(doc["tenant"]).encode(), tenant.encode()):
            raise await self.signins.refuse(
                tenant, requester, "passkey sign-in refused: unknown challenge", 400, via="passkey"
            )
        pid = str(doc["person"])
        actor = person_actor(pid)
        ref = hash_ref(nh)
        if float(doc["expires_at"]) <= self.signins.clock.now() or doc["requester"] != requester:
            raise await self.signins.refuse(
                tenant, actor, "passkey sign-in refused: challenge expired or not this session's",
                400, via="passkey", request=ref,
            )  # fmt: skip
        if not await self.signins.store.claim(f"signin-passkey:{nh}", CHALLENGE_TTL_S * 2):
            raise await self.signins.refuse(
                tenant, actor, "passkey sign-in refused: challenge already used", 409,
                via="passkey", request=ref,
            )  # fmt: skip
        cred_id = ""
        if isinstance(assertion, Mapping):
            cred_id = str(assertion.get("rawId") or assertion.get("id") or "")[:1400]
        cred = await self.passkeys.credentials.get(tenant, cred_id) if cred_id else None
        why = ""
        if cred is None:
            why = "this passkey is not enrolled"
        elif cred.person_id != pid:
            why = "this passkey belongs to someone else"
        elif not cred.active:
            why = "this passkey was revoked"
        if cred is None or why:
            raise await self.signins.refuse(
                tenant, actor, f"passkey sign-in refused: {why}", 403, via="passkey", request=ref
            )
        try:
            verified = verify_authentication_response(
                credential=dict(assertion),
                expected_challenge=signin_challenge(tenant, pid, requester, nonce),
                expected_rp_id=self.passkeys.rp_id,
                expected_origin=self.passkeys.origin,
                credential_public_key=base64url_to_bytes(cred.public_key),
                credential_current_sign_count=cred.sign_count,
                require_user_verification=True,
            )
        except (InvalidAuthenticationResponse, InvalidJSONStructure, ValueError, KeyError) as exc:
            raise await self.signins.refuse(
                tenant, actor, f"passkey sign-in refused: {str(exc)[:160]}", 403, via="passkey",
                request=ref,
            ) from None  # fmt: skip
        counted = await self.passkeys.accept(AssertionCheck("", "", cred, verified.new_sign_count))
        if not counted.ok:
            raise await self.signins.refuse(
                tenant, actor, f"passkey sign-in refused: {counted.message}", 403,
                via="passkey", request=ref,
            )  # fmt: skip
        await self.signins.record(
            tenant,
            "signin",
            actor,
            "confirmed",
            f"{actor} confirmed the sign-in of {requester} from dashboard with their passkey",
            {"person": pid, "request": ref, "client": "dashboard", "via": "passkey",
             "credential_id": cred.credential_id},
        )  # fmt: skip
        await self.signins.record(
            tenant,
            "signin",
            "orchestrator",
            "session signed in",
            f"the dashboard session of {requester} now acts as {actor}",
            {"person": pid, "request": ref, "client": "dashboard", "via": "passkey"},
        )
        return pid


def parse_assertion(text: str) -> Any:
    try:
        return json.loads(text) if len(text) <= 16_384 else None
    except ValueError:
        return None
