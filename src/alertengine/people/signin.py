"""Person sign-in: a requester holding the tenant's credentials asks to act as one person, and
only that person, from their own registered channel, can say yes.

A device-authorization flow (after RFC 8628) whose "verification" is a one-time link sent to
the person's channels:

1. ``request``: a tenant key (CLI/API) or a tenant dashboard session names a person. A pending
   request is stored with a secret ``device_code`` (the requester polls with it), a short
   ``user_code`` (``BCDF-GHJK``, shown to the requester and on the person's page, so the
   person confirms only the sign-in they see on their own screen) and a secret confirm code
   (the link). The link goes to the person's registered channels (``send``).
2. ``confirm`` / ``deny``: the person opens the link (GET shows; nothing changes) and POSTs.
   Single use.
3. ``poll``: the requester learns the outcome; once confirmed it receives the credential
   exactly once: a person token (``aep_…``, stored only as a SHA-256 hash, with tenant,
   person, expiry, revocable) for the CLI, or the dashboard session names the person.

Every step is ledgered (kind ``signin``); the person's own acts with actor ``person:<id>``.
No device code, confirm code, user code or token ever enters the ledger: a request is named
by a hash prefix. Requests per person are limited (one pending, :data:`MAX_PER_WINDOW` per
:data:`WINDOW_S`) so the endpoint cannot be used to spam someone's phone; the refusal is
ledgered. The store, clock, ledger writer and sender are passed in.

A person's tokens are indexed per (tenant, person) (:func:`tokens_of`), so ending them (the
operator, or :meth:`SignIns.person_removed`, the registry's removal hook) never reads every
token; dead requests and tokens are deleted later by ``signin_prune``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alertengine.clock import Clock
from alertengine.people.model import Person, person_actor
from alertengine.people.registry import PersonRegistry
from alertengine.stores.base import StateStore

#: Store collections: pending/decided requests (by device-code hash), the confirm-code index,
#: and issued person tokens (by token hash).
REQUESTS = "person_signin"
CONFIRM_INDEX = "person_signin_confirm"
TOKENS = "person_tokens"
#: Per (tenant, person) index of token hashes: one small collection each
#: (:func:`tokens_of`), so revoking a person's tokens reads theirs only, never every token.
TOKENS_OF = "person_tokens_of"

TOKEN_PREFIX = "aep_"  # noqa: S105 - a prefix, not a secret
DEVICE_PREFIX = "aed_"
REQUEST_TTL_S = 600.0
TOKEN_TTL_S = 30 * 86400.0
#: At most this many sign-in requests per (tenant, person) per window.
MAX_PER_WINDOW = 5
WINDOW_S = 600.0
#: Kept after a request ends so a late poll or a reused link is told why, not "unknown".
AFTERLIFE_S = 3600.0
CLIENTS = ("cli", "dashboard", "api")

#: RFC 8628's user-code alphabet: consonants only (no vowels, so no words; no 0/O or 1/I).
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LEN = 8
_USER_CODE = re.compile(rf"^[{USER_CODE_ALPHABET}]{{{USER_CODE_LEN}}}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{20,100}$")

#: Ledger one fact: (tenant, kind, actor, decision, reason, data). Kind ``signin`` for the
#: steps, ``refused`` (decision ``signin refused``) for every refusal, as elsewhere.
Record = Callable[[str, str, str, str, str, Mapping[str, Any]], Awaitable[None]]
#: Send the confirm link to the person's channels; returns the channel kinds that took it.
Send = Callable[[str, Person, str, str], Awaitable[list[str]]]


class SignInError(Exception):
    """A refusal: ``status`` is the HTTP status, the message says why (safe to show)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- pure parts ------------------------------------------------------------------------------


def new_user_code(randbelow: Callable[[int], int] = secrets.randbelow) -> str:
    """Eight letters of :data:`USER_CODE_ALPHABET`, unformatted (20^8 ≈ 2.6e10)."""
    return "".join(
        USER_CODE_ALPHABET[randbelow(len(USER_CODE_ALPHABET))] for _ in range(USER_CODE_LEN)
    )


