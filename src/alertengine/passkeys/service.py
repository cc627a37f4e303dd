"""Passkeys: enroll a person's WebAuthn credential, and check an approval's assertion.

Verification is py_webauthn's (CBOR, COSE keys, signatures, flags): this module only decides
what is expected (RP ID and origin from the orchestrator's ``base_url``, the challenge bound
to one approval, the enrolled key and sign count) and ledgers what happened. Enrollment links
are random, single use (an atomic claim) and short-lived; only their hash is stored and
ledgered. GET never changes anything: options and results are POSTs.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidJSONStructure,
    InvalidRegistrationResponse,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from alertengine.authorize.tokens import Claims
from alertengine.clock import Clock
from alertengine.engine import IncidentEngine
from alertengine.passkeys.binding import approval_challenge, person_actor, person_of
from alertengine.passkeys.credentials import Credential, CredentialStore
from alertengine.refusals.gate import RefusalGate
from alertengine.stores.base import StateStore
from alertengine.tenants import SYSTEM_TENANT

ENROLLMENTS = "passkey_enrollments"
DEFAULT_ENROLL_TTL_S = 900.0
#: A used counter value stays claimed this long (a cloned authenticator replaying it is refused).
SIGN_COUNT_CLAIM_S = 400 * 86_400.0
MAX_CREDENTIAL_ID = 1400  # base64url characters: WebAuthn ids are at most 1023 bytes


class PasskeyError(Exception):
    """An enrollment step that cannot be done; ``problem`` is a short machine word."""

    def __init__(self, problem: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class EnrollmentLink:
    tenant_id: str
    person_id: str
    token: str
    url: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class AssertionCheck:
    """The verdict on one approval's assertion. ``problem`` is empty when it verified."""

    problem: str = ""
    message: str = ""
    credential: Credential | None = None
    new_sign_count: int = 0
    proof: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problem

    def ledger_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"passkey_problem": self.problem}
        if self.credential is not None:
            data["credential_id"] = self.credential.credential_id
        return data


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _problem_of(message: str) -> str:
    """py_webauthn's refusal, as a word the ledger and the tests can rely on."""
    m = message.lower()
    for needle, word in (
        ("challenge", "challenge"),
        ("origin", "origin"),
        ("rp id", "rp_id"),
        ("sign count", "sign_count"),
        ("user verification", "user_verification"),
        ("not present", "user_presence"),
        ("signature", "signature"),
    ):
        if needle in m:
            return word
    return "malformed"


def _str(v: Any, limit: int = 16_384) -> str:
    return v if isinstance(v, str) and len(v) <= limit else ""


