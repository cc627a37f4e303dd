"""Wire person sign-in into a running orchestrator: the link goes out through the notifier's
own channels (the ones approval links use), every delivery and step is ledgered through the
engine (kind ``signin``), and the routes are mounted by the runtime."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from alertengine.notify.delivery import DeliveryEvent, Dispatcher, Recipient
from alertengine.notify.render import Button, RenderedMessage
from alertengine.people.model import Person
from alertengine.people.signin import Record, Send, SignIns
from alertengine.people.signin_prune import SignInPruner
from alertengine.people.signin_routes import SignInRoutes
from alertengine.refusals.budget import RefusalKey
from alertengine.refusals.gate import current_path
from alertengine.tenants import SYSTEM_TENANT

if TYPE_CHECKING:
    from alertengine.engine import IncidentEngine
    from alertengine.orchestrator.api import OrchestratorAPI
    from alertengine.orchestrator.runtime import Runtime
    from alertengine.orchestrator.wiring import Notifier


def engine_signin_record(engine: IncidentEngine) -> Record:
    async def record(
        tenant_id: str, kind: str, actor: str, decision: str, reason: str, data: Mapping[str, Any]
    ) -> None:
        await engine.record(
            tenant_id, None, kind=kind, actor=actor, decision=decision, reason=reason,
            data=dict(data),
        )  # fmt: skip

    return record


def signin_message(tenant_id: str, person: Person, url: str, user_code: str) -> RenderedMessage:
    """A notice with one URL button (the page asks before anything changes)."""
    title = f"Sign-in request for {person.name} ({tenant_id})"
    text = (
        f"Someone with {tenant_id}'s credentials asks to sign in to AlertEngine as you. If it "
        f"is you, check your screen shows {user_code}, then open: {url} . If it is not you, "
        "open the link and press Not me."
    )
    body = (
        f"<b>{html.escape(title)}</b>\nSomeone with {html.escape(tenant_id)}'s credentials asks "
        f"to sign in to AlertEngine as you. Your screen should show <code>{user_code}</code>. "
        "Not you? Open and press <i>Not me</i>."
    )
    return RenderedMessage(
        tenant_id,
        "",
        "notice",
        title,
        text,
        body,
        buttons=(Button("Review sign-in request", url=url),),
        summary=title,
    )


def link_sender(notifier: Notifier, record: Record) -> Send:
    """Send the link on each of the person's channels that can carry one; ledger each try."""

    async def on_event(ev: DeliveryEvent) -> None:
        ok = ev.ok
        why = "" if ok else f": {ev.error or ev.skipped or 'failed'}"
        await record(
            ev.tenant_id,
            "signin",
            "orchestrator",
            "link delivered" if ok else "link not delivered",
            f"sign-in link {'sent' if ok else 'NOT sent'} to {ev.identity} via {ev.channel}{why}",
            {
                "channel": ev.channel,
                "identity": ev.identity,
                "attempt": ev.attempt,
                "ok": ok,
                "status": ev.status,
                "error": ev.error,
                "skipped": ev.skipped,
            },
        )

    dispatcher = Dispatcher(notifier.channels, on_event, notifier.clock, retries=1)

    async def send(tenant_id: str, person: Person, url: str, user_code: str) -> list[str]:
        msg = signin_message(tenant_id, person, url, user_code)
        sent: list[str] = []
        for ch in person.channels:
            if ch.kind == "voice":
                continue
            r = Recipient(ch.kind, ch.address, person.actor)
            outcome = await dispatcher.deliver(tenant_id, "", [r], msg)
            if outcome.delivered and ch.kind not in sent:
                sent.append(ch.kind)
        return sent

    return send


def wire_signin(rt: Runtime, api: OrchestratorAPI) -> SignInRoutes | None:
    """The sign-in service (``rt.signins``) and its routes; None without a person registry."""
    people = rt.notifier.people
    if people is None or rt.acknowledger is None:
        return None
    record = engine_signin_record(rt.engine)
    rt.signins = SignIns(rt.store, rt.clock, people, record, link_sender(rt.notifier, record))
    people.removal_hooks.append(rt.signins.person_removed)
    rt.orch.tick_hooks.append(SignInPruner(rt.store, rt.clock).tick)  # under the sweep lease
    gate = rt.refusals
    if gate is not None:

        async def anonymous(why: str, write: Callable[[], Awaitable[None]]) -> None:
            await gate.refuse(RefusalKey.of(SYSTEM_TENANT, current_path() or "-", why), write)

        rt.signins.anonymous = anonymous

    def paused() -> str | None:
        return "EMERGENCY" if rt.orch.mode.value == "EMERGENCY" else None

    return SignInRoutes(
        rt.signins, api, rt.engine, rt.acknowledger, rt.config.orchestrator.base_url, paused
    )
