"""Wire diagnosis, commit context and notifications into the orchestrator's pipeline.

Diagnosis: build the context (health numbers, the SDK's routes and alerts, recent commits),
ask the diagnoser (or the council), ledger the answer as ``actor="diagnosis:<model>"`` — data,
never a transition. Notification: on VALIDATED, issue one approval link per recipient (each
link bound to that recipient's identity), render the message, deliver with fall-over; every
attempt is a ledger entry. Escalation: after ``escalate_after_s`` with no decision, the next
person on the route gets their own link; ledgered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import httpx

from alertengine.authorize.service import DEFAULT_ACTION, Authorizer
from alertengine.clock import Clock
from alertengine.commits import Commit, CommitLog, flag_risky
from alertengine.diagnose.base import Diagnoser, Diagnosis, DiagnosisContext
from alertengine.diagnose.council import Council, CouncilVerdict
from alertengine.engine import GuardRefused, IncidentEngine
from alertengine.execute.receipts import CheckpointSource
from alertengine.execute.signing import check_key
from alertengine.incidents import IncidentState, Stage
from alertengine.ledger import LedgerQuery
from alertengine.notify.channel import Channel, DeliveryResult
from alertengine.notify.delivery import DeliveryEvent, Dispatcher, Recipient
from alertengine.notify.escalation import (
    UNANSWERED,
    after_unanswered,
    escalation_levels,
    escalations_due,
)
from alertengine.notify.render import IncidentMessage, RenderedMessage, notice, render
from alertengine.notify.slack import SlackWebhookChannel
from alertengine.notify.telegram import TelegramChannel
from alertengine.notify.twilio import (
    SessionWindows,
    TwilioVoiceChannel,
    TwilioWhatsAppChannel,
    WhatsAppTemplate,
)
from alertengine.notify.webhook import SignedWebhookChannel
from alertengine.oncall.hooks import OnCallHooks
from alertengine.orchestrator.baseline import Baseline, deviation
from alertengine.orchestrator.config import Config
from alertengine.orchestrator.pipeline import Target
from alertengine.orchestrator.preflight import missing_credentials
from alertengine.orchestrator.settings import Settings
from alertengine.people import Person, PersonRegistry, Record
from alertengine.policy import HealthSnapshot
from alertengine.tenants import TenantRegistry, engineer_identity

log = logging.getLogger("alertengine.wiring")

#: Reports a dependency's health to the orchestrator's degraded-mode tracker.
ReportHealth = Callable[[str, bool, str], Awaitable[None]]


async def _ignore_health(_name: str, _ok: bool, _detail: str) -> None:
    return None


COMMIT_WINDOW_S = 6 * 3600.0
#: A call's fall-over is claimed this long: Twilio retries a callback within minutes.
FALLOVER_TTL_S = 7 * 24 * 3600.0


async def commits_before(log: CommitLog, state: IncidentState) -> list[Commit]:
    """The service's commits in the window before the incident opened (newest first)."""
    return await log.recent(
        state.tenant_id,
        state.service,
        since=state.opened_at - COMMIT_WINDOW_S,
        until=state.opened_at,
    )


class AddressedWebhookChannel:
    """The generic signed JSON webhook, where each recipient's address is its URL."""

    name = "webhook"
    #: The log's checkpoint source; each message carries the tenant's latest checkpoint.
    checkpoint: CheckpointSource | None = None

    def __init__(self, secret: bytes, client: httpx.AsyncClient, clock: Clock) -> None:
        self._secret, self._client, self._clock = check_key(secret), client, clock

    async def send(self, recipient: str, msg: RenderedMessage) -> DeliveryResult:
        channel = SignedWebhookChannel(
            recipient, self._secret, self._client, self._clock, checkpoint=self.checkpoint
        )
        return await channel.send(recipient, msg)