class Passkeys:
    def __init__(
        self,
        engine: IncidentEngine,
        store: StateStore,
        clock: Clock,
        base_url: str,
        *,
        rp_name: str = "AlertEngine",
        enroll_ttl_s: float = DEFAULT_ENROLL_TTL_S,
    ) -> None:
        self.engine = engine
        self.store = store
        self.credentials = CredentialStore(store)
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self.rp_name = rp_name
        self.enroll_ttl_s = enroll_ttl_s
        #: Refusals of enrollment links we never issued: anyone can send those (the budget's).
        self.refusals = RefusalGate.passthrough(engine.record)

    @property
    def rp_id(self) -> str:
        """The relying party id: the host of ``base_url`` (no port, no scheme)."""
        return urlsplit(self.base_url).hostname or ""

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    # -- enrollment -------------------------------------------------------------------------

    async def issue_enrollment(
        self, tenant_id: str, person_id: str, *, actor: str = "admin:cli"
    ) -> EnrollmentLink:
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + self.enroll_ttl_s
        await self.store.put(
            ENROLLMENTS,
            _token_hash(token),
            {"tenant": tenant_id, "person": person_id, "issued_at": now, "expires_at": expires},
        )
        await self.engine.record(
            tenant_id,
            None,
            kind="passkey",
            actor=actor,
            decision="enrollment_link_issued",
            reason=f"passkey enrollment link issued for {person_actor(person_id)}",
            data={
                "person": person_id,
                "expires_at": expires,
                "token_sha256_prefix": _token_hash(token)[:16],
            },
        )
        return EnrollmentLink(
            tenant_id, person_id, token, f"{self.base_url}/passkeys/enroll?token={token}", expires
        )

    async def enrollment(self, token: str) -> dict[str, Any]:
        """The enrollment a link is for (no side effects), or :class:`PasskeyError`."""
        doc = await self.store.get(ENROLLMENTS, _token_hash(token)) if token else None
        if doc is None:
            raise PasskeyError("invalid_link", "This enrollment link is not valid.", 404)
        if await self.store.claimed("passkey_enroll:" + _token_hash(token)) is not None:
            raise PasskeyError("used", "This enrollment link was already used.", 409)
        if self.clock.now() >= float(doc["expires_at"]):
            raise PasskeyError("expired", "This enrollment link has expired.", 410)
        return doc

    async def registration_options(self, token: str) -> str:
        """WebAuthn creation options (JSON) for the link's person; remembers the challenge."""
        doc = await self.enrollment(token)
        tenant, person = str(doc["tenant"]), str(doc["person"])
        existing = await self.credentials.of_person(tenant, person, active_only=True)
        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_name=person,
            user_display_name=f"{person} ({tenant})",
            user_id=hashlib.sha256(f"{tenant}/{person}".encode()).digest()[:32],
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(c.credential_id))
                for c in existing
            ],
        )
        await self.store.put(
            ENROLLMENTS,
            _token_hash(token),
            {**doc, "challenge": bytes_to_base64url(options.challenge)},
        )
        return options_to_json(options)

    async def finish_enrollment(self, token: str, credential: Any) -> Credential:
        """Verify the new credential, store it and ledger it (public key included). A link
        is redeemed once; every refusal is ledgered."""
        try:
            doc = await self.enrollment(token)
        except PasskeyError as refused:
            # A used or expired link is ledgered under its tenant; an unknown one under _system.
            known = await self.store.get(ENROLLMENTS, _token_hash(token)) if token else None
            await self._refuse_enrollment(known, refused, token)
            raise
        tenant, person = str(doc["tenant"]), str(doc["person"])
        challenge = _str(doc.get("challenge"))
        if not challenge:
            err = PasskeyError("no_options", "Ask for the enrollment options first.", 409)
            await self._refuse_enrollment(doc, err, token)
            raise err
        try:
            verified = verify_registration_response(
                credential=dict(credential) if isinstance(credential, Mapping) else {},
                expected_challenge=base64url_to_bytes(challenge),
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                require_user_verification=True,
            )
        except (InvalidRegistrationResponse, InvalidJSONStructure, ValueError, KeyError) as exc:
            bad = PasskeyError(_problem_of(str(exc)), f"The new passkey was refused: {exc}", 400)
            await self._refuse_enrollment(doc, bad, token)
            raise bad from None
        ttl = max(0.0, float(doc["expires_at"]) - self.clock.now()) + 3600.0
        if not await self.store.claim("passkey_enroll:" + _token_hash(token), ttl):
            err = PasskeyError("used", "This enrollment link was already used.", 409)
            await self._refuse_enrollment(doc, err, token)
            raise err
        cred = Credential(
            tenant_id=tenant,
            person_id=person,
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            rp_id=self.rp_id,
            origin=self.origin,
            enrolled_at=self.clock.now(),
            aaguid=verified.aaguid,
        )
        await self.credentials.add(cred)
        await self.engine.record(
            tenant,
            None,
            kind="passkey",
            actor=person_actor(person),
            decision="enrolled",
            reason=f"passkey enrolled for {person_actor(person)}",
            data={
                "person": person,
                "credential_id": cred.credential_id,
                "public_key_cose": cred.public_key,
                "sign_count": cred.sign_count,
                "rp_id": cred.rp_id,
                "origin": cred.origin,
                "aaguid": cred.aaguid,
                "user_verified": verified.user_verified,
                "token_sha256_prefix": _token_hash(token)[:16],
            },
        )
        return cred

    async def _refuse_enrollment(
        self, doc: Mapping[str, Any] | None, err: PasskeyError, token: str
    ) -> None:
        tenant = str(doc["tenant"]) if doc else SYSTEM_TENANT
        person = str(doc["person"]) if doc else ""
        record = self.engine.record if doc else self.refusals.recorder(err.problem)
        await record(
            tenant,
            None,
            kind="refused",
            actor=person_actor(person) if person else "anonymous",
            decision="refused",
            reason=f"passkey enrollment {err.problem}: {err.message}"[:300],
            data={
                "problem": err.problem,
                "via": "passkey_enroll",
                "person": person,
                "token_sha256_prefix": _token_hash(token)[:16],
            },
        )

    async def revoke(self, tenant_id: str, credential_id: str, *, actor: str) -> Credential:
        """Revoke a credential (a lost device). Ledgered; approvals with it are refused."""
        cred = await self.credentials.get(tenant_id, credential_id)
        if cred is None:
            raise PasskeyError("unknown_credential", f"no credential {credential_id!r}", 404)
        if not cred.active:
            raise PasskeyError("revoked", f"credential {credential_id!r} is already revoked", 409)
        revoked = await self.credentials.revoke(cred, self.clock.now(), actor)
        await self.engine.record(
            tenant_id,
            None,
            kind="passkey",
            actor=actor,
            decision="revoked",
            reason=f"passkey of {person_actor(cred.person_id)} revoked",
            data={"person": cred.person_id, "credential_id": cred.credential_id},
        )
        return revoked

    # -- approval ---------------------------------------------------------------------------

    async def assertion_options(self, c: Claims, person_id: str, policy_version: str) -> str:
        """Request options (JSON) whose challenge is bound to this one approval."""
        creds = await self.credentials.of_person(c.tenant, person_id, active_only=True)
        if not creds:
            raise PasskeyError(
                "not_enrolled",
                "You have no passkey enrolled: ask an administrator for an enrollment link.",
                409,
            )
        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=self.challenge_for(c, person_id, policy_version),
            allow_credentials=[
                PublicKeyCredentialDescriptor(id=base64url_to_bytes(x.credential_id)) for x in creds
            ],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json(options)

    @staticmethod
    def challenge_for(c: Claims, person_id: str, policy_version: str) -> bytes:
        return approval_challenge(
            tenant=c.tenant,
            incident=c.incident,
            action=c.action,
            jti=c.jti,
            policy_version=policy_version,
            person=person_id,
        )

    async def check(
        self, c: Claims, approver: str, policy_version: str, assertion: Any
    ) -> AssertionCheck:
        """Verify ``approver``'s (an actor: ``person:<id>`` or ``engineer:<channel>:<id>``)
        assertion for this approval. Nothing is stored: see :meth:`accept`."""
        person_id = person_of(approver)
        if not isinstance(assertion, Mapping):
            return AssertionCheck("missing", "no passkey assertion")
        cred_id = _str(assertion.get("rawId") or assertion.get("id"), MAX_CREDENTIAL_ID)
        cred = await self.credentials.get(c.tenant, cred_id) if cred_id else None
        if cred is None:
            return AssertionCheck("unknown_credential", "this passkey is not enrolled")
        if cred.person_id != person_id:
            return AssertionCheck("wrong_person", "this passkey belongs to someone else", cred)
        if not cred.active:
            return AssertionCheck("revoked", "this passkey was revoked", cred)
        try:
            verified = verify_authentication_response(
                credential=dict(assertion),
                expected_challenge=self.challenge_for(c, person_id, policy_version),
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=base64url_to_bytes(cred.public_key),
                credential_current_sign_count=cred.sign_count,
                require_user_verification=True,
            )
        except (InvalidAuthenticationResponse, InvalidJSONStructure, ValueError, KeyError) as exc:
            return AssertionCheck(_problem_of(str(exc)), str(exc)[:200], cred)
        response = assertion.get("response")
        assert isinstance(response, Mapping)  # the library parsed it
        proof = {
            "person": person_id,
            "action": c.action,
            "credential_id": cred.credential_id,
            "authenticator_data": str(response.get("authenticatorData", "")),
            "client_data_json": str(response.get("clientDataJSON", "")),
            "signature": str(response.get("signature", "")),
            "user_handle": _str(response.get("userHandle"), 1400) or None,
            "sign_count": verified.new_sign_count,
        }
        return AssertionCheck("", "", cred, verified.new_sign_count, proof)

    async def accept(self, check: AssertionCheck) -> AssertionCheck:
        """Move the credential's sign count forward, atomically: a counter value is used
        once, so two copies of one authenticator cannot both spend it (a clone)."""
        cred = check.credential
        if cred is None or not check.ok:
            return check
        n = check.new_sign_count
        if n > 0:
            key = f"passkey_count:{cred.tenant_id}/{cred.credential_id}/{n}"
            if not await self.store.claim(key, SIGN_COUNT_CLAIM_S):
                return AssertionCheck(
                    "sign_count", f"sign count {n} was already used (cloned authenticator?)", cred
                )
            await self.credentials.set_sign_count(cred, n)
        return check
