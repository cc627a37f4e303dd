"""Assemble a running orchestrator: stores, engine, pipeline, authorizer, executor, HTTP app.

``build_runtime`` wires the parts explicitly (no globals, no magic); ``create_app`` gives the
Starlette app whose lifespan syncs tenants from the config, resumes any execution a crash
interrupted, and runs the polling loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from alertengine.authorize.service import Authorizer
from alertengine.authorize.tokens import TokenSigner, check_secret
from alertengine.body_limit import BodyLimit
from alertengine.clock import Clock, SystemClock
from alertengine.commits import CommitLog
from alertengine.commits_api import commits_routes
from alertengine.engine import IncidentEngine
from alertengine.execute.executor import Executor
from alertengine.execute.instance import Instance
from alertengine.execute.receipts import ReceiptBook, checkpoint_signer, checkpoint_source
from alertengine.execute.signing import WeakKeyError, check_key
from alertengine.incidents import IncidentState
from alertengine.ledger import LedgerError, LedgerStore
from alertengine.ledger.checkpoint import NoteSigner
from alertengine.log_redaction import install_url_redaction
from alertengine.notify.slack_webhook import Responder, SlackInteractions
from alertengine.notify.telegram import TelegramChannel
from alertengine.notify.telegram_webhook import telegram_webhook_routes
from alertengine.notify.twilio import SessionWindows
from alertengine.notify.twilio_webhook import twilio_routes
from alertengine.oncall.api import OnCallAPI
from alertengine.oncall.hooks import OnCallHooks
from alertengine.oncall.registry import OnCallRegistry, engine_record
from alertengine.orchestrator.ack import Acknowledger, ack_routes, link_ref
from alertengine.orchestrator.api import OrchestratorAPI
from alertengine.orchestrator.approval_routes import approval_routes
from alertengine.orchestrator.config import Config, TargetConfig
from alertengine.orchestrator.dashboard import dashboard_routes
from alertengine.orchestrator.diagnosers import build_diagnosis
from alertengine.orchestrator.history import SharedHistory
from alertengine.orchestrator.http import (
    BODY_LIMITS,
    DEFAULT_BODY_LIMIT,
    http_exception_handler,
    unavailable_handler,
)
from alertengine.orchestrator.leases import Leases, lease_ttl_for, replica_id
from alertengine.orchestrator.metrics import metrics_route
from alertengine.orchestrator.mode import Mode
from alertengine.orchestrator.openapi import openapi_document
from alertengine.orchestrator.phone import PhoneActions
from alertengine.orchestrator.preflight import missing_credentials
from alertengine.orchestrator.service import Orchestrator
from alertengine.orchestrator.settings import Settings
from alertengine.orchestrator.slack_actions import SlackActions
from alertengine.orchestrator.wiring import (
    AddressedWebhookChannel,
    DiagnosisStep,
    Notifier,
    build_channels,
    engine_recorder,
    record_theory_choice,
    sweep_awaiting,
)
from alertengine.passkeys.routes import passkey_routes
from alertengine.passkeys.service import Passkeys
from alertengine.people import PersonRegistry
from alertengine.people.signin import SignIns
from alertengine.people.signin_wiring import wire_signin
from alertengine.refusals.budget import Limits
from alertengine.refusals.gate import RefusalGate, RequestOrigin
from alertengine.refusals.keeper import CountKeeper
from alertengine.stores import StateStore, StoreUnavailable
from alertengine.tenants import Principal, TenantRegistry, engineer_identity

log = logging.getLogger("alertengine.runtime")

#: The machine-readable description of every route (docs/orchestrator.md).
OPENAPI = "/openapi.json"

#: The in-chat answer to a button press while nothing can be ledgered (EMERGENCY).
PAUSED_TEXT = "AlertEngine cannot record approvals right now. Nothing was changed; try again soon."

#: Called when an incident reaches VALIDATED: issue links and notify (wired by notify).
Notify = Callable[["Runtime", IncidentState], Awaitable[None]]


@dataclass
class Runtime:
    config: Config
    settings: Settings
    clock: Clock
    ledger: LedgerStore
    store: StateStore
    http: httpx.AsyncClient
    orch: Orchestrator
    registry: TenantRegistry
    authorizer: Authorizer
    executor: Executor
    notifier: Notifier
    commits: CommitLog
    extra_routes: list[BaseRoute] = field(default_factory=list)
    #: Schedules and silences per tenant (alertengine.oncall), set by build_runtime.
    oncall: OnCallRegistry | None = None
    #: "I'm on it" from every channel (orchestrator/ack.py), set by build_runtime.
    acknowledger: Acknowledger | None = None
    #: Slack button presses (``/slack/interactions``), when SLACK_SIGNING_SECRET is set.
    slack: SlackInteractions | None = None
    #: Person sign-in and person tokens (people/signin.py), set by build_runtime.
    signins: SignIns | None = None
    #: Tenant API keys created at start-up for tenants the store did not know (shown once).
    new_keys: dict[str, str] = field(default_factory=dict)
    #: The log's checkpoint key (the executor's and the API's), set by build_runtime.
    checkpoint_signer: NoteSigner | None = None
    #: Anonymous refusals: the first few per key and window ledgered, the rest summarized.
    refusals: RefusalGate | None = None
    refusal_keeper: CountKeeper | None = None
    _exec_tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def engine(self) -> IncidentEngine:
        return self.orch.engine

    def webhook_for(self, tenant_id: str, service: str) -> tuple[str, str]:
        t: TargetConfig | None = self.config.target(tenant_id, service)
        if t is None or not t.recovery_webhook:
            raise LookupError(f"no recovery webhook configured for {tenant_id}/{service}")
        secret = os.environ.get(t.webhook_secret_env, "") if t.webhook_secret_env else ""
        try:
            check_key(secret)
        except WeakKeyError as exc:
            # Start-up refuses this (preflight); never sign with a key anyone could guess.
            raise LookupError(
                f"{tenant_id}/{service}: targets.webhook_secret_env: {exc}; not executing"
            ) from None
        return t.recovery_webhook, secret

    def schedule_execution(self, tenant_id: str, incident_id: str) -> None:
        """Run the webhook outside the request that authorized it."""
        task = asyncio.get_running_loop().create_task(self._execute(tenant_id, incident_id))
        self._exec_tasks.add(task)
        task.add_done_callback(self._exec_tasks.discard)

    async def _execute(self, tenant_id: str, incident_id: str) -> None:
        try:
            await self.executor.run(tenant_id, incident_id)
        except Exception:
            log.exception("execution of %s/%s failed", tenant_id, incident_id)

    async def drain(self) -> None:
        if self.slack is not None:  # a press may be deciding, or replying, still
            await self.slack.drain()
        if self._exec_tasks:
            await asyncio.gather(*self._exec_tasks, return_exceptions=True)


async def build_runtime(
    config: Config,
    *,
    ledger: LedgerStore,
    store: StateStore,
    settings: Settings | None = None,
    clock: Clock | None = None,
    http: httpx.AsyncClient | None = None,
    environ: Mapping[str, str] | None = None,
) -> Runtime:
    settings = settings or Settings.from_env(environ)
    clock = clock or SystemClock()
    install_url_redaction()  # httpx logs every URL at INFO; secrets ride in some of them
    http = http or httpx.AsyncClient(
        timeout=10.0, limits=httpx.Limits(max_connections=200), follow_redirects=False
    )
    demo = config.orchestrator.demo
    secret = check_secret(settings.alert_secret or None, demo=demo)
    orch = Orchestrator(config, ledger=ledger, store=store, clock=clock, http=http, environ=environ)
    # Replicas sharing the store split targets by lease; one id per process for all leases.
    replica = replica_id()
    env = environ if environ is not None else os.environ
    orch.leases = Leases(
        store,
        replica,
        float(env.get("ALERTENGINE_LEASE_TTL_S") or 0)
        or lease_ttl_for(
            config.orchestrator.loop_interval_s,
            max((t.poll_timeout_s for t in config.targets), default=3.0),
        ),
    )
    orch.shared_history = SharedHistory(store, replica)
    registry = TenantRegistry(store, clock)
    people = PersonRegistry(store, engine_recorder(orch.engine))
    signer = TokenSigner(secret, clock)
    holder: dict[str, Runtime] = {}

    def on_authorized(tenant_id: str, incident_id: str) -> None:
        holder["rt"].schedule_execution(tenant_id, incident_id)

    authorizer = Authorizer(
        orch.engine,
        store,
        signer,
        registry,
        clock,
        config.orchestrator.base_url,
        on_authorized=on_authorized,
        people=people,
    )
    authorizer.passkeys = Passkeys(orch.engine, store, clock, config.orchestrator.base_url)
    refusals = RefusalGate(
        orch.engine.record,
        clock,
        Limits(per_window=settings.refusals_per_window, window_s=settings.refusals_window_s),
    )
    authorizer.refusals = authorizer.passkeys.refusals = refusals
    orch.status_sections["refusals"] = refusals.status

    def webhook_for(tenant_id: str, service: str) -> tuple[str, str]:
        return holder["rt"].webhook_for(tenant_id, service)

    # Execution leases name this process instance (and ALERTENGINE_REPLICA_ID, if set), so a
    # restart takes over the leases of the process it replaces at once.
    instance = Instance.current(env)
    # What this process counted survives a SIGKILL in the store; dead processes' copies are
    # ledgered by the living (alertengine.refusals.keeper).
    keeper = CountKeeper(refusals, store, instance, clock)

    async def refusal_tick() -> None:
        try:
            await refusals.flush()  # every replica writes its own summaries
        finally:
            await keeper.tick()

    orch.replica_hooks.append(refusal_tick)
    executor = Executor(orch.engine, store, http, clock, webhook_for, instance=instance)
    # One checkpoint key for the outgoing calls and the API's checkpoints and proofs.
    log_signer = checkpoint_signer(ledger, environ)
    executor.receipts = ReceiptBook(orch.engine, checkpoint_source(ledger, signer=log_signer))
    orch.status_sections["witnesses"] = executor.receipts.status
    commits = CommitLog(store)
    diagnosis = build_diagnosis(config, settings)
    orch.pipeline.diagnose = DiagnosisStep(
        orch.engine,
        commits,
        diagnosis.diagnoser,
        council=diagnosis.council,
        council_tenants=diagnosis.council_tenants,
        baseline_for=lambda tenant, service: orch.baselines.get((tenant, service)),
        report_health=orch.set_component,
    )
    webhook_secret = (
        settings.notify_webhook_secret.encode()
        or hmac.new(secret, b"alertengine notify webhook", hashlib.sha256).digest()
    )
    # When each WhatsApp number last wrote (the 24-hour window), keyed so no number is stored.
    windows = SessionWindows(
        store, clock, hmac.new(secret, b"alertengine whatsapp windows", hashlib.sha256).digest()
    )
    channels = build_channels(
        settings, http, clock, webhook_secret=webhook_secret, config=config, windows=windows
    )
    for channel in channels.values():  # signed notification webhooks carry the checkpoint
        if isinstance(channel, AddressedWebhookChannel):
            channel.checkpoint = executor.receipts.checkpoint
    notifier = Notifier(
        config,
        orch.engine,
        authorizer,
        channels,
        clock,
        commits,
        report_health=orch.set_component,
        missing=missing_credentials(settings),
        people=people,
    )
    orch.validated_hooks.append(notifier.on_validated)
    orch.status_sections["notifications"] = notifier.status
    for gap in notifier.unreachable_approvers():
        # Start-up refuses this unless --allow-unreachable-approvers: then say it loudly.
        log.warning(
            "approver %s of tenant %s cannot be reached on %s: %s",
            gap["approver"],
            gap["tenant"],
            gap["channel"],
            gap["why"],
        )
    rt = Runtime(
        config=config,
        settings=settings,
        clock=clock,
        ledger=ledger,
        store=store,
        http=http,
        orch=orch,
        registry=registry,
        authorizer=authorizer,
        executor=executor,
        notifier=notifier,
        commits=commits,
        refusals=refusals,
        refusal_keeper=keeper,
    )
    holder["rt"] = rt
    rt.oncall = OnCallRegistry(store, engine_record(orch.engine), clock)
    hooks = OnCallHooks(rt.oncall, orch.engine, clock)
    notifier.oncall, orch.pipeline.held = hooks, hooks.held
    rt.extra_routes.extend(
        commits_routes(
            commits, _github_secret_for(config), on_refused=refusals.webhook_refusal("github")
        )
    )
    rt.extra_routes.extend(dashboard_routes(rt))
    rt.checkpoint_signer = log_signer
    oncall_api = OrchestratorAPI(orch, registry, settings.admin_key or None, log_signer, refusals)
    rt.extra_routes.extend(OnCallAPI(oncall_api, rt.oncall).routes())
    acknowledger = Acknowledger(orch.engine, people, store, tell=notifier.tell_acknowledged)
    acknowledger.refusals = refusals
    rt.acknowledger = acknowledger

    def paused() -> str | None:
        return PAUSED_TEXT if orch.mode is Mode.EMERGENCY else None

    rt.extra_routes.extend(ack_routes(acknowledger, signer, paused))
    signin = wire_signin(rt, oncall_api)  # person sign-in; the dashboard reads rt.signins
    if signin is not None:
        rt.extra_routes.extend(signin.routes())
    if settings.twilio_auth_token:
        phone = PhoneActions(orch.engine, authorizer, acknowledger, people, store, windows, paused)
        phone.unanswered = notifier.call_unanswered
        phone.refusals = refusals
        rt.extra_routes.extend(
            twilio_routes(
                settings.twilio_auth_token,
                config.orchestrator.base_url,
                on_whatsapp=phone.whatsapp,
                on_gather=phone.gather,
                on_status=phone.status,
                on_refused=refusals.webhook_refusal("twilio"),
            )
        )
    if settings.slack_signing_secret:
        slack = SlackActions(orch.engine, authorizer, acknowledger, people, store, paused)
        rt.slack = SlackInteractions(
            settings.slack_signing_secret,
            clock,
            Responder(http, settings.slack_hooks_base),
            on_press=slack.press,
            on_refused=refusals.webhook_refusal("slack"),
        )
        rt.extra_routes.extend(rt.slack.routes())
    telegram = channels.get("telegram")
    if isinstance(telegram, TelegramChannel) and settings.telegram_webhook_secret:

        async def on_callback(user_id: str, data: str) -> str:
            if orch.mode is Mode.EMERGENCY:  # as the web confirm: refuse before touching anything
                return PAUSED_TEXT
            if data.startswith("ack:"):
                return await telegram_ack(user_id, data.removeprefix("ack:"))
            if data.startswith("trust:"):
                tenants = [t.id for t in config.tenants]
                return await record_theory_choice(
                    orch.engine, registry, tenants, "telegram", user_id, data
                )
            result = await authorizer.confirm_identity("telegram", user_id, data)
            return result.message

        async def telegram_ack(user_id: str, ref: str) -> str:
            """As the approve button: the chat user is mapped to their person first."""
            link = await link_ref(store, ref)
            person = (
                await people.find_by_channel(link.tenant_id, "telegram", user_id) if link else None
            )
            actor = person.actor if person is not None else engineer_identity("telegram", user_id)
            return (await acknowledger.by_ref(ref, actor, "telegram")).message

        rt.extra_routes.extend(
            telegram_webhook_routes(
                settings.telegram_webhook_secret,
                telegram,
                on_callback,
                on_refused=refusals.webhook_refusal("telegram"),
            )
        )

    async def sweep() -> None:
        tenants = [t.id for t in config.tenants]
        await orch.pipeline.ask_unasked(tenants, grace_s=unasked_grace_s(config))
        await sweep_awaiting(authorizer, notifier, orch.engine, tenants)
        await executor.resume(tenants)

    orch.tick_hooks.append(sweep)
    return rt


def unasked_grace_s(config: Config) -> float:
    """How long the pipeline's own VALIDATED hook has to send links before a sweep does."""
    return max(10.0, 2 * config.orchestrator.loop_interval_s)