def build_channels(
    settings: Settings,
    http: httpx.AsyncClient,
    clock: Clock,
    *,
    webhook_secret: bytes,
    config: Config | None = None,
    windows: SessionWindows | None = None,
) -> dict[str, Channel]:
    """Every channel whose credentials are configured. Missing credentials: channel absent."""
    channels: dict[str, Channel] = {"webhook": AddressedWebhookChannel(webhook_secret, http, clock)}

    def template_for(tenant_id: str) -> WhatsAppTemplate | None:
        t = config.tenant(tenant_id) if config is not None else None
        return WhatsAppTemplate(t.whatsapp_content_sid) if t and t.whatsapp_content_sid else None

    if settings.telegram_bot_token:
        channels["telegram"] = TelegramChannel(
            settings.telegram_bot_token, http, base_url=settings.telegram_api_base
        )
    if not missing_credentials(settings)["whatsapp"]:
        channels["whatsapp"] = TwilioWhatsAppChannel(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_whatsapp_from,
            http,
            base_url=settings.twilio_api_base,
            template_for=template_for,
            windows=windows,
        )
    if not missing_credentials(settings)["voice"] and config is not None:
        channels["voice"] = TwilioVoiceChannel(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_voice_from,
            http,
            public_base=config.orchestrator.base_url,
            base_url=settings.twilio_api_base,
        )
    if settings.slack_webhook_url:
        channels["slack"] = SlackWebhookChannel(
            settings.slack_webhook_url, http, interactive=bool(settings.slack_signing_secret)
        )
    return channels


class DiagnosisStep:
    """The pipeline's ``diagnose`` collaborator."""

    def __init__(
        self,
        engine: IncidentEngine,
        commits: CommitLog,
        diagnoser: Diagnoser,
        council: Council | None = None,
        council_tenants: frozenset[str] = frozenset(),
        *,
        baseline_for: Callable[[str, str], Baseline | None] | None = None,
        report_health: ReportHealth = _ignore_health,
    ) -> None:
        self.engine = engine
        self.commits = commits
        self.diagnoser = diagnoser
        self.council = council
        self.council_tenants = council_tenants
        self.baseline_for = baseline_for
        self.report_health = report_health

    async def __call__(
        self,
        target: Target,
        state: IncidentState,
        snapshot: HealthSnapshot,
        body: Mapping[str, Any],
    ) -> Mapping[str, Any] | None:
        recent = await commits_before(self.commits, state)
        ctx = DiagnosisContext(
            tenant_id=target.tenant_id,
            service=target.service,
            incident_id=state.incident_id,
            snapshot={
                **snapshot.summary(),
                **{k: body[k] for k in ("metrics", "routes", "alerts") if k in body},
            },
            commits=recent,
            opened_at=state.opened_at,
        )
        if self.baseline_for is not None:
            b = self.baseline_for(target.tenant_id, target.service)
            if b is not None:
                ctx = replace(
                    ctx,
                    snapshot={
                        **ctx.snapshot,
                        "baseline": b.to_dict(),
                        "deviation": deviation(b, snapshot),
                    },
                )
        verdict: CouncilVerdict | None = None
        if self.council is not None and target.tenant_id in self.council_tenants:
            verdict = await self.council.convene(ctx)
            d: Diagnosis = verdict.combined
        else:
            d = await self.diagnoser.diagnose(ctx)
        await self.report_health("diagnoser", d.ok, d.error)
        data: dict[str, Any] = d.to_dict()
        if verdict is not None:
            data["council"] = verdict.to_dict()
        if recent:
            data["commits"] = [c.to_dict() for c in recent[:5]]
        reason = d.cause if d.ok else f"diagnosis unavailable ({d.error}); going ahead on policy"
        await self.engine.record(
            target.tenant_id,
            state.incident_id,
            kind="diagnosis",
            actor=f"diagnosis:{d.model or 'unknown'}",
            decision=d.category if d.ok else "unavailable",
            reason=reason,
            confidence=d.confidence,
            data=data,
        )
        return data