def format_user_code(code: str) -> str:
    """``BCDFGHJK`` -> ``BCDF-GHJK`` (easier to read aloud and compare)."""
    half = USER_CODE_LEN // 2
    return f"{code[:half]}-{code[half:]}"


def parse_user_code(text: str) -> str | None:
    """What someone typed (any case, dashes or spaces) -> the canonical code, or None."""
    clean = "".join(c for c in text.upper() if c not in " -")
    return clean if _USER_CODE.match(clean) else None


def secret_hash(secret: str) -> str:
    """SHA-256 hex: how device codes, confirm codes and tokens are stored (never in clear)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def hash_ref(secret_or_hash: str) -> str:
    """A short, non-secret name for the ledger and logs: a prefix of the hash."""
    h = secret_or_hash if len(secret_or_hash) == 64 else secret_hash(secret_or_hash)
    return h[:12]


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_shape_ok(token: str) -> bool:
    """Cheap syntax check before any lookup (also bounds what is hashed)."""
    return token.startswith(TOKEN_PREFIX) and bool(_SECRET.match(token[len(TOKEN_PREFIX) :]))


def device_shape_ok(code: str) -> bool:
    return code.startswith(DEVICE_PREFIX) and bool(_SECRET.match(code[len(DEVICE_PREFIX) :]))


def confirm_shape_ok(code: str) -> bool:
    return bool(_SECRET.match(code))


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def tokens_of(tenant_id: str, person_id: str) -> str:
    """The index collection of one person's token hashes (ids are validated shapes)."""
    return f"{TOKENS_OF}:{tenant_id}/{person_id}"


# -- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    """What the requester is told once: keep ``device_code`` secret, show ``user_code``."""

    device_code: str
    user_code: str
    person: str
    person_name: str
    channels: tuple[str, ...]
    expires_at: float
    interval_s: float = 2.0

    def to_json(self) -> dict[str, Any]:
        return {
            "device_code": self.device_code,
            "user_code": format_user_code(self.user_code),
            "person": self.person,
            "person_name": self.person_name,
            "sent_to": list(self.channels),
            "expires_at": self.expires_at,
            "interval_s": self.interval_s,
        }


@dataclass(frozen=True, slots=True)
class PersonToken:
    tenant_id: str
    person: str
    issued_at: float
    expires_at: float
    ref: str
    client: str = "cli"

    @property
    def actor(self) -> str:
        return person_actor(self.person)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A poll's answer: ``status`` pending | confirmed; ``token`` only for the CLI/API."""

    status: str
    tenant_id: str
    person: str
    token: str = ""
    expires_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ConfirmView:
    """What the person's page shows (no secrets): who asks to act as whom, and the code."""

    tenant_id: str
    person: str
    person_name: str
    user_code: str
    requester: str
    client: str
    describe: str
    state: str
    expires_at: float


def _clip(text: str, n: int = 120) -> str:
    return "".join(c for c in text if c.isprintable())[:n]