def _github_secret_for(config: Config) -> Callable[[str, str], Awaitable[bytes | None]]:
    async def lookup(tenant_id: str, service: str) -> bytes | None:
        if config.target(tenant_id, service) is None:
            return None
        t = config.tenant(tenant_id)
        if t is None or not t.github_secret_env:
            return None
        value = os.environ.get(t.github_secret_env, "")
        return value.encode() or None

    return lookup


async def sync_tenants(rt: Runtime) -> None:
    """Make the store know every configured tenant and its approver list."""
    for t in rt.config.tenants:
        if not await rt.registry.exists(t.id):
            rt.new_keys[t.id] = await rt.registry.add(t.id, t.name or t.id)
        by_channel: dict[str, list[str]] = {}
        for a in t.approvers:
            by_channel.setdefault(a.channel, []).append(a.identity or a.address)
        for channel, ids in by_channel.items():
            await rt.registry.set_approvers(t.id, channel, ids)
        # The config's people (and those derived from flat approvers); changes are ledgered.
        if rt.notifier.people is not None:
            await rt.notifier.people.sync(t.id, t.persons(), actor="config")
        if rt.oncall is not None:  # config differences are ledgered (actor "config")
            await rt.oncall.sync_config(t.id, t.on_call())


async def flush_refusals(rt: Runtime) -> None:
    """Graceful shutdown: every open refusal window's count becomes its summary entry now;
    if the ledger cannot take them, the log says how many are lost."""
    if rt.refusals is None:
        return
    try:
        await rt.refusals.flush_all()
    except LedgerError as exc:
        left = rt.refusals.status().get("pending", 0)
        log.error(
            "%d coalesced refusals could not be ledgered at shutdown (%s); their copy in the "
            "store is ledgered by the next process",
            left,
            exc,
        )
    if rt.refusal_keeper is not None:
        try:
            await rt.refusal_keeper.save()  # nothing left: the copy goes
        except StoreUnavailable:
            log.error("could not update the store's copy of the counted refusals")


