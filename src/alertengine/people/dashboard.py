"""The dashboard's People page: a tenant's people and channels, with the CLI's powers.

``GET /dashboard/people`` lists the session tenant's people in escalation order: each channel
with its address partly masked (phone numbers as ``+26377•••4567``), whether the deployment
can send on it (:meth:`Notifier.why_unreachable`, the same answer as ``check-config``), GitHub
logins, enrolled passkeys, and who is on call now; plus the facts that decide whether a
WhatsApp or voice channel would work (Twilio configured, the tenant's Content SID, a public
base URL for Twilio's callbacks), never a secret.

The forms (add a person, add or remove a channel, remove a person) call the same
:class:`PersonRegistry` as ``alertengine person …``, so validation and messages are the CLI's
(a :class:`PersonError` is shown on the page with 400) and every change is ledgered (kind
``people``, channels as kind + keyed marker) with the session's actor. Forms are guarded by
:class:`~alertengine.orchestrator.forms.FormGuard`. The page edits only the session's tenant:
a form naming another tenant is refused (403), and a person of another tenant is answered
like a missing one (404, so person ids of other tenants cannot be probed); both attempts are
ledgered as dashboard refusals under the tenant reached for.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from alertengine.orchestrator.forms import FormGuard
from alertengine.passkeys.credentials import CredentialStore
from alertengine.people.model import (
    CHANNEL_KINDS,
    Channel,
    Person,
    PersonError,
    person_id_problem,
)
from alertengine.people.registry import PersonRegistry

if TYPE_CHECKING:
    from alertengine.orchestrator.dashboard import Dashboard, Session

MAX_FORM_BYTES = 8_192
PHONE_KINDS = ("whatsapp", "voice")
#: What each kind's address is, for the form's hints.
ADDRESS_HINTS = {
    "telegram": "numeric user or chat id (or @name)",
    "whatsapp": "phone number, E.164 (+447700900000)",
    "voice": "phone number, E.164 (+447700900000)",
    "slack": "user id (U…/W…) or #channel/@name",
    "web": "e-mail address or handle",
    "webhook": "http(s) URL to POST to",
}


# --- pure helpers ---------------------------------------------------------------------------


def masked_address(channel: Channel) -> str:
    """Enough of an address to recognise it, not to copy it: a phone number keeps its
    country/operator prefix and last digits; a webhook URL only its origin (a path or query
    may hold a token). Other addresses (chat ids, Slack ids, handles) are shown whole."""
    a = channel.address
    if channel.kind in PHONE_KINDS:
        head, tail = (6, 4) if len(a) >= 13 else (3, 2)
        return f"{a[:head]}•••{a[-tail:]}"
    if channel.kind == "webhook":
        parts = urlsplit(a)
        rest = "/…" if (parts.path not in ("", "/") or parts.query) else ""
        return f"{parts.scheme}://{parts.hostname or ''}{rest}"
    return a


def callback_problem(base_url: str) -> str:
    """Why Twilio could not call ``base_url`` back ("" when nothing says it cannot)."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{base_url} names this machine: Twilio cannot call it back"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return ""  # a DNS name: whether it resolves publicly is the deployment's to know
    if not ip.is_global:  # loopback, private, link-local, shared (CGNAT), documentation…
        return f"{base_url} is not a public address: Twilio cannot call it back"
    return ""


@dataclass(frozen=True, slots=True)
class Fact:
    """One read-only fact about a channel kind's configuration, shown on the page."""

    id: str
    label: str
    ok: bool
    text: str


def phone_facts(
    *,
    whatsapp_why: str,
    voice_why: str,
    content_sid: str,
    webhooks_mounted: bool,
    base_url: str,
) -> list[Fact]:
    """Why a WhatsApp or voice channel would (not) work, from the deployment's settings."""
    callback = callback_problem(base_url)
    if content_sid:
        template = Fact(
            "wa-template",
            "WhatsApp template",
            True,
            f"Content SID set (…{content_sid[-4:]}): alerts go as the approved template with "
            "Approve / Acknowledge / Details quick replies",
        )
    else:
        template = Fact(
            "wa-template",
            "WhatsApp template",
            False,
            "no Content SID (tenants.whatsapp_content_sid): alerts go as free-form text, which "
            "WhatsApp delivers only within 24 hours of the person's last message",
        )
    inbound_ok = webhooks_mounted and not callback
    if not webhooks_mounted:
        inbound = (
            "TWILIO_AUTH_TOKEN not set: Twilio's callbacks cannot be verified, so none is taken"
        )
    elif callback:
        inbound = callback
    else:
        inbound = f"signed callbacks to {base_url}/twilio/whatsapp and {base_url}/twilio/voice/*"
    return [
        Fact("wa-channel", "WhatsApp sending", not whatsapp_why, whatsapp_why or "configured"),
        template,
        Fact("voice-channel", "Voice calls", not voice_why, voice_why or "configured"),
        Fact(
            "callbacks",
            "Quick replies, key presses and call outcomes",
            inbound_ok,
            inbound,
        ),
    ]


