"""Run a scenario through the real control plane on virtual time.

Wired exactly like :func:`alertengine.orchestrator.runtime.build_runtime`: the real
:class:`~alertengine.engine.IncidentEngine` (guarded transitions, the hash-chained
:class:`~alertengine.ledger.memory.MemoryLedgerStore`), the real
:class:`~alertengine.orchestrator.pipeline.Pipeline` with the rules diagnoser
(:class:`~alertengine.orchestrator.wiring.DiagnosisStep`), the real
:class:`~alertengine.orchestrator.wiring.Notifier` (links from the real
:class:`~alertengine.authorize.Authorizer`, deliveries through the real
:class:`~alertengine.notify.Dispatcher` with retries and fall-over, escalation), expiry by
``Authorizer.expire_due`` and the real :class:`~alertengine.execute.Executor` (signed
webhook, retries on the clock, dead-letter queue).

Only the outside world is scripted: the targets' health (:mod:`.traces`), the chat
providers (a channel that is up or down), the tenant's recovery webhook (an
``httpx.MockTransport`` that verifies the signature, then answers or fails), and the
people (they open the link after their reaction delay, when available). Incident ids, link
ids and secrets derive from the scenario's seed, so the same scenario always gives the
same ledger, hash for hash.
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from alertengine.authorize.service import Authorizer
from alertengine.authorize.tokens import TokenSigner
from alertengine.clock import VirtualClock
from alertengine.commits import CommitLog
from alertengine.diagnose.rules import RulesDiagnoser
from alertengine.engine import IncidentEngine
from alertengine.execute.executor import Executor, dlq_list
from alertengine.execute.instance import Instance
from alertengine.execute.signing import verify
from alertengine.ledger.chain import Checkpoint, Entry
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.notify.channel import Channel, DeliveryResult
from alertengine.notify.render import RenderedMessage
from alertengine.notify.twilio import SessionWindows
from alertengine.oncall.hooks import OnCallHooks
from alertengine.oncall.registry import OnCallRegistry, engine_record
from alertengine.oncall.silences import parse_matcher
from alertengine.orchestrator.ack import Acknowledger
from alertengine.orchestrator.config import ChannelConfig, Config, TenantConfig
from alertengine.orchestrator.phone import PhoneActions
from alertengine.orchestrator.pipeline import Pipeline, Target
from alertengine.orchestrator.wiring import (
    DiagnosisStep,
    Notifier,
    engine_recorder,
    sweep_awaiting,
)
from alertengine.people import PersonRegistry
from alertengine.policy import Policy
from alertengine.simulate.clockwork import Scheduler
from alertengine.simulate.scenario import Approver, Scenario, Service, SimSilence
from alertengine.simulate.traces import Health, health_at, health_body
from alertengine.stores.memory import MemoryStateStore
from alertengine.tenants import TenantRegistry

BASE_URL = "https://alertengine.sim.invalid"
#: Event priorities at the same instant: polls, then people, then the loop's sweeps.
_POLL, _CLICK = 0, 1
#: A call rings this long before Twilio reports ``no-answer`` (the Calls API's default
#: ``Timeout``); a person who is there picks up after ``ANSWER_S``.
RING_S, ANSWER_S = 60.0, 10.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One poll of one service, for the chart."""

    t: float  # seconds from the start
    score: float | None
    reachable: bool
    p95_ms: float
    error_rate: float
    stage: str | None  # the service's open incident's stage after the poll, if any


@dataclass
class SimResult:
    scenario: Scenario
    policy: Policy
    start: float
    entries: list[Entry]
    checkpoint: Checkpoint | None
    ledger_key: bytes
    samples: dict[str, list[Sample]]
    dead_letters: list[dict[str, Any]]
    webhook_calls: int = 0
    clicks: list[dict[str, Any]] = field(default_factory=list)

    def offset(self, timestamp: float) -> float:
        return timestamp - self.start


class SimChannel:
    """A chat provider as seen by the real Dispatcher: up, or down during scripted windows."""

    def __init__(self, name: str, sim: Simulation) -> None:
        self.name = name
        self._sim = sim
        self._sent = 0

    async def send(self, recipient: str, msg: RenderedMessage) -> DeliveryResult:
        t = self._sim.elapsed()
        for f in self._sim.scenario.channel_failures:
            if f.channel == self.name and f.window.contains(t):
                return DeliveryResult(
                    ok=False, channel=self.name, status=503, error="provider unavailable (HTTP 503)"
                )
        self._sent += 1
        self._sim.delivered(self.name, recipient, msg)
        return DeliveryResult(
            ok=True, channel=self.name, status=200, provider_message_id=f"{self.name}-{self._sent}"
        )


