"""The authorization service: issue approval links, preview them, redeem them once.

Nothing executes without a named human: an incident moves VALIDATED -> AUTHORIZED only here,
through :meth:`Authorizer.confirm`, with the approver's identity as the actor and the
approval entry appended atomically with the transition. A token is single use (its ``jti``
is claimed in the :class:`StateStore` before the transition), every refusal is ledgered,
and previews change nothing. Execution happens elsewhere: ``on_authorized`` is called so the
orchestrator can wake its executor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from alertengine.authorize.tokens import (
    Claims,
    Problem,
    TokenError,
    TokenSigner,
    peek,
    token_fingerprint,
)
from alertengine.clock import Clock
from alertengine.engine import Change, IncidentEngine, TransitionRefused
from alertengine.incidents import IncidentState, Stage
from alertengine.people import Person, PersonRegistry, parse_person_actor
from alertengine.policy import should_expire
from alertengine.refusals.gate import RefusalGate
from alertengine.stores.base import StateStore
from alertengine.tenants import (
    SYSTEM_TENANT,
    Tenant,
    TenantRegistry,
    engineer_identity,
    parse_identity,
)

if TYPE_CHECKING:
    from alertengine.passkeys.service import AssertionCheck, Passkeys

log = logging.getLogger(__name__)

#: Claims outlive the token by this much, so a used token can never be redeemed again.
CLAIM_MARGIN_S = 3600.0
#: Links by jti (no token), so a chat button can carry just the jti (Telegram: 64 bytes).
LINKS = "approval_links"
DEFAULT_ACTION = "recover"
_MAX_ECHO = 120

_MESSAGES: dict[Problem, str] = {
    Problem.MALFORMED: "This link is not valid.",
    Problem.FORGED: "This link is not valid.",
    Problem.ALGORITHM: "This link is not valid.",
    Problem.EXPIRED: "This link has expired.",
    Problem.USED: "This approval was already used.",
    Problem.WRONG_TENANT: "This link does not belong to this tenant.",
    Problem.NOT_APPROVER: "You are not an approver for this tenant.",
    Problem.SELF_APPROVAL: "The author of the last deploy may not be the only approver.",
    Problem.ALREADY_APPROVED: "You have already approved this incident.",
    Problem.NOT_AWAITING: "This incident is not awaiting approval.",
    Problem.PASSKEY_REQUIRED: "This approval needs your passkey, on the approval page.",
    Problem.PASSKEY_REFUSED: "Your passkey did not prove this approval.",
}


def problem_message(problem: Problem) -> str:
    return _MESSAGES[problem]


class AuthorizationError(Exception):
    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message


@dataclass(frozen=True, slots=True)
class IssuedLink:
    token: str
    url: str
    jti: str
    expires_at: float
    recipient: str


@dataclass(frozen=True, slots=True)
class Preview:
    """What a link would do. ``problem`` set means the page shows why it cannot be used."""

    ok: bool
    problem: Problem | None = None
    message: str = ""
    tenant_id: str = ""
    incident_id: str = ""
    service: str = ""
    stage: str = ""
    action: str = ""
    recipient: str = ""
    detection: Mapping[str, Any] = field(default_factory=dict)
    diagnosis: Mapping[str, Any] | None = None
    approvals: tuple[str, ...] = ()
    approvals_required: int = 1
    expires_at: float | None = None
    opened_at: float | None = None
    passkey_required: bool = False

    @property
    def status(self) -> int:
        return 200 if self.problem is None else self.problem.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problem": str(self.problem) if self.problem else None,
            "message": self.message,
            "tenant_id": self.tenant_id,
            "incident_id": self.incident_id,
            "service": self.service,
            "stage": self.stage,
            "action": self.action,
            "recipient": self.recipient,
            "detection": dict(self.detection),
            "diagnosis": dict(self.diagnosis) if self.diagnosis is not None else None,
            "approvals": list(self.approvals),
            "approvals_required": self.approvals_required,
            "expires_at": self.expires_at,
            "opened_at": self.opened_at,
            "passkey_required": self.passkey_required,
        }


@dataclass(frozen=True, slots=True)
class ConfirmResult:
    ok: bool
    status: int
    message: str
    problem: Problem | None = None
    tenant_id: str = ""
    incident_id: str = ""
    stage: str = ""
    authorized: bool = False
    approvals: int = 0
    approvals_required: int = 1
    approver: str = ""

    @property
    def waiting_for(self) -> int:
        return 0 if self.authorized else max(0, self.approvals_required - self.approvals)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "message": self.message,
            "problem": str(self.problem) if self.problem else None,
            "tenant_id": self.tenant_id,
            "incident_id": self.incident_id,
            "stage": self.stage,
            "authorized": self.authorized,
            "approvals": self.approvals,
            "approvals_required": self.approvals_required,
            "waiting_for": self.waiting_for,
            "approver": self.approver,
        }


@dataclass(frozen=True, slots=True)
class ExpiryOutcome:
    incident_id: str
    action: Literal["expired", "reproposed"]
    jti: str = ""


def deployer_identities(state: IncidentState) -> set[str]:
    """Who deployed last, as far as the incident's data says (optional): identities or ids.

    Looked up in the diagnosis (``deployer``, ``last_deployer``, ``commit.author_username``,
    ``commit.author``, ``commits[0]…``) and the detection snapshot (``deployer``).
    """
    found: set[str] = set()

    def take(v: Any) -> None:
        if isinstance(v, str) and v.strip():
            found.add(v.strip().lower())

    diag: Mapping[str, Any] = state.diagnosis or {}
    for src in (diag, state.detection):
        take(src.get("deployer"))
        take(src.get("last_deployer"))
    commits: list[Any] = []
    if isinstance(diag.get("commit"), Mapping):
        commits.append(diag["commit"])
    if isinstance(diag.get("commits"), list) and diag["commits"]:
        commits.append(diag["commits"][0])
    for c in commits:
        if isinstance(c, Mapping):
            take(c.get("author_username"))
            take(c.get("author"))
    return found


@dataclass(frozen=True, slots=True)
class Approver:
    """Who an approval is from: ``actor`` is ``person:<id>`` (or, for an approver listed only
    in a tenant's legacy per-channel list, ``engineer:<channel>:<id>``)."""

    actor: str
    person: Person | None = None

    def author_names(self) -> set[str]:
        if self.person is not None:
            return self.person.author_names()
        parsed = parse_identity(self.actor)
        return {self.actor.lower()} | ({parsed[1].lower()} if parsed else set())


def _is_deployer(approver: Approver, deployers: set[str]) -> bool:
    return bool(deployers) and bool(approver.author_names() & deployers)


def _round(state: IncidentState) -> int:
    """Which round of approval this is (a fresh VALIDATED starts a new one)."""
    return sum(1 for h in state.history if h.stage is Stage.VALIDATED)


def _echo(v: Any) -> str:
    return str(v)[:_MAX_ECHO] if v is not None else ""


class Authorizer:
    def __init__(
        self,
        engine: IncidentEngine,
        store: StateStore,
        signer: TokenSigner,
        tenants: TenantRegistry,
        clock: Clock,
        base_url: str,
        *,
        on_authorized: Callable[[str, str], None] | None = None,
        max_concurrent: int = 32,
        people: PersonRegistry | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.signer = signer
        self.tenants = tenants
        self.clock = clock
        self.base_url = base_url.rstrip("/")
        self.on_authorized = on_authorized
        self.people = people or PersonRegistry(store)
        # Backpressure: a burst of confirms queues here instead of swamping the stores.
        self._gate = asyncio.Semaphore(max_concurrent)
        #: Checks WebAuthn assertions where the policy says ``require_passkey``.
        self.passkeys: Passkeys | None = None
        #: Where refusals of tokens nobody signed go (the orchestrator's budget, or all).
        self.refusals = RefusalGate.passthrough(engine.record)

    # -- who approves ------------------------------------------------------------------------

    async def approver(self, tenant: Tenant, identity: str) -> Approver | None:
        """The person ``identity`` names in ``tenant``, or None. ``person:<id>`` names a person
        of the registry; ``engineer:<channel>:<id>`` (a chat user, an older link) is mapped to
        the person that channel address belongs to, so one human is one approver whatever
        channel they use. A legacy per-channel approver with no person stays its own actor."""
        pid = parse_person_actor(identity)
        if pid is not None:
            person = await self.people.get(tenant.tenant_id, pid)
            return Approver(person.actor, person) if person is not None else None
        parsed = parse_identity(identity)
        if parsed is None:
            return None
        person = await self.people.find_by_channel(tenant.tenant_id, *parsed)
        if person is not None:
            return Approver(person.actor, person)
        return Approver(identity) if tenant.is_approver(identity) else None

    async def _approvers(self, tenant: Tenant, actors: tuple[str, ...]) -> list[Approver]:
        found = [await self.approver(tenant, a) for a in actors]
        return [f if f is not None else Approver(a) for f, a in zip(found, actors, strict=True)]

    # -- issuing ----------------------------------------------------------------------------

    async def issue(
        self, tenant_id: str, incident_id: str, recipient_identity: str, *, via: str = ""
    ) -> IssuedLink:
        """A link for one approver (a person) sent through channel ``via``. Refused unless the
        incident is VALIDATED and the recipient is one of the tenant's people (or a legacy
        approver). Ledgered (jti and a short hash, never the token)."""
        await self.engine.refresh(tenant_id)
        state = await self.engine.get(tenant_id, incident_id)
        if state is None or state.stage is not Stage.VALIDATED:
            stage = state.stage if state else "missing"
            raise AuthorizationError(
                Problem.NOT_AWAITING, f"incident {incident_id} is {stage}, not VALIDATED"
            )
        tenant = await self.tenants.get(tenant_id)
        who = await self.approver(tenant, recipient_identity) if tenant is not None else None
        if who is None:
            raise AuthorizationError(
                Problem.NOT_APPROVER,
                f"{recipient_identity!r} is not an approver of tenant {tenant_id!r}",
            )
        recipient_identity = who.actor
        policy = self.engine.policy_for(tenant_id)
        token, claims = self.signer.issue(
            tenant=tenant_id,
            incident=incident_id,
            action=state.action or DEFAULT_ACTION,
            approver=recipient_identity,
            ttl_s=policy.token_ttl_s,
            via=via,
        )
        await self.store.put(
            LINKS,
            claims.jti,
            {
                "tenant": claims.tenant,
                "incident": claims.incident,
                "action": claims.action,
                "approver": claims.approver,
                "iat": claims.iat,
                "exp": claims.exp,
                "via": via,
            },
        )
        await self.engine.record(
            tenant_id,
            incident_id,
            kind="token",
            actor="orchestrator",
            decision="issued",
            reason=f"approval link issued for {recipient_identity}"
            + (f" via {via}" if via else ""),
            data={
                "jti": claims.jti,
                "recipient": recipient_identity,
                **({"via": via} if via else {}),
                "issued_at": claims.iat,
                "expires_at": claims.exp,
                "token_sha256_prefix": token_fingerprint(token),
            },
        )
        return IssuedLink(
            token=token,
            url=f"{self.base_url}/action/recover?token={token}",
            jti=claims.jti,
            expires_at=claims.exp,
            recipient=recipient_identity,
        )

    # -- previewing (no side effects) -------------------------------------------------------

    async def preview(self, token: str) -> Preview:
        try:
            claims = self.signer.decode(token)
        except TokenError as err:
            c = err.claims
            if c is None:
                return Preview(False, err.problem, problem_message(err.problem))
            return await self._preview_of(c, err.problem)
        return await self._preview_of(claims, None)

    async def _preview_of(self, c: Claims, problem: Problem | None) -> Preview:
        tenant = await self.tenants.get(c.tenant)
        state = await self.engine.get(c.tenant, c.incident) if tenant is not None else None
        if tenant is None or state is None:
            p = problem or Problem.WRONG_TENANT
            return Preview(False, p, problem_message(p))
        if problem is None and await self.store.claimed(_claim_key(c.jti)) is not None:
            problem = Problem.USED
        who = await self.approver(tenant, c.approver) if problem is None else None
        if problem is None and who is None:
            problem = Problem.NOT_APPROVER
        if problem is None and state.stage is not Stage.VALIDATED:
            problem = Problem.NOT_AWAITING
        if problem is None and who is not None and who.actor in state.approvers:
            problem = Problem.ALREADY_APPROVED
        policy = self.engine.policy_for(c.tenant)
        return Preview(
            ok=problem is None,
            problem=problem,
            message=problem_message(problem) if problem else "Ready for your approval.",
            tenant_id=c.tenant,
            incident_id=c.incident,
            service=state.service,
            stage=str(state.stage),
            action=c.action,
            recipient=c.approver,
            detection=state.detection,
            diagnosis=state.diagnosis,
            approvals=state.approvers,
            approvals_required=state.approvals_required,
            expires_at=c.exp,
            opened_at=state.opened_at,
            passkey_required=policy.requires_passkey(c.action),
        )

    # -- confirming -------------------------------------------------------------------------

    async def confirm(
        self,
        token: str,
        *,
        via: str = "web",
        expected_tenant: str | None = None,
        assertion: Any = None,
    ) -> ConfirmResult:
        """Redeem a token once. Every refusal is ledgered; the result carries the HTTP status.
        ``assertion``: the WebAuthn assertion (JSON) a ``require_passkey`` policy asks for."""
        async with self._gate:
            return await self._confirm(token, via, expected_tenant, assertion)

    async def _confirm(
        self, token: str, via: str, expected_tenant: str | None, assertion: Any = None
    ) -> ConfirmResult:
        try:
            claims = self.signer.decode(token)
        except TokenError as err:
            return await self._refuse_token(token, err, via, keyed=expected_tenant is not None)
        if expected_tenant is not None and expected_tenant != claims.tenant:
            return await self._refuse(
                claims,
                Problem.WRONG_TENANT,
                f"caller of tenant {_echo(expected_tenant)!r} used a link of another tenant",
                via,
                ledger_tenant=expected_tenant
                if await self.tenants.exists(expected_tenant)
                else None,
            )
        return await self._approve(
            claims, claims.approver, via, token_sha=token_fingerprint(token), assertion=assertion
        )

    async def confirm_identity(
        self, channel: str, user_id: str, callback_data: str
    ) -> ConfirmResult:
        """In-chat approval (e.g. a Telegram button): ``callback_data`` is ``ae:<jti>`` (chat
        buttons hold 64 bytes) or a whole token. The chat user must be the link's recipient or
        on the tenant's approver list for ``channel``."""
        async with self._gate:
            return await self._confirm_identity(channel, user_id, callback_data)

    async def approve_in_chat(
        self, tenant_id: str, incident_id: str, jti: str, actor: str, via: str
    ) -> str:
        """An Approve pressed in a chat (WhatsApp, Slack) by ``actor``, a person the channel
        resolved; the answer to send back. A chat button cannot carry a passkey: under
        ``require_passkey`` the answer is a fresh approval page for the person's device.
        Otherwise it is :meth:`confirm_as`, the path of a Telegram button."""
        state = await self.engine.get(tenant_id, incident_id)
        action = (state.action if state else "") or DEFAULT_ACTION
        if state is not None and self.engine.policy_for(tenant_id).requires_passkey(action):
            if state.stage is not Stage.VALIDATED:
                return "This incident is not awaiting approval."
            issued = await self.issue(tenant_id, incident_id, actor, via=via)
            return f"This approval needs your passkey. Approve on: {issued.url}"
        return (await self.confirm_as(actor, via, f"ae:{jti}")).message

    async def confirm_as(self, actor: str, via: str, callback_data: str) -> ConfirmResult:
        """As :meth:`confirm_identity`, for a sender the channel already resolved to a person
        (``person:<id>``): a WhatsApp number must never become an actor in the ledger."""
        async with self._gate:
            return await self._confirm_identity(via, "", callback_data, actor=actor)

    async def _confirm_identity(
        self, channel: str, user_id: str, callback_data: str, *, actor: str = ""
    ) -> ConfirmResult:
        identity = actor or engineer_identity(channel, user_id)
        data = callback_data.strip()
        if data.count(".") == 2:
            try:
                claims = self.signer.decode(data)
            except TokenError as err:
                return await self._refuse_token(
                    data, err, channel, actor=identity, keyed=bool(actor)
                )
        else:
            jti = data.removeprefix("ae:")
            doc = await self.store.get(LINKS, jti) if jti and len(jti) <= 64 else None
            if doc is None:
                return await self._refuse_token(
                    data,
                    TokenError(Problem.MALFORMED, "unknown approval button"),
                    channel,
                    actor=identity,
                    keyed=bool(actor),  # a person the channel resolved: their own entry
                )
            claims = Claims(
                tenant=str(doc["tenant"]),
                incident=str(doc["incident"]),
                action=str(doc["action"]),
                approver=str(doc["approver"]),
                jti=jti,
                iat=float(doc["iat"]),
                exp=float(doc["exp"]),
                via=str(doc.get("via", "")),
            )
            if self.clock.now() >= claims.exp:
                return await self._refuse(claims, Problem.EXPIRED, "link expired", channel)
        return await self._approve(claims, identity, channel, token_sha="")

    async def _approve(
        self, c: Claims, identity: str, via: str, token_sha: str, assertion: Any = None
    ) -> ConfirmResult:
        tenant = await self.tenants.get(c.tenant)
        if tenant is None:
            return await self._refuse(c, Problem.WRONG_TENANT, "tenant does not exist", via)
        await self.engine.refresh(c.tenant)
        state = await self.engine.get(c.tenant, c.incident)
        if state is None:
            return await self._refuse(
                c, Problem.WRONG_TENANT, "incident does not belong to the token's tenant", via
            )
        if await self.store.claimed(_claim_key(c.jti)) is not None:
            if parse_person_actor(identity) is None:  # a chat user: name their person
                found = await self.approver(tenant, identity)
                identity = found.actor if found is not None else identity
            return await self._refuse(c, Problem.USED, "token already used", via, actor=identity)
        who = await self.approver(tenant, identity)
        if who is not None:
            identity = who.actor  # the person, whichever channel they came through
        if who is None:
            return await self._refuse(
                c,
                Problem.NOT_APPROVER,
                f"{_echo(identity)} is not an approver",
                via,
                actor=identity,
            )
        if state.stage is not Stage.VALIDATED:
            return await self._refuse(
                c, Problem.NOT_AWAITING, f"incident is {state.stage}", via, actor=identity
            )
        earlier = await self._approvers(tenant, state.approvers)
        # An approval ledgered before people existed (engineer:<channel>:<id>) is mapped to
        # its person too, so an upgrade mid-incident cannot count one human twice.
        if identity in state.approvers or any(a.actor == identity for a in earlier):
            return await self._refuse(
                c,
                Problem.ALREADY_APPROVED,
                f"{identity} already approved (this attempt came via {via})",
                via,
                actor=identity,
            )
        policy = self.engine.policy_for(c.tenant)
        if policy.forbid_deployer_sole_approval:
            deployers = deployer_identities(state)
            everyone = [*earlier, who]
            if deployers and all(_is_deployer(a, deployers) for a in everyone):
                return await self._refuse(
                    c,
                    Problem.SELF_APPROVAL,
                    "the last deployer may not be the only approver",
                    via,
                    actor=identity,
                )
        check: AssertionCheck | None = None
        if policy.requires_passkey(c.action):
            # Only the person's device can make this approval: no assertion, no approval,
            # whatever the channel (an in-chat button cannot carry one).
            if self.passkeys is None or assertion is None:
                return await self._refuse(
                    c, Problem.PASSKEY_REQUIRED, "no passkey assertion", via, actor=identity
                )
            check = await self.passkeys.check(c, identity, policy.version, assertion)
            if not check.ok:
                return await self._refuse_passkey(c, check, via, identity)
        ttl = max(0.0, c.exp - self.clock.now()) + CLAIM_MARGIN_S
        if not await self.store.claim(_claim_key(c.jti), ttl, value=identity):
            return await self._refuse(c, Problem.USED, "token already used", via, actor=identity)
        # One person, one approval per round, even through two channels at the same instant:
        # the first claim wins, the other attempt is refused (and ledgered).
        once = f"approved:{c.tenant}:{c.incident}:{_round(state)}:{identity}"
        if not await self.store.claim(once, ttl, value=c.jti):
            return await self._refuse(
                c,
                Problem.ALREADY_APPROVED,
                f"{identity} already approved (this attempt came via {via})",
                via,
                actor=identity,
            )
        proof: Mapping[str, Any] | None = None
        if check is not None and self.passkeys is not None:
            # After the link's claim, so a double submit is "used", not a clone; a counter
            # value already spent by another copy of the authenticator is refused here.
            check = await self.passkeys.accept(check)
            if not check.ok:
                return await self._refuse_passkey(c, check, via, identity)
            proof = check.proof
        return await self._record_approval(c, state, identity, via, token_sha, proof)

    async def _refuse_passkey(
        self, c: Claims, check: AssertionCheck, via: str, identity: str
    ) -> ConfirmResult:
        return await self._refuse(
            c,
            Problem.PASSKEY_REFUSED,
            f"passkey {check.problem}: {check.message}",
            via,
            actor=identity,
            extra=check.ledger_data(),
        )

    async def _record_approval(
        self,
        c: Claims,
        state: IncidentState,
        identity: str,
        via: str,
        token_sha: str,
        proof: Mapping[str, Any] | None = None,
    ) -> ConfirmResult:
        data: dict[str, Any] = {"jti": c.jti, "via": via, "recipient": c.approver}
        if c.via and c.via != via:
            data["link_sent_via"] = c.via
        if token_sha:
            data["token_sha256_prefix"] = token_sha
        if proof is not None:
            data["passkey"] = dict(proof)
        required = state.approvals_required
        if len({*state.approvers, identity}) >= required:
            return await self._authorize(c, identity, via, data, with_approval=True)
        await self.engine.record(
            c.tenant,
            c.incident,
            kind="approval",
            actor=identity,
            decision="approve",
            reason=f"approval via {via}",
            data=data,
            stage=Stage.VALIDATED,
        )
        # Another approver may have approved at the same time: whoever sees the quorum
        # complete moves the incident (a loser's attempt is refused and ledgered).
        await self.engine.refresh(c.tenant)
        now = await self.engine.get(c.tenant, c.incident)
        if now is not None and now.stage is Stage.VALIDATED and len(now.approvers) >= required:
            return await self._authorize(c, identity, via, data, with_approval=False)
        count = len(now.approvers) if now is not None else 1
        return ConfirmResult(
            ok=True,
            status=202,
            message=f"Approval recorded: waiting for {max(0, required - count)} more approver(s).",
            tenant_id=c.tenant,
            incident_id=c.incident,
            stage=str(now.stage) if now else "",
            authorized=False,
            approvals=count,
            approvals_required=required,
            approver=identity,
        )

    async def _authorize(
        self, c: Claims, identity: str, via: str, data: Mapping[str, Any], *, with_approval: bool
    ) -> ConfirmResult:
        also = (
            [
                self.engine.draft(
                    c.tenant,
                    c.incident,
                    kind="approval",
                    actor=identity,
                    decision="approve",
                    reason=f"approval via {via}",
                    data=data,
                    stage=Stage.VALIDATED,
                )
            ]
            if with_approval
            else []
        )
        try:
            state = await self.engine.transition(
                c.tenant,
                c.incident,
                Change(
                    Stage.AUTHORIZED,
                    actor=identity,
                    reason=f"approved by {identity} via {via}",
                    decision="approve",
                    data={"jti": c.jti, "action": c.action},
                ),
                expect_stage=Stage.VALIDATED,
                also=also,
            )
        except TransitionRefused as refused:  # ledgered by the engine
            return ConfirmResult(
                ok=False,
                status=Problem.NOT_AWAITING.status,
                message=problem_message(Problem.NOT_AWAITING),
                problem=Problem.NOT_AWAITING,
                tenant_id=c.tenant,
                incident_id=c.incident,
                approver=identity,
                stage=refused.reason[:_MAX_ECHO],
            )
        if self.on_authorized is not None:
            try:
                self.on_authorized(c.tenant, c.incident)
            except Exception:  # the approval stands; the executor's resume() picks it up
                log.exception("on_authorized hook failed for %s/%s", c.tenant, c.incident)
        return ConfirmResult(
            ok=True,
            status=200,
            message="Approved. The recovery action is being executed.",
            tenant_id=c.tenant,
            incident_id=c.incident,
            stage=str(state.stage),
            authorized=True,
            approvals=len(state.approvers),
            approvals_required=state.approvals_required,
            approver=identity,
        )

    # -- refusals ---------------------------------------------------------------------------

    async def _refuse_token(
        self, token: str, err: TokenError, via: str, actor: str | None = None, keyed: bool = False
    ) -> ConfirmResult:
        if err.claims is not None:  # verified but unusable (expired)
            return await self._refuse(err.claims, err.problem, err.message, via, actor=actor)
        # Nobody signed it (and no API key came with it): anyone can send these, so they go
        # through the refusal budget (the first few per window on their own, then counted).
        record = self.engine.record if keyed else self.refusals.recorder(str(err.problem))
        raw = err.unverified or peek(token)
        claimed_tenant = _echo(raw.get("tenant"))
        exists = bool(claimed_tenant) and await self.tenants.exists(claimed_tenant)
        tenant_id = claimed_tenant if exists else SYSTEM_TENANT
        incident_id: str | None = None
        claimed_incident = _echo(raw.get("incident"))
        if exists and claimed_incident:
            if await self.engine.get(tenant_id, claimed_incident) is not None:
                incident_id = claimed_incident
        await record(
            tenant_id,
            incident_id,
            kind="refused",
            actor=actor or "anonymous",
            decision="refused",
            reason=f"{err.problem}: {err.message}",
            data={
                "problem": str(err.problem),
                "via": via,
                "jti": _echo(raw.get("jti")),
                "claimed_tenant": claimed_tenant,
                "claimed_incident": claimed_incident,
                "claimed_approver": _echo(raw.get("approver")),
                "token_sha256_prefix": token_fingerprint(token),
            },
            stage=Stage.AUTHORIZED if incident_id else None,
        )
        return ConfirmResult(
            ok=False, status=err.status, message=problem_message(err.problem), problem=err.problem
        )

    async def _refuse(
        self,
        c: Claims,
        problem: Problem,
        why: str,
        via: str,
        *,
        actor: str | None = None,
        ledger_tenant: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ConfirmResult:
        tenant_id = ledger_tenant or c.tenant
        if ledger_tenant is None and not await self.tenants.exists(c.tenant):
            tenant_id = SYSTEM_TENANT
        incident_id: str | None = None
        if tenant_id == c.tenant and await self.engine.get(c.tenant, c.incident) is not None:
            incident_id = c.incident
        await self.engine.record(
            tenant_id,
            incident_id,
            kind="refused",
            actor=actor or c.approver,
            decision="refused",
            reason=f"{problem}: {why}",
            data={
                "problem": str(problem),
                "via": via,
                "jti": c.jti,
                "recipient": c.approver,
                "claimed_tenant": c.tenant,
                "claimed_incident": c.incident,
                **(extra or {}),
            },
            stage=Stage.AUTHORIZED if incident_id else None,
        )
        return ConfirmResult(
            ok=False,
            status=problem.status,
            message=problem_message(problem),
            problem=problem,
            tenant_id=c.tenant if tenant_id == c.tenant else "",
            incident_id=incident_id or "",
            approver=actor or c.approver,
        )

    # -- expiry -----------------------------------------------------------------------------

    async def expire_due(self, tenant_id: str) -> list[ExpiryOutcome]:
        """Apply the policy to VALIDATED incidents whose approval link ran out."""
        await self.engine.refresh(tenant_id)
        policy = self.engine.policy_for(tenant_id)
        now = self.clock.now()
        out: list[ExpiryOutcome] = []
        for state in await self.engine.incidents(tenant_id, open_only=True):
            if state.stage is not Stage.VALIDATED or not state.token:
                continue
            issued = state.token.get("issued_at")
            verdict = should_expire(
                policy,
                token_issued_at=float(issued) if issued is not None else None,
                now=now,
                reproposals=state.reproposals,
            )
            if verdict == "expire":
                try:
                    await self.engine.transition(
                        tenant_id,
                        state.incident_id,
                        Change(
                            Stage.EXPIRED,
                            actor="policy",
                            reason=f"no approval within {policy.token_ttl_s:.0f} s",
                            decision="expire",
                            data={"jti": str(state.token.get("jti", ""))},
                        ),
                        expect_stage=Stage.VALIDATED,
                    )
                except TransitionRefused:
                    continue
                out.append(ExpiryOutcome(state.incident_id, "expired"))
            elif verdict == "repropose":
                jti = self.signer.new_jti()
                await self.engine.record(
                    tenant_id,
                    state.incident_id,
                    kind="token",
                    actor="policy",
                    decision="reproposed",
                    reason=f"no approval within {policy.token_ttl_s:.0f} s: asking again",
                    data={
                        "jti": jti,
                        "previous_jti": str(state.token.get("jti", "")),
                        "issued_at": now,
                        "expires_at": now + policy.token_ttl_s,
                    },
                )
                out.append(ExpiryOutcome(state.incident_id, "reproposed", jti))
        return out


def _claim_key(jti: str) -> str:
    return "token:" + jti