class SignIns:
    def __init__(
        self,
        store: StateStore,
        clock: Clock,
        people: PersonRegistry,
        record: Record,
        send: Send,
        *,
        request_ttl_s: float = REQUEST_TTL_S,
        token_ttl_s: float = TOKEN_TTL_S,
    ) -> None:
        self.store, self.clock, self.people = store, clock, people
        self.record, self.send = record, send
        self.request_ttl_s, self.token_ttl_s = request_ttl_s, token_ttl_s
        #: ``anonymous(why, write)``: where anonymous refusals go (the refusal budget in a
        #: running server; ``why`` is one of this module's constant reasons).
        self.anonymous: Callable[[str, Callable[[], Awaitable[None]]], Awaitable[None]] | None = (
            None
        )

    async def _ledger(
        self, tenant_id: str, actor: str, decision: str, reason: str, **data: Any
    ) -> None:
        await self.record(tenant_id, "signin", actor, decision, reason, data)

    async def refuse(
        self, tenant_id: str, actor: str, why: str, status: int, **data: Any
    ) -> SignInError:
        """Ledger a refusal (kind ``refused``) and return the error to raise. An anonymous
        one (a made-up link, device code or token: nothing of ours behind it) goes through
        :attr:`anonymous` when set, the refusal budget, so guessing cannot grow the ledger
        without bound (every refusal is still counted in it)."""

        async def write() -> None:
            await self.record(tenant_id, "refused", actor, "signin refused", why, data)

        if actor == "anonymous" and self.anonymous is not None:
            await self.anonymous(why, write)
        else:
            await write()
        return SignInError(status, why)

    # -- 1. the requester asks ----------------------------------------------------------------

    async def request(
        self,
        tenant_id: str,
        person_id: str,
        *,
        requester: str,
        client: str,
        describe: str,
        confirm_url: Callable[[str], str],
        address: str = "",
        user_agent: str = "",
    ) -> Pending:
        """Start a sign-in as ``person_id`` for ``requester`` (``tenant:acme``, ``admin``),
        send the person the link (``confirm_url(code)``) and return what the requester keeps.

        ``describe`` is what the person's page shows about the requester; ``address`` and
        ``user_agent`` go to the ledger as data fields (an auditor needs the address), never
        into the free-text reason.
        """
        if client not in CLIENTS:
            raise SignInError(400, f"client must be one of {', '.join(CLIENTS)}")
        person = await self.people.get(tenant_id, person_id) if person_id else None
        if person is None:
            raise await self.refuse(
                tenant_id,
                requester,
                f"sign-in refused: no person {person_id[:64]!r} in tenant {tenant_id!r}",
                404,
                client=client,
            )
        reachable = [c for c in person.channels if c.kind != "voice"]
        if not reachable:
            raise await self.refuse(
                tenant_id,
                requester,
                f"sign-in refused: {person.actor} has no channel a link can be sent to",
                409,
                person=person.id,
                client=client,
            )
        device_code = DEVICE_PREFIX + secrets.token_urlsafe(32)
        confirm_code = secrets.token_urlsafe(32)
        dh, ch = secret_hash(device_code), secret_hash(confirm_code)
        now = self.clock.now()
        exp = now + self.request_ttl_s
        # One pending request per person (a lease held by the request) ...
        lease = f"signin-pending:{tenant_id}:{person.id}"
        if not await self.store.acquire_lease(lease, dh, self.request_ttl_s):
            raise await self.refuse(
                tenant_id,
                requester,
                f"sign-in refused: a sign-in as {person.actor} is already waiting for them; "
                "wait for it to be answered or to expire",
                429,
                person=person.id,
                client=client,
            )
        # ... and at most MAX_PER_WINDOW per window (slots that expire on their own).
        for slot in range(MAX_PER_WINDOW):
            if await self.store.claim(f"signin-slot:{tenant_id}:{person.id}:{slot}", WINDOW_S):
                break
        else:
            await self.store.release_lease(lease, dh)
            raise await self.refuse(
                tenant_id,
                requester,
                f"sign-in refused: {MAX_PER_WINDOW} sign-ins as {person.actor} in the last "
                f"{WINDOW_S / 60:.0f} minutes; try later",
                429,
                person=person.id,
                client=client,
            )
        user_code = new_user_code()
        doc = {
            "tenant": tenant_id,
            "person": person.id,
            "user_code": user_code,
            "confirm_hash": ch,
            "requester": requester,
            "describe": _clip(describe),
            "client": client,
            "created_at": now,
            "expires_at": exp,
            "state": "pending",
        }
        await self.store.put(REQUESTS, dh, doc)
        await self.store.put(CONFIRM_INDEX, ch, {"device_hash": dh})
        await self._ledger(
            tenant_id,
            requester,
            "requested",
            f"{requester} asks to sign in as {person.actor} from {client}; a link goes to "
            f"{person.actor}'s channels",
            person=person.id,
            request=hash_ref(dh),
            client=client,
            address=_clip(address, 64),
            user_agent=_clip(user_agent, 120),
            expires_at=exp,
        )
        sent = await self.send(
            tenant_id, person, confirm_url(confirm_code), format_user_code(user_code)
        )
        await self.store.put(REQUESTS, dh, {**doc, "sent_to": sent})
        return Pending(device_code, user_code, person.id, person.name, tuple(sent), exp)

    # -- 2. the person answers ----------------------------------------------------------------

    async def _by_confirm(self, code: str) -> tuple[str, dict[str, Any]] | None:
        if not confirm_shape_ok(code):
            return None
        ch = secret_hash(code)
        index = await self.store.get(CONFIRM_INDEX, ch)
        if index is None:
            return None
        dh = str(index.get("device_hash", ""))
        doc = await self.store.get(REQUESTS, dh)
        if doc is None or not same_hash(str(doc.get("confirm_hash", "")), ch):
            return None
        return dh, doc

    def state_of(self, doc: Mapping[str, Any]) -> str:
        state = str(doc.get("state", "pending"))
        # A confirmation not collected in time expires too: the credential is the requester's
        # only while the request lives.
        if state in ("pending", "confirmed") and float(doc["expires_at"]) <= self.clock.now():
            return "expired"
        return state

    async def view(self, code: str) -> ConfirmView | None:
        """For the page (GET): what is being asked. Changes nothing."""
        found = await self._by_confirm(code)
        if found is None:
            return None
        _, doc = found
        person = await self.people.get(str(doc["tenant"]), str(doc["person"]))
        return ConfirmView(
            str(doc["tenant"]),
            str(doc["person"]),
            person.name if person else str(doc["person"]),
            format_user_code(str(doc["user_code"])),
            str(doc["requester"]),
            str(doc["client"]),
            str(doc.get("describe", "")),
            self.state_of(doc),
            float(doc["expires_at"]),
        )

    async def answer(self, code: str, *, confirm: bool, via: str = "web") -> ConfirmView:
        """The person's POST: confirm (or deny) the sign-in. Single use; refusals ledgered."""
        found = await self._by_confirm(code)
        if found is None:
            raise await self.refuse(
                "_system", "anonymous", "sign-in link refused: unknown or forged link", 404, via=via
            )
        dh, doc = found
        tenant, pid = str(doc["tenant"]), str(doc["person"])
        actor = person_actor(pid)
        ref = hash_ref(dh)
        state = self.state_of(doc)
        if state == "expired":
            await self._expire(dh, doc)
            raise await self.refuse(
                tenant, actor, "sign-in link refused: the request expired", 410, request=ref
            )
        # Single use: of two racing answers exactly one wins the claim.
        if state != "pending" or not await self.store.claim(
            f"signin-answered:{dh}", self.request_ttl_s + AFTERLIFE_S
        ):
            raise await self.refuse(
                tenant,
                actor,
                f"sign-in link refused: already used (the request is {state})",
                409,
                request=ref,
            )
        if await self.people.get(tenant, pid) is None:
            raise await self.refuse(
                tenant, actor, "sign-in link refused: the person was removed", 403, request=ref
            )
        new_state = "confirmed" if confirm else "denied"
        doc = {**doc, "state": new_state, "answered_at": self.clock.now()}
        await self.store.put(REQUESTS, dh, doc)
        if not confirm:
            await self.store.release_lease(f"signin-pending:{tenant}:{pid}", dh)
        await self._ledger(
            tenant,
            actor,
            new_state,
            f"{actor} {new_state} the sign-in of {doc['requester']} from {doc['client']} "
            f"(via {via})",
            person=pid,
            request=ref,
            client=str(doc["client"]),
            via=via,
        )
        view = await self.view(code)
        assert view is not None
        return view

    async def _expire(self, dh: str, doc: Mapping[str, Any]) -> None:
        """Mark an expired request once (first one to notice ledgers it)."""
        tenant, pid = str(doc["tenant"]), str(doc["person"])
        if await self.store.claim(f"signin-expired:{dh}", AFTERLIFE_S):
            await self.store.put(REQUESTS, dh, {**doc, "state": "expired"})
            await self.store.release_lease(f"signin-pending:{tenant}:{pid}", dh)
            await self._ledger(
                tenant,
                "orchestrator",
                "expired",
                f"the sign-in as {person_actor(pid)} was not answered in time",
                person=pid,
                request=hash_ref(dh),
            )

    # -- 3. the requester polls ---------------------------------------------------------------

    async def poll(self, device_code: str, tenant_id: str, requester: str) -> Outcome:
        """``pending`` until the person answers; then the credential, exactly once.

        ``tenant_id`` is the requester's (key or session): another tenant's device code is
        refused (403) and ledgered under the tenant it belongs to."""
        dh = secret_hash(device_code) if device_shape_ok(device_code) else ""
        doc = await self.store.get(REQUESTS, dh) if dh else None
        if doc is None:
            raise await self.refuse(
                tenant_id, requester, "sign-in poll refused: unknown device code", 404
            )
        tenant, pid = str(doc["tenant"]), str(doc["person"])
        ref = hash_ref(dh)
        if not hmac.compare_digest(tenant.encode(), tenant_id.encode()):
            raise await self.refuse(
                tenant,
                requester,
                f"sign-in poll refused: {requester} may not use tenant {tenant!r}'s sign-in",
                403,
                request=ref,
            )
        state = self.state_of(doc)
        if state == "pending":
            return Outcome("pending", tenant, pid)
        if state == "expired":
            await self._expire(dh, doc)
            raise await self.refuse(
                tenant, requester, "sign-in refused: the request expired unanswered", 410,
                request=ref,
            )  # fmt: skip
        if state == "denied":
            raise await self.refuse(
                tenant,
                requester,
                f"sign-in refused: {person_actor(pid)} said it was not them",
                403,
                request=ref,
            )
        if state != "confirmed" or not await self.store.claim(
            f"signin-issued:{dh}", self.request_ttl_s + AFTERLIFE_S
        ):
            raise await self.refuse(
                tenant,
                requester,
                "sign-in poll refused: the credential was already issued (device code reused)",
                409,
                request=ref,
            )
        await self.store.put(REQUESTS, dh, {**doc, "state": "issued"})
        await self.store.release_lease(f"signin-pending:{tenant}:{pid}", dh)
        if str(doc["client"]) == "dashboard":
            await self._ledger(
                tenant,
                "orchestrator",
                "session signed in",
                f"the dashboard session of {doc['requester']} now acts as {person_actor(pid)}",
                person=pid,
                request=ref,
                client="dashboard",
            )
            return Outcome("confirmed", tenant, pid)
        token, exp = await self._issue(tenant, pid, ref, str(doc["client"]))
        return Outcome("confirmed", tenant, pid, token, exp)

    # -- person tokens -------------------------------------------------------------------------

    async def _issue(
        self, tenant_id: str, pid: str, request_ref: str, client: str
    ) -> tuple[str, float]:
        token = new_token()
        th = secret_hash(token)
        now = self.clock.now()
        exp = now + self.token_ttl_s
        await self.store.put(
            TOKENS,
            th,
            {
                "tenant": tenant_id,
                "person": pid,
                "issued_at": now,
                "expires_at": exp,
                "client": client,
                "revoked": False,
            },
        )
        await self.store.put(tokens_of(tenant_id, pid), th, {"expires_at": exp})
        await self._ledger(
            tenant_id,
            "orchestrator",
            "token issued",
            f"a person token for {person_actor(pid)} ({client}), valid "
            f"{self.token_ttl_s / 86400:.0f} days",
            person=pid,
            request=request_ref,
            token=hash_ref(th),
            expires_at=exp,
        )
        return token, exp

    async def verify(self, token: str, *, path: str = "") -> PersonToken:
        """The person a token names, or :class:`SignInError` (401), ledgered."""
        th = secret_hash(token) if token_shape_ok(token) else ""
        doc = await self.store.get(TOKENS, th) if th else None
        if doc is None:
            raise await self.refuse(
                "_system", "anonymous", "person token refused: unknown or forged", 401, path=path
            )
        tenant, pid = str(doc["tenant"]), str(doc["person"])
        ref = hash_ref(th)
        if doc.get("revoked"):
            raise await self.refuse(
                tenant,
                person_actor(pid),
                "person token refused: revoked; sign in again (alertengine person login)",
                401,
                token=ref,
                path=path,
            )
        if float(doc["expires_at"]) <= self.clock.now():
            raise await self.refuse(
                tenant,
                person_actor(pid),
                "person token refused: expired; sign in again (alertengine person login)",
                401,
                token=ref,
                path=path,
            )
        if await self.people.get(tenant, pid) is None:
            raise await self.refuse(
                tenant,
                person_actor(pid),
                "person token refused: the person is no longer in the tenant",
                401,
                token=ref,
                path=path,
            )
        return PersonToken(
            tenant,
            pid,
            float(doc["issued_at"]),
            float(doc["expires_at"]),
            ref,
            str(doc.get("client", "cli")),
        )

    async def revoke(self, token: str, *, actor: str = "") -> PersonToken:
        """Revoke the presented token (the person logs out). Ledgered."""
        who = await self.verify(token, path="revoke")
        th = secret_hash(token)
        doc = await self.store.get(TOKENS, th) or {}
        await self.store.put(TOKENS, th, {**doc, "revoked": True, "revoked_at": self.clock.now()})
        await self._ledger(
            who.tenant_id,
            actor or who.actor,
            "token revoked",
            f"the person token {who.ref} of {who.actor} was revoked",
            person=who.person,
            token=who.ref,
        )
        return who

    async def _revoke_live(self, tenant_id: str, person_id: str) -> list[str]:
        """Mark every live token of the person revoked; their hashes. Reads the person's
        index only (:func:`tokens_of`)."""
        now = self.clock.now()
        revoked: list[str] = []
        for th in await self.store.list(tokens_of(tenant_id, person_id)):
            doc = await self.store.get(TOKENS, th)
            if (
                doc is None
                or doc.get("tenant") != tenant_id
                or doc.get("person") != person_id
                or doc.get("revoked")
                or float(doc.get("expires_at", 0)) <= now
            ):
                continue
            await self.store.put(TOKENS, th, {**doc, "revoked": True, "revoked_at": now})
            revoked.append(th)
        return revoked

    async def revoke_all(self, tenant_id: str, person_id: str, *, actor: str) -> int:
        """Revoke every live token of a person (the tenant's operator does this). Ledgered."""
        revoked = await self._revoke_live(tenant_id, person_id)
        for th in revoked:
            await self._ledger(
                tenant_id,
                actor,
                "token revoked",
                f"the person token {hash_ref(th)} of {person_actor(person_id)} was revoked "
                f"by {actor}",
                person=person_id,
                token=hash_ref(th),
            )
        return len(revoked)

    async def person_removed(self, tenant_id: str, person_id: str, actor: str) -> int:
        """The registry's removal hook: end the person's tokens at once, ledgered once with
        the count (nothing is written when they had none). :meth:`verify` and the dashboard
        session also check membership on every use, so a hook that failed still locks out."""
        revoked = await self._revoke_live(tenant_id, person_id)
        if revoked:
            await self._ledger(
                tenant_id,
                actor,
                "tokens revoked",
                f"tokens revoked: person removed ({len(revoked)} of {person_actor(person_id)})",
                person=person_id,
                count=len(revoked),
                tokens=[hash_ref(th) for th in revoked],
            )
        return len(revoked)


def channel_kinds(person: Person) -> Sequence[str]:
    """The kinds a sign-in link can go to (a call cannot carry a link)."""
    return [c.kind for c in person.channels if c.kind != "voice"]