class Simulation:
    def __init__(self, scenario: Scenario, policy_overrides: Mapping[str, Any] | None = None):
        self.scenario = scenario
        self.policy = scenario.effective_policy(policy_overrides)
        self.clock = VirtualClock(scenario.start)
        self.start = scenario.start
        self.end = scenario.start + scenario.duration
        self.scheduler = Scheduler(self.clock)
        seed = f"alertengine-sim\x00{scenario.seed}".encode()
        self._seed = seed
        self._rng = random.Random(hashlib.sha256(seed).digest())
        self.ledger_key = hashlib.sha256(seed + b"\x00ledger").digest()
        self._secret = hashlib.sha256(seed + b"\x00tokens").digest()
        self._webhook_secret = hashlib.sha256(seed + b"\x00webhook").hexdigest()
        self.ledger = MemoryLedgerStore(self.ledger_key)
        self.store = MemoryStateStore(self.clock)
        self.engine = IncidentEngine(
            self.ledger, self.clock, lambda _tenant: self.policy, id_factory=self._incident_id
        )
        self.samples: dict[str, list[Sample]] = {s.name: [] for s in scenario.services}
        self.cuts: dict[str, float] = {}
        self._pending_clicks: dict[str, int] = {}
        self._click_seq = 0
        self.clicks: list[dict[str, Any]] = []
        self._webhook_attempts: dict[str, int] = {}
        self.webhook_calls = 0
        #: Who a message to (channel, address) reaches.
        self._approvers: dict[tuple[str, str], Approver] = {
            (a.channel, a.address): a for a in scenario.approvers
        }
        self._calls = 0
        self._health_cache: dict[tuple[Any, ...], tuple[Health, dict[str, Any]]] = {}

    # -- seeded identifiers -----------------------------------------------------------------

    def _incident_id(self, service: str, now: float) -> str:
        return f"inc-{service}-{int(now)}-{self._rng.getrandbits(24):06x}"

    def _jti(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"

    def elapsed(self) -> float:
        return self.clock.now() - self.start

    # -- wiring (mirrors orchestrator.runtime.build_runtime) -------------------------------

    def _config(self) -> Config:
        sc = self.scenario
        return Config(
            tenants=[
                TenantConfig(
                    id=sc.tenant,
                    name=sc.name,
                    approvers=[
                        ChannelConfig(channel=a.channel, address=a.address, identity=a.id)
                        for a in sc.approvers
                    ],
                )
            ]
        )

    async def _setup(self) -> None:
        sc = self.scenario
        self.registry = TenantRegistry(self.store, self.clock)
        await self.registry.add(sc.tenant, sc.name)
        by_channel: dict[str, list[str]] = {}
        for a in sc.approvers:
            by_channel.setdefault(a.channel, []).append(a.id)
        for channel, ids in by_channel.items():
            await self.registry.set_approvers(sc.tenant, channel, ids)
        people = PersonRegistry(
            self.store,
            engine_recorder(self.engine),
            marker_key=hashlib.sha256(self.ledger_key + b"\x00people").digest(),
        )
        await people.sync(sc.tenant, self._config().tenants[0].persons(), actor="config")
        self.people = people
        signer = TokenSigner(self._secret, self.clock, jti_factory=self._jti)
        self.authorizer = Authorizer(
            self.engine,
            self.store,
            signer,
            self.registry,
            self.clock,
            BASE_URL,
            on_authorized=self._on_authorized,
        )
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self._webhook))
        self.executor = Executor(
            self.engine,
            self.store,
            self.http,
            self.clock,
            lambda _t, service: (f"https://{service}.tenant.invalid/recover", self._webhook_secret),
            instance=Instance.named("simulator"),
        )
        commits = CommitLog(self.store)
        channel_names = {a.channel for a in sc.approvers} | {f.channel for f in sc.channel_failures}
        channels: dict[str, Channel] = {n: SimChannel(n, self) for n in sorted(channel_names)}
        self.notifier = Notifier(
            self._config(), self.engine, self.authorizer, channels, self.clock, commits
        )
        self.acknowledger = Acknowledger(
            self.engine, self.people, self.store, tell=self.notifier.tell_acknowledged
        )
        # A call's keypad and status go through the real handlers, as Twilio's webhooks do.
        key = hashlib.sha256(self._seed + b"\x00windows").digest()
        windows = SessionWindows(self.store, self.clock, key)
        self.phone = PhoneActions(
            self.engine, self.authorizer, self.acknowledger, people, self.store, windows, _open
        )
        self.phone.unanswered = self.notifier.call_unanswered
        self.pipeline = Pipeline(
            self.engine,
            self.clock,
            diagnose=DiagnosisStep(self.engine, commits, RulesDiagnoser()),
            on_validated=self.notifier.on_validated,
        )
        self.targets = {s.name: Target(sc.tenant, s.name, s.action) for s in sc.services}
        if sc.schedules or sc.silences:
            await self._oncall()

    async def _oncall(self) -> None:
        """Schedules and silences, wired as the runtime wires them (alertengine.oncall)."""
        sc = self.scenario
        registry = OnCallRegistry(self.store, engine_record(self.engine), self.clock)
        await registry.sync_config(sc.tenant, sc.on_call())
        for s in sc.silences:
            self.scheduler.at(
                self.start + s.window.start,
                functools.partial(self._silence, registry, s),
                priority=_POLL,
            )
        hooks = OnCallHooks(registry, self.engine, self.clock)
        self.notifier.oncall, self.pipeline.held = hooks, hooks.held

    async def _silence(self, registry: OnCallRegistry, s: SimSilence) -> None:
        await registry.add_silence(
            self.scenario.tenant,
            [parse_matcher(m) for m in s.matchers],
            starts_at=self.start + s.window.start,
            ends_at=self.start + min(s.window.end, self.scenario.duration + 1),
            created_by="scenario",
            comment=s.comment,
            actor="scenario",
        )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> SimResult:
        await self._setup()
        sc = self.scenario
        steps = int(sc.duration // sc.step)
        for i in range(steps + 1):
            self.scheduler.at(self.start + i * sc.step, self._tick, priority=_POLL)
        try:
            await self.scheduler.run_until(self.end)
        finally:
            await self.scheduler.close()
            await self.http.aclose()
        entries = [e async for e in self.ledger.scan(sc.tenant)]
        return SimResult(
            scenario=sc,
            policy=self.policy,
            start=self.start,
            entries=entries,
            checkpoint=await self.ledger.head(sc.tenant),
            ledger_key=self.ledger_key,
            samples=self.samples,
            dead_letters=await dlq_list(self.store, sc.tenant),
            webhook_calls=self.webhook_calls,
            clicks=self.clicks,
        )

    async def _tick(self) -> None:
        """One orchestrator loop iteration: poll every target, then the sweeps."""
        for s in self.scenario.services:
            await self._observe(s)
        tenant = self.scenario.tenant
        # The runtime's sweep, the same code in the same order.
        await sweep_awaiting(self.authorizer, self.notifier, self.engine, [tenant])
        await self.executor.resume([tenant])

    async def _observe(self, service: Service) -> None:
        name = service.name
        t = self.elapsed()
        cut = self.cuts.get(name)
        # Health only changes at event boundaries: score it once per distinct set of active
        # events (the SDK scoring is pure), not once per poll.
        key = (
            name,
            *(
                i
                for i, e in enumerate(service.events)
                if e.active(t) and not (cut is not None and e.at < cut <= t)
            ),
        )
        cached = self._health_cache.get(key)
        if cached is None:
            h = health_at(service, t, cut=cut)
            cached = self._health_cache[key] = (h, health_body(service, h))
        h, body = cached
        state = await self.pipeline.observe(self.targets[name], h.snapshot(self.clock.now()), body)
        self.samples[name].append(
            Sample(
                t,
                h.score,
                h.reachable,
                h.p95_ms,
                h.error_rate,
                str(state.stage) if state is not None else None,
            )
        )

    # -- people -----------------------------------------------------------------------------

    def delivered(self, channel: str, recipient: str, msg: RenderedMessage) -> None:
        """A message reached ``recipient``: they will open its link when they can."""
        approver = self._approvers.get((channel, recipient))
        if approver is not None and channel == "voice":
            self._ring(approver, msg)
            return
        token = _token_of(msg)
        if approver is None or not token:
            return
        if approver.ack is not None:
            acked = approver.next_available(self.elapsed() + approver.ack, self.scenario.duration)
            if acked is not None:
                self.scheduler.at(
                    self.start + acked,
                    lambda: self._ack(approver, msg.incident_id),
                    priority=_CLICK,
                )
        when = approver.next_available(self.elapsed() + approver.reaction, self.scenario.duration)
        if when is None:
            return
        self._click_seq += 1
        ticket = self._click_seq
        self._pending_clicks[approver.identity] = ticket  # a newer link replaces an older one
        self.scheduler.at(
            self.start + when,
            lambda: self._click(approver, token, ticket, msg.incident_id),
            priority=_CLICK,
        )

    def _ring(self, approver: Approver, msg: RenderedMessage) -> None:
        """A call to ``approver``: when available they pick up after a few seconds and press
        1 (an acknowledgement; nothing on a call approves), else Twilio reports
        ``no-answer`` after its ring time, and the Notifier falls over."""
        self._calls += 1
        call = {"CallSid": f"CA{self._calls:032x}", "To": approver.address}
        ref = msg.ref

        async def status(outcome: str) -> None:
            await self.phone.status({**call, "CallStatus": outcome}, ref)

        async def answered() -> None:
            await status("in-progress")
            await self.phone.gather({**call, "Digits": "1"}, ref)
            await status("completed")

        if approver.is_available(self.elapsed()):
            self.scheduler.at(self.clock.now() + ANSWER_S, answered, priority=_CLICK)
        else:
            self.scheduler.at(
                self.clock.now() + RING_S, lambda: status("no-answer"), priority=_CLICK
            )

    async def _click(self, approver: Approver, token: str, ticket: int, incident_id: str) -> None:
        if self._pending_clicks.get(approver.identity) != ticket:
            return
        del self._pending_clicks[approver.identity]
        result = await self.authorizer.confirm(token, via=approver.channel)
        self.clicks.append(
            {
                "t": self.elapsed(),
                "approver": approver.identity,
                "incident_id": incident_id,
                "ok": result.ok,
                "authorized": result.authorized,
                "problem": str(result.problem) if result.problem else None,
            }
        )

    async def _ack(self, approver: Approver, incident_id: str) -> None:
        """ "I'm on it", through the real Acknowledger (escalation waits ``ack_timeout_s``)."""
        person = await self.people.find_by_channel(
            self.scenario.tenant, approver.channel, approver.address
        )
        actor = person.actor if person is not None else approver.identity
        await self.acknowledger.acknowledge(
            self.scenario.tenant, incident_id, actor, approver.channel
        )

    # -- execution --------------------------------------------------------------------------

    def _on_authorized(self, tenant_id: str, incident_id: str) -> None:
        self.scheduler.spawn(self._execute(tenant_id, incident_id))

    async def _execute(self, tenant_id: str, incident_id: str) -> None:
        await self.executor.run(tenant_id, incident_id)

    def _recovered(self, service_name: str) -> None:
        service = next(s for s in self.scenario.services if s.name == service_name)
        if service.recovery is not None and service_name not in self.cuts:
            self.cuts[service_name] = self.elapsed() + service.recovery

    async def _webhook(self, request: httpx.Request) -> httpx.Response:
        """The tenant's recovery endpoint: checks the signature, then works or fails."""
        self.webhook_calls += 1
        body = request.content
        if not verify(self._webhook_secret, dict(request.headers), body, now=self.clock.now()):
            return httpx.Response(401, json={"error": "bad signature"})
        key = request.headers.get("idempotency-key", "")
        attempt = self._webhook_attempts.get(key, 0) + 1
        self._webhook_attempts[key] = attempt
        service = (request.url.host or "").split(".", 1)[0]
        t = self.elapsed()
        for f in self.scenario.webhook_failures:
            if f.service not in (None, service) or not f.window.contains(t):
                continue
            if f.attempts is not None and attempt > f.attempts:
                continue
            if f.mode == "timeout":
                await self.clock.sleep(self.policy.webhook_timeout_s)
                raise httpx.ReadTimeout("simulated timeout", request=request)
            if f.mode == "connect":
                raise httpx.ConnectError("simulated connection refused", request=request)
            return httpx.Response(503 if f.mode == "http_503" else 500)
        if service in self.targets:
            self._recovered(service)
        return httpx.Response(200, json={"ok": True})


def _open() -> str | None:
    """The simulated orchestrator is never paused (emergency mode)."""
    return None


def _token_of(msg: RenderedMessage) -> str:
    url = msg.approve_url or next((b.url for b in msg.buttons if b.url), "")
    values = parse_qs(urlsplit(url).query).get("token", [])
    return values[0] if values else ""


async def simulate(
    scenario: Scenario, policy_overrides: Mapping[str, Any] | None = None
) -> SimResult:
    """Run ``scenario`` (optionally under extra policy overrides) and return what happened."""
    return await Simulation(scenario, policy_overrides).run()