class Notifier:
    def __init__(
        self,
        config: Config,
        engine: IncidentEngine,
        authorizer: Authorizer,
        channels: Mapping[str, Channel],
        clock: Clock,
        commits: CommitLog,
        *,
        retries: int = 2,
        report_health: ReportHealth = _ignore_health,
        missing: Mapping[str, str] | None = None,
        people: PersonRegistry | None = None,
    ) -> None:
        self.report_health = report_health
        #: The tenants' people (config + CLI); without it, the people the config names.
        self.people = people
        self.config = config
        self.engine = engine
        self.authorizer = authorizer
        self.clock = clock
        self.commits = commits
        self.channels = dict(channels)
        #: Why a channel is absent (e.g. "TELEGRAM_BOT_TOKEN not set"), for messages.
        self.missing = dict(missing or {})
        self.dispatcher = Dispatcher(channels, self._record, clock, retries=retries)
        #: Follow-ups ("Bob is on it"): ledgered as notices, never as approval links.
        self.notices = Dispatcher(channels, self._record_notice, clock, retries=retries)
        #: Incidents awaiting approval that nobody could be told about: (tenant, id) -> why.
        self.unreached: dict[tuple[str, str], dict[str, Any]] = {}

    #: On-call schedules and silences (alertengine.oncall.hooks), set by the runtime.
    oncall: OnCallHooks | None = None

    def why_unreachable(self, channel: str) -> str:
        """Empty when ``channel`` can send; else the reason, naming what to set."""
        if channel in self.channels:
            return ""
        return self.missing.get(channel) or f"no {channel} channel is configured"

    def unreachable_approvers(self, tenant_id: str | None = None) -> list[dict[str, str]]:
        """Route entries whose channel cannot send (started with --allow-unreachable-…)."""
        return [
            {"tenant": t.id, "approver": p.actor, "channel": c.kind, "why": why}
            for t in self.config.tenants
            if tenant_id is None or t.id == tenant_id
            for p in t.persons()
            for c in p.channels
            if (why := self.why_unreachable(c.kind))
        ]

    def unreached_incidents(self, tenant_id: str | None = None) -> list[dict[str, Any]]:
        return [v for (t, _), v in sorted(self.unreached.items()) if tenant_id in (None, t)]

    def status(self) -> dict[str, Any]:
        """For ``/__alertengine/status``: who cannot be reached, and who was not told."""
        return {
            "unreachable_approvers": self.unreachable_approvers(),
            "incidents_without_reachable_approver": self.unreached_incidents(),
        }

    async def _record(self, ev: DeliveryEvent) -> None:
        decision = "delivered" if ev.ok else ("skipped" if ev.skipped else "failed")
        if not ev.skipped:
            await self.report_health(f"provider:{ev.channel}", ev.ok, ev.error)
        # Only a channel that accepted the message makes it "sent".
        if ev.ok:
            outcome = f"approval link sent to {ev.identity} via {ev.channel}"
        else:
            why = ev.error or ev.skipped or "failed"
            if ev.skipped and ev.error:
                why = f"{ev.skipped}: {ev.error}"
            outcome = f"approval link NOT sent to {ev.identity} via {ev.channel}: {why}"
        await self.engine.record(
            ev.tenant_id,
            ev.incident_id,
            kind="delivery",
            actor="orchestrator",
            decision=decision,
            reason=f"{outcome} (attempt {ev.attempt})",
            data=ev.to_dict(),
        )

    async def _record_notice(self, ev: DeliveryEvent) -> None:
        decision = "notice_delivered" if ev.ok else "notice_failed"
        why = "" if ev.ok else f": {ev.error or ev.skipped or 'failed'}"
        await self.engine.record(
            ev.tenant_id,
            ev.incident_id,
            kind="delivery",
            actor="orchestrator",
            decision=decision,
            reason=f"notice {'sent' if ev.ok else 'NOT sent'} to {ev.identity} via "
            f"{ev.channel}{why} (attempt {ev.attempt})",
            data=ev.to_dict(),
        )

    def route(self, tenant_id: str) -> list[Recipient]:
        """The config's route: each person's channels, person after person."""
        t = self.config.tenant(tenant_id)
        return person_route(t.persons()) if t is not None else []

    async def levels(self, state: IncidentState) -> list[list[Recipient]]:
        """Escalation levels, one per person (from the registry when there is one): whoever
        the tenant's schedules have on call first, then the rest of the chain."""
        people = await self.people.list(state.tenant_id) if self.people is not None else []
        route = person_route(people) if people else self.route(state.tenant_id)
        levels = escalation_levels(route)
        return levels if self.oncall is None else await self.oncall.order_levels(state, levels)

    async def on_validated(self, state: IncidentState) -> None:
        await self.notify_level(state, 0)

    async def notify_level(self, state: IncidentState, level: int) -> bool:
        """Notify the people from ``level`` on, until one delivery succeeds. Reaching nobody
        is loud at once: an error log, a ledger entry and a status field."""
        if self.oncall is not None and await self.oncall.held(state):
            return False  # silenced: ledgered by the hook, nobody is paged
        levels = await self.levels(state)
        tried: list[str] = []
        for people in levels[level:]:
            for r in people:  # one person's channels, as fall-overs
                if await self._notify_one(state, r):
                    self.unreached.pop((state.tenant_id, state.incident_id), None)
                    return True
                why = self.why_unreachable(r.channel) or "delivery failed"
                tried.append(f"{r.identity} via {r.channel} ({why})")
        await self._nobody_reached(state, tried)
        return False

    async def _nobody_reached(self, state: IncidentState, tried: list[str]) -> None:
        fresh = await self.engine.get(state.tenant_id, state.incident_id) or state
        if fresh.stage is not Stage.VALIDATED:
            return  # it moved on meanwhile (approved, recovered): nobody needs asking
        why = "; ".join(tried) if tried else "the tenant has no approvers"
        reason = f"no approver could be reached: {why}"
        log.error("incident %s/%s: %s", state.tenant_id, state.incident_id, reason)
        self.unreached[(state.tenant_id, state.incident_id)] = {
            "tenant": state.tenant_id,
            "incident_id": state.incident_id,
            "service": state.service,
            "since": self.clock.now(),
            "reason": reason,
        }
        await self.engine.record(
            state.tenant_id,
            state.incident_id,
            kind="delivery",
            actor="orchestrator",
            decision="unreachable",
            reason=reason,
            data={"tried": tried},
        )

    async def _notify_one(self, state: IncidentState, r: Recipient) -> bool:
        why = self.why_unreachable(r.channel)
        if why:
            # No link is issued for a message nobody can send; the skip is ledgered.
            await self._record(
                DeliveryEvent(
                    state.tenant_id,
                    state.incident_id,
                    r.channel,
                    r.identity,
                    0,
                    self.clock.now(),
                    ok=False,
                    error=why,
                    skipped="unknown_channel",
                )
            )
            return False
        try:
            link = await self.authorizer.issue(
                state.tenant_id, state.incident_id, r.identity, via=r.channel
            )
        except Exception as exc:  # e.g. the incident moved on meanwhile
            log.info("no link for %s: %s", r.identity, exc)
            return False
        msg = await self.render(state, link.url, link.jti, link.expires_at, r.channel)
        # WhatsApp quick replies and a call's keypad name the link; a call reads the summary.
        msg = replace(msg, ref=link.jti, summary=_summary(msg, state))
        outcome = await self.dispatcher.deliver(state.tenant_id, state.incident_id, [r], msg)
        return outcome.delivered

    def _buttons_act(self, channel: str) -> bool:
        """Presses come back to us: Telegram, and Slack with a signing secret."""
        return channel == "telegram" or bool(getattr(self.channels.get(channel), "interactive", 0))

    def _in_chat(self, channel: str, state: IncidentState) -> bool:
        """An in-chat Approve button, unless the policy wants a passkey: then the only
        button opens the approval page, where the person's device signs."""
        policy = self.engine.policy_for(state.tenant_id)
        action = state.action or DEFAULT_ACTION
        return self._buttons_act(channel) and not policy.requires_passkey(action)

    async def render(
        self, state: IncidentState, url: str, jti: str, expires_at: float, channel: str
    ) -> RenderedMessage:
        fresh = await self.engine.get(state.tenant_id, state.incident_id) or state
        det = fresh.detection
        diag = fresh.diagnosis or {}
        diagnosis: Diagnosis | None = None
        verdict: CouncilVerdict | None = None
        if diag:
            diagnosis = _diagnosis_from(diag)
            council = diag.get("council")
            if isinstance(council, Mapping):
                verdict = CouncilVerdict(
                    agree=bool(council.get("agree")),
                    a=_diagnosis_from(council.get("a") or {}),
                    b=_diagnosis_from(council.get("b") or {}),
                    what_to_check=str(council.get("what_to_check", "")),
                    combined=diagnosis,
                )
        recent = await commits_before(self.commits, state)
        m = IncidentMessage(
            tenant_id=state.tenant_id,
            service=state.service,
            incident_id=state.incident_id,
            stage=fresh.stage.value,
            now=self.clock.now(),
            score=_f(det.get("score")),
            p95_ms=_f(det.get("p95_ms")),
            error_rate=_f(det.get("error_rate")),
            diagnosis=diagnosis,
            verdict=verdict,
            commits=flag_risky(recent[:3]),
            approve_url=url,
            approve_callback=f"ae:{jti}" if self._in_chat(channel, fresh) else "",
            ack_callback=f"ack:{jti}" if self._buttons_act(channel) else "",
            ack_url=url.replace("/action/recover?", "/action/ack?", 1) if url else "",
            expires_at=expires_at,
            action=fresh.action,
            alerts=list(fresh.alerts.values()),
        )
        return render(m)

    async def escalate_due(self) -> None:
        """Tick hook: escalate incidents awaiting approval for longer than policy allows."""
        for t in self.config.tenants:
            policy = self.engine.policy_for(t.id)
            awaiting: set[str] = set()
            for s in await self.engine.incidents(t.id, open_only=True):
                if s.stage is not Stage.VALIDATED:
                    continue
                awaiting.add(s.incident_id)
                if self.oncall is not None and await self.oncall.held(s):
                    continue  # silenced: no escalation, nobody paged
                if s.notified_at is None:
                    # Nobody could be told yet (every channel failed): try the route again.
                    validated_at = s.history[-1].at
                    # Known after a restart or on another replica too (from the ledger).
                    self.unreached.setdefault(
                        (t.id, s.incident_id),
                        {
                            "tenant": t.id,
                            "incident_id": s.incident_id,
                            "service": s.service,
                            "since": validated_at,
                            "reason": "no approver has been reached yet",
                        },
                    )
                    if self.clock.now() >= validated_at + policy.escalate_after_s * (
                        s.escalations + 1
                    ):
                        await self._retry_unnotified(s)
                    continue
                expired_ack = ""  # who acknowledged, when that acknowledgement just expired
                if s.acked_at is not None:
                    if self.clock.now() < s.acked_at + policy.ack_timeout_s:
                        continue  # someone is on it: nobody else is woken yet
                    await self.engine.record(
                        t.id,
                        s.incident_id,
                        kind="ack",
                        actor="policy",
                        decision="expired",
                        reason=f"{s.acked_by} acknowledged but nothing was decided within "
                        f"{policy.ack_timeout_s:.0f} s; escalating again",
                        data={"acked_by": s.acked_by, "ack_timeout_s": policy.ack_timeout_s},
                    )
                    expired_ack = s.acked_by
                due = escalations_due(s.notified_at, self.clock.now(), policy.escalate_after_s)
                if due < 1:
                    continue
                level = s.escalations + 1
                levels = await self.levels(s)
                if level >= len(levels):
                    continue  # everyone has been asked; expiry will decide
                asked, nxt = levels[level - 1][0].identity, levels[level][0].identity
                # The wait that ran out: the acknowledgement's, when there was one.
                waited = (
                    f"{expired_ack}'s acknowledgement expired with no decision within "
                    f"{policy.ack_timeout_s:.0f} s (ack_timeout_s)"
                    if expired_ack
                    else f"no decision from {asked} within {policy.escalate_after_s:.0f} s"
                )
                await self.engine.record(
                    t.id,
                    s.incident_id,
                    kind="escalation",
                    actor="orchestrator",
                    decision=f"level {level}",
                    reason=f"{waited}; asking the next person, {nxt}",
                    data={"level": level, "person": nxt, "previous": asked},
                )
                fresh = await self.engine.get(t.id, s.incident_id)
                if fresh is not None:
                    await self.notify_level(fresh, level)
            for key in [k for k in self.unreached if k[0] == t.id and k[1] not in awaiting]:
                del self.unreached[key]  # decided, recovered or expired: no longer waiting

    async def tell_acknowledged(self, state: IncidentState, actor: str) -> None:
        """Tell everyone this round already reached (but ``actor``) who is on it."""
        since = state.history[-1].seq if state.history else 0
        entries = await self.engine.ledger.read(
            LedgerQuery(
                tenant_id=state.tenant_id,
                incident_id=state.incident_id,
                after_seq=since,
                kinds=frozenset({"delivery"}),
            )
        )
        reached = {(e.data.get("identity"), e.data.get("channel")) for e in entries if e.data["ok"]}
        text = f"{actor} acknowledged {state.service} ({state.incident_id}): they are on it."
        msg = notice(state.tenant_id, state.incident_id, text)
        for level in await self.levels(state):
            for r in level:
                # A call to say "Alice is on it" would wake someone for nothing.
                if r.channel == "voice" or r.identity == actor:
                    continue
                if (r.identity, r.channel) in reached:
                    await self.notices.deliver(state.tenant_id, state.incident_id, [r], msg)

    async def _retry_unnotified(self, s: IncidentState) -> None:
        await self.engine.record(
            s.tenant_id,
            s.incident_id,
            kind="escalation",
            actor="orchestrator",
            decision="retry",
            reason="no approver could be reached yet; trying the whole route again",
            data={"level": 0, "retry": True},
        )
        fresh = await self.engine.get(s.tenant_id, s.incident_id)
        if fresh is not None:
            await self.notify_level(fresh, 0)

    async def call_unanswered(
        self, tenant_id: str, incident_id: str, jti: str, call_sid: str, outcome: str, to: str
    ) -> bool:
        """A call of link ``jti`` ended unanswered (``outcome``: busy, no-answer, failed,
        canceled): the person's channels after the call are tried at once; when none
        delivers, the next person is asked at once. Only while the incident awaits approval,
        unacknowledged, in the round the link belongs to. Once per call, however many
        replicas get Twilio's (retried) callback: the claim ``twilio:fallover:<CallSid>``.
        ``to`` (the number called) only picks the call among the person's channels; it is
        never ledgered. True when it fell over."""
        if outcome not in UNANSWERED or not call_sid:
            return False
        await self.engine.refresh(tenant_id)
        state = await self.engine.get(tenant_id, incident_id)
        if state is None or state.stage is not Stage.VALIDATED or state.acked_by:
            return False  # decided, recovered, expired, or someone is on it: nothing to do
        if self.oncall is not None and await self.oncall.held(state):
            return False
        link = await self._round_link(state, jti)
        if link is None:
            return False  # a call of an earlier round: its links no longer count
        if not await self.authorizer.store.claim(f"twilio:fallover:{call_sid}", FALLOVER_TTL_S):
            return False  # another replica (or Twilio's retry) already fell over
        identity = str(link.get("recipient", ""))
        levels = await self.levels(state)
        plan = after_unanswered(levels, identity, "voice", to, state.escalations)
        heard = f"{identity} did not answer the call ({outcome})"
        data = {"identity": identity, "channel": "voice", "outcome": outcome, "jti": jti}
        data |= {"call_sid": call_sid[:64]}  # as the ``call`` entry: which call this was
        # A fall-over entry reaches nobody by itself ("ok" as on every delivery entry).
        told = {**data, "ok": False}
        if plan.channels:
            tried = ", then ".join(r.channel for r in plan.channels)
            await self.engine.record(
                tenant_id,
                incident_id,
                kind="delivery",
                actor="orchestrator",
                decision="fallover",
                reason=f"no answer from {identity} on voice ({outcome}); trying {identity} "
                f"on {tried}",
                data={**told, "next": [r.channel for r in plan.channels]},
            )
            for r in plan.channels:
                if await self._notify_one(state, r):
                    return True
            heard += f" and could not be reached on {tried} either"
        else:
            heard += " and has no other channel"
        if plan.next_level is None:
            await self.engine.record(
                tenant_id,
                incident_id,
                kind="delivery",
                actor="orchestrator",
                decision="fallover",
                reason=f"{heard}; nobody after them to ask (escalation has moved on, or "
                "everyone has been asked): the link's expiry decides",
                data=told,
            )
            return True
        nxt = levels[plan.next_level][0].identity
        asked = state.escalations

        def unchanged(st: IncidentState | None) -> str | None:
            """Still awaiting approval, unacknowledged, and no escalation step since."""
            if st is None or st.stage is not Stage.VALIDATED or st.acked_by:
                return "the incident moved on"
            return None if st.escalations == asked else "escalation got there first"

        try:
            await self.engine.record(
                tenant_id,
                incident_id,
                kind="escalation",
                actor="orchestrator",
                decision=f"level {plan.next_level}",
                reason=f"{heard}; asking {nxt}",
                data={**data, "level": plan.next_level, "person": nxt, "previous": identity},
                guard=unchanged,
            )
        except GuardRefused:
            return True  # escalation (elsewhere) or a decision got there first
        fresh = await self.engine.get(tenant_id, incident_id)
        if fresh is not None:
            await self.notify_level(fresh, plan.next_level)
        return True

    async def _round_link(self, state: IncidentState, jti: str) -> Mapping[str, Any] | None:
        """The ``token`` entry that issued ``jti`` in this round (since the incident last
        moved and its links were last reproposed), if any."""
        issued = await self.engine.ledger.read(
            LedgerQuery(
                tenant_id=state.tenant_id,
                incident_id=state.incident_id,
                after_seq=state.history[-1].seq if state.history else 0,
                kinds=frozenset({"token"}),
            )
        )
        link: Mapping[str, Any] | None = None
        for e in issued:
            if e.decision == "reproposed":
                link = None  # the links before a reproposal ran out: a new round began
            elif jti and e.data.get("jti") == jti:
                link = e.data
        return link