# --- the page -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelRow:
    kind: str
    shown: str
    user_id: str
    why_unreachable: str
    ref: str


@dataclass(frozen=True, slots=True)
class PersonRow:
    id: str
    name: str
    on_call: bool
    channels: list[ChannelRow]
    github: list[str]
    passkeys: int


def _github(text: str) -> tuple[str, ...]:
    return tuple(x for x in text.replace(",", " ").split() if x)


class _Missing(PersonError):
    """The form names no person of the session's tenant (404)."""


class PeoplePages:
    def __init__(
        self, dash: Dashboard, people: PersonRegistry, session_key: bytes, base: str
    ) -> None:
        self.dash = dash
        self.base = base
        self.people = people
        self.forms = FormGuard(session_key, max_bytes=MAX_FORM_BYTES, max_fields=16)
        self._ref_key = hmac.new(session_key, b"alertengine/dashboard-channel-ref/v1", "sha256")

    def channel_ref(self, tenant_id: str, person_id: str, c: Channel) -> str:
        """Names a channel in the remove form without putting its address in the page."""
        mac = self._ref_key.copy()
        mac.update(f"{tenant_id}\x00{person_id}\x00{c.kind}\x00{c.address}".encode())
        return mac.hexdigest()[:24]

    # -- reads ------------------------------------------------------------------------------

    async def page(
        self,
        request: Request,
        s: Session,
        *,
        error: str = "",
        status: int = 200,
        values: dict[str, str] | None = None,
    ) -> Response:
        rt = self.dash.rt
        tenant = s.tenant_id
        now = datetime.fromtimestamp(rt.clock.now(), timezone.utc)
        on_call = await rt.oncall.who(tenant, now) if rt.oncall is not None else []
        creds = await CredentialStore(rt.store).of_person(tenant, None, active_only=True)
        passkeys = Counter(c.person_id for c in creds)
        why = rt.notifier.why_unreachable
        rows = [
            PersonRow(
                p.id,
                p.name,
                p.id in on_call,
                [
                    ChannelRow(
                        c.kind,
                        masked_address(c),
                        c.user_id,
                        why(c.kind),
                        self.channel_ref(tenant, p.id, c),
                    )
                    for c in p.channels
                ],
                list(p.github_logins),
                passkeys[p.id],
            )
            for p in await self.people.list(tenant)
        ]
        tc = rt.config.tenant(tenant)
        facts = phone_facts(
            whatsapp_why=why("whatsapp"),
            voice_why=why("voice"),
            content_sid=tc.whatsapp_content_sid if tc is not None else "",
            webhooks_mounted=bool(rt.settings.twilio_auth_token),
            base_url=rt.config.orchestrator.base_url,
        )
        return self.dash.page(
            request,
            "people.html",
            status,
            people=rows,
            on_call=on_call,
            facts=facts,
            kinds=CHANNEL_KINDS,
            hints=ADDRESS_HINTS,
            error=error,
            values=values or {},
            csrf=self.forms.token(request),
            **self.dash._context(s),
        )

    async def show(self, request: Request, s: Session) -> Response:
        return await self.page(request, s)

    # -- the tenant and person a form names -------------------------------------------------

    async def _form(self, request: Request, s: Session) -> dict[str, str]:
        """The form, refused (403, ledgered) when it names a tenant other than the session's."""
        form = await self.forms.read(request)
        named = form.get("tenant", "").strip() or s.tenant_id
        if named != s.tenant_id:
            exists = await self.dash.rt.registry.exists(named)
            await self.dash._ledger_refusal(s, named if exists else s.tenant_id, None, request)
            raise HTTPException(403, f"this session manages tenant {s.tenant_id!r}'s people only")
        return form

    async def _person(self, request: Request, s: Session, person_id: str) -> Person:
        """The session tenant's person; another tenant's is refused as missing, ledgered."""
        if problem := person_id_problem(person_id):
            raise PersonError(problem)  # as the registry (and so the CLI) says it
        person = await self.people.get(s.tenant_id, person_id)
        if person is not None:
            return person
        for other in await self.dash.rt.registry.list():
            if other.tenant_id != s.tenant_id and await self.people.get(other.tenant_id, person_id):
                await self.dash._ledger_refusal(s, other.tenant_id, None, request)
                break
        raise _Missing(f"no person {person_id!r} in tenant {s.tenant_id!r}")

    # -- changes (each through the registry, so ledgered like the CLI's) --------------------

    async def _change(
        self,
        request: Request,
        s: Session,
        form: dict[str, str],
        change: Callable[[], Awaitable[None]],
    ) -> Response:
        try:
            await change()
        except _Missing as exc:
            return await self.page(request, s, error=str(exc), status=404)
        except PersonError as exc:
            return await self.page(request, s, error=str(exc), status=400, values=form)
        return RedirectResponse(f"{self.base}/people", status_code=303)

    async def add_person(self, request: Request, s: Session) -> Response:
        form = await self._form(request, s)

        async def go() -> None:
            kind, address = form.get("kind", ""), form.get("address", "")
            channels = (
                (Channel(kind, address, form.get("user_id", "")),)
                if kind.strip() or address.strip()
                else ()
            )
            person = Person(
                form.get("person", "").strip(),
                form.get("name", ""),
                channels,
                _github(form.get("github", "")),
            )
            await self.people.add(s.tenant_id, person, actor=s.actor)

        return await self._change(request, s, form, go)

    async def remove_person(self, request: Request, s: Session) -> Response:
        form = await self._form(request, s)

        async def go() -> None:
            person = await self._person(request, s, form.get("person", ""))
            await self.people.remove(s.tenant_id, person.id, actor=s.actor)

        return await self._change(request, s, form, go)

    async def add_channel(self, request: Request, s: Session) -> Response:
        form = await self._form(request, s)

        async def go() -> None:
            person = await self._person(request, s, form.get("person", ""))
            channel = Channel(
                form.get("kind", ""), form.get("address", ""), form.get("user_id", "")
            )
            await self.people.add_channel(s.tenant_id, person.id, channel, actor=s.actor)

        return await self._change(request, s, form, go)

    async def remove_channel(self, request: Request, s: Session) -> Response:
        """By ``ref`` (the row's button) or by ``address`` (typed, as the CLI takes it)."""
        form = await self._form(request, s)

        async def go() -> None:
            person = await self._person(request, s, form.get("person", ""))
            kind, ref = form.get("kind", ""), form.get("ref", "")
            address: str | None = form.get("address", "").strip() or None
            if ref:
                hit = [
                    c
                    for c in person.channels
                    if c.kind == kind
                    and hmac.compare_digest(ref, self.channel_ref(s.tenant_id, person.id, c))
                ]
                if not hit:  # the message the registry gives for a channel it does not have
                    raise PersonError(f"person {person.id!r} has no such {kind} channel")
                address = hit[0].address
            await self.people.remove_channel(s.tenant_id, person.id, kind, address, actor=s.actor)

        return await self._change(request, s, form, go)

    def routes(self) -> list[BaseRoute]:
        base, g = self.base, self.dash.guarded
        return [
            Route(f"{base}/people", g(self.show), methods=["GET"]),
            Route(f"{base}/people", g(self.add_person), methods=["POST"]),
            Route(f"{base}/people/remove", g(self.remove_person), methods=["POST"]),
            Route(f"{base}/people/channels", g(self.add_channel), methods=["POST"]),
            Route(f"{base}/people/channels/remove", g(self.remove_channel), methods=["POST"]),
        ]


def people_pages(dash: Dashboard, base: str) -> list[BaseRoute]:
    """The People page, when the runtime keeps a person registry (it always does)."""
    from alertengine.orchestrator.dashboard import session_key

    people = dash.rt.notifier.people
    if people is None:
        return []
    key = session_key(dash.rt.settings.alert_secret)
    return PeoplePages(dash, people, key, base).routes()