async def adopt_refusals(rt: Runtime) -> None:
    """Start-up: ledger what processes that died counted (a SIGKILL mid-attack)."""
    if rt.refusal_keeper is None:
        return
    try:
        await rt.refusal_keeper.adopt()
    except (LedgerError, StoreUnavailable) as exc:  # the loop tick tries again
        log.error("could not ledger the refusals counted by a dead process yet: %s", exc)


def create_app(rt: Runtime, *, run_loop: bool = True) -> Starlette:
    api = OrchestratorAPI(
        rt.orch, rt.registry, rt.settings.admin_key or None, rt.checkpoint_signer, rt.refusals
    )

    async def healthz(_: Request) -> JSONResponse:
        # EMERGENCY is not healthy: nothing can be recorded, so nothing may move. Load
        # balancers and probes see a 503; the body names what is down and why, in the
        # stores' classified words only ("disk full"), never paths or addresses.
        orch = rt.orch
        emergency = orch.mode is Mode.EMERGENCY
        body: dict[str, Any] = {"ok": not emergency, "mode": orch.mode.value}
        if orch.mode_reasons:
            body["down"] = orch.mode_reasons
            body["causes"] = orch.health.short_causes()
        if orch.blind:
            body["blind_targets"] = len(orch.blind)
        return JSONResponse(body, status_code=503 if emergency else 200)

    def approvals_paused() -> str | None:
        if rt.orch.mode is Mode.EMERGENCY:
            return "orchestrator in EMERGENCY: " + ", ".join(rt.orch.mode_reasons)
        return None

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await sync_tenants(rt)
        await adopt_refusals(rt)
        for tenant_id in rt.new_keys:
            # Keys never go to logs: the operator mints one on their own terminal.
            log.warning(
                "tenant %s is new and has no usable API key yet: run "
                "`alertengine tenant rotate-key %s` to get one",
                tenant_id,
                tenant_id,
            )
        # A crash between AUTHORIZED and EXECUTED: finish it now, exactly once.
        tenants = [t.id for t in rt.config.tenants]
        await rt.executor.resume(tenants)
        # A DLQ replay (or a crash) while we were down left someone to ask: ask them now.
        await rt.orch.pipeline.ask_unasked(tenants, grace_s=unasked_grace_s(rt.config))
        loop_task = asyncio.create_task(rt.orch.run()) if run_loop else None
        try:
            yield
        finally:
            rt.orch.stop()
            if loop_task is not None:
                await loop_task
            await rt.drain()
            await flush_refusals(rt)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        *api.routes(),
        *approval_routes(rt.authorizer, unavailable=approvals_paused),
        *(passkey_routes(rt.authorizer.passkeys, rt.authorizer) if rt.authorizer.passkeys else []),
        *rt.extra_routes,
    ]
    if rt.refusals is not None:

        async def metrics_refused(p: Principal, request: Request) -> None:
            await api.ledger_refusal(p, "_system", None, request)

        routes.append(
            metrics_route(
                [rt.refusals.collector()], api.principal, metrics_refused, api.unauthenticated
            )
        )
    document = openapi_document([r.path for r in routes if isinstance(r, Route)] + [OPENAPI])

    async def openapi(_: Request) -> JSONResponse:
        return JSONResponse(document)

    routes.append(Route(OPENAPI, openapi, methods=["GET"]))
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        # Bodies are bounded and read whole before any route runs (docs/orchestrator.md).
        middleware=[
            # Outermost: the refusals a request causes can name its client address.
            Middleware(RequestOrigin),
            Middleware(BodyLimit, limits=BODY_LIMITS, default=DEFAULT_BODY_LIMIT),
        ],
        exception_handlers={
            HTTPException: http_exception_handler,
            StoreUnavailable: unavailable_handler,
            LedgerError: unavailable_handler,
        },
    )