def engine_recorder(engine: IncidentEngine) -> Record:
    """Ledgers person-registry changes through the engine (kind ``people``, no incident)."""

    async def record(
        tenant_id: str, actor: str, decision: str, reason: str, data: Mapping[str, Any]
    ) -> None:
        await engine.record(
            tenant_id, None, kind="people", actor=actor, decision=decision, reason=reason, data=data
        )

    return record


def person_route(people: list[Person]) -> list[Recipient]:
    """Every channel of every person, person after person; a recipient's identity is the
    person (``person:<id>``), so escalation groups a person's channels as one level."""
    return [Recipient(c.kind, c.address, p.actor) for p in people for c in p.channels]


def _summary(msg: RenderedMessage, state: IncidentState) -> str:
    """A few words for a call or a template variable: the title, the likely cause."""
    cause = str((state.diagnosis or {}).get("cause", "")).strip()
    title = msg.title.lstrip("🚨 ").strip()
    return f"{title}. Likely cause: {cause}"[:240] if cause else title


def _f(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _diagnosis_from(d: Mapping[str, Any]) -> Diagnosis:
    conf = _f(d.get("confidence")) or 0.0
    return Diagnosis(
        category=str(d.get("category", "")),
        cause=str(d.get("cause", "")),
        evidence=tuple(str(e) for e in d.get("evidence", ()) or ()),
        suggested_action=str(d.get("suggested_action", "")),
        confidence=min(1.0, max(0.0, conf)),
        model=str(d.get("model", "")),
        ok=bool(d.get("ok", True)),
        error=str(d.get("error", "")),
    )


async def sweep_awaiting(
    authorizer: Authorizer, notifier: Notifier, engine: IncidentEngine, tenants: list[str]
) -> None:
    """Each tick, for incidents awaiting approval: expiry per policy (a repropose sends fresh
    links to the route from the top), then escalation. Shared by the orchestrator and the
    simulator, so the simulator answers for the real process."""
    for tenant_id in tenants:
        for outcome in await authorizer.expire_due(tenant_id):
            if outcome.action == "reproposed":
                state = await engine.get(tenant_id, outcome.incident_id)
                if state is not None:
                    await notifier.notify_level(state, 0)
    await notifier.escalate_due()


async def record_theory_choice(
    engine: IncidentEngine,
    registry: TenantRegistry,
    tenants: list[str],
    channel: str,
    user_id: str,
    data: str,
) -> str:
    """A "Trust Theory A/B" tap: ledgered as the person's choice. It authorizes nothing."""
    _, theory, incident_id = [*data.split(":", 2), "", ""][:3]
    identity = engineer_identity(channel, user_id)
    people = PersonRegistry(registry.store)
    for tenant_id in tenants:
        state = await engine.get(tenant_id, incident_id)
        if state is None:
            continue
        person = await people.find_by_channel(tenant_id, channel, user_id)
        if person is not None:
            identity = person.actor
        allowed = person is not None or await registry.is_approver(tenant_id, identity)
        if theory not in ("A", "B") or not allowed:
            await engine.record(
                tenant_id,
                incident_id,
                kind="refused",
                actor=identity,
                decision="choice refused",
                reason="not an approver of this tenant" if theory in ("A", "B") else "bad choice",
            )
            return "Not accepted: you are not an approver for this service."
        council = (state.diagnosis or {}).get("council") or {}
        chosen = council.get(theory.lower()) if isinstance(council, Mapping) else None
        await engine.record(
            tenant_id,
            incident_id,
            kind="choice",
            actor=identity,
            decision=f"trust theory {theory}",
            reason=str((chosen or {}).get("cause", "")) if isinstance(chosen, Mapping) else "",
            data={"theory": theory},
        )
        return f"Noted: you trust Theory {theory}. Nothing runs until you approve."
    return "Unknown incident."
