"""WhatsApp and voice through Twilio: the Messages API and the Calls API (form-encoded, HTTP
basic auth), and the ``X-Twilio-Signature`` every Twilio webhook carries.

The recipient is a phone number, which must never reach the ledger: Twilio's error messages
often quote it ("The 'To' number +2637… is not a valid phone number"), so every number in an
error is replaced before the error leaves this module (delivery errors are ledgered).

WhatsApp delivers a business-initiated message only as an approved template outside the
24-hour customer-service window, so an alert goes out as the tenant's Content API template
(``ContentSid`` + ``ContentVariables``) with quick-reply buttons whose payloads name the
approval link (``approve:<jti>``, ``ack:<jti>``, ``details:<jti>``); free-form ``Body`` only
while the person's window is open (they wrote to us in the last 24 hours).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import httpx

from alertengine.clock import Clock
from alertengine.notify.channel import DeliveryResult, is_permanent, transport_failure
from alertengine.notify.render import RenderedMessage
from alertengine.stores.base import StateStore

TWILIO_API = "https://api.twilio.com"
#: WhatsApp bodies are capped at 1600 characters by Twilio.
MAX_BODY = 1600
#: WhatsApp's customer-service window: free-form messages only this long after the person's
#: last message to us.
SESSION_WINDOW_S = 24 * 3600.0
#: A template variable is best kept short (Twilio recommends < 250 characters).
MAX_VARIABLE = 250
SIGNATURE_HEADER = "x-twilio-signature"
#: Last inbound message time per WhatsApp number (keyed by a hash, never the number).
WINDOWS = "whatsapp_windows"
#: The last alert's ref per WhatsApp number (same keyed hash).
LAST_REF = "whatsapp_last_ref"


#: ``+263 77 123 4567``, ``whatsapp:+26377…``, ``263771234567``: seven or more digits in a row,
#: possibly grouped by spaces, dots or dashes.
_PHONE = re.compile(r"(?:whatsapp:)?\+?\d(?:[\s.\-()]?\d){6,}")


def redact_numbers(text: str) -> str:
    """Phone-number-like runs replaced with ``<number>`` (error codes have at most 5 digits)."""
    return _PHONE.sub("<number>", text)


def _whatsapp(number: str) -> str:
    number = number.strip()
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


def bare_number(address: str) -> str:
    """``whatsapp:+263 77…`` -> ``+26377…`` (as the person registry stores it)."""
    t = address.strip().lower().removeprefix("whatsapp:").strip()
    return "".join(c for c in t if c not in " -.()")


# -- signatures ---------------------------------------------------------------------------


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1, keyed with the auth token, of the
    full URL followed by every POST parameter sorted by name, each name then its value (a
    repeated name: its values sorted too, as Twilio's own validators do)."""
    data = url + "".join(k + v for k, v in sorted(params))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def signature_ok(auth_token: str, url: str, params: Iterable[tuple[str, str]], given: str) -> bool:
    if not auth_token or not given:
        return False
    expected = signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), given.strip().encode())


# -- the 24-hour window -------------------------------------------------------------------


class SessionWindows:
    """When each WhatsApp number last wrote to us (state store; the key is a keyed hash)."""

    def __init__(self, store: StateStore, clock: Clock, key: bytes) -> None:
        self._store, self._clock, self._key = store, clock, key

    def key_of(self, number: str) -> str:
        return hmac.new(self._key, bare_number(number).encode(), hashlib.sha256).hexdigest()[:32]

    async def inbound(self, number: str) -> None:
        await self._store.put(WINDOWS, self.key_of(number), {"at": self._clock.now()})

    async def sent(self, number: str, ref: str) -> None:
        """The last alert a number got, so a typed "approve" knows which incident it means."""
        if ref:
            await self._store.put(LAST_REF, self.key_of(number), {"ref": ref})

    async def is_open(self, number: str) -> bool:
        doc = await self._store.get(WINDOWS, self.key_of(number))
        at = doc.get("at") if doc else None
        return isinstance(at, (int, float)) and self._clock.now() - at < SESSION_WINDOW_S


# -- the REST client ----------------------------------------------------------------------


@dataclass(frozen=True)
class WhatsAppTemplate:
    """A tenant's approved Content API template: ``{{1}}`` the title, ``{{2}}`` a short
    summary, ``{{3}}`` the reference the quick-reply ids carry (``approve:{{3}}``…)."""

    content_sid: str


TemplateFor = Callable[[str], WhatsAppTemplate | None]


def template_variables(msg: RenderedMessage) -> dict[str, str]:
    def clip(t: str) -> str:
        t = " ".join(t.split()) or "-"
        return t if len(t) <= MAX_VARIABLE else t[: MAX_VARIABLE - 1] + "…"

    return {"1": clip(msg.title), "2": clip(msg.summary or msg.title), "3": msg.ref or "-"}


class _TwilioREST:
    def __init__(
        self, account_sid: str, auth_token: str, client: httpx.AsyncClient, base_url: str
    ) -> None:
        self._sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._client = client
        self._base = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}"

    async def post(self, channel: str, resource: str, form: dict[str, str]) -> DeliveryResult:
        try:
            r = await self._client.post(f"{self._base}/{resource}", data=form, auth=self._auth)
        except httpx.HTTPError as exc:
            return transport_failure(channel, exc)
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.status_code in (200, 201) and isinstance(data, dict) and data.get("sid"):
            return DeliveryResult(
                ok=True, channel=channel, status=r.status_code, provider_message_id=str(data["sid"])
            )
        code = data.get("code") if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        retry = r.headers.get("retry-after")
        return DeliveryResult(
            ok=False,
            channel=channel,
            status=r.status_code,
            retry_after_s=float(retry) if retry and retry.isdigit() else None,
            error=redact_numbers(f"Twilio {r.status_code}: {code or '-'} {message or 'error'}"),
            permanent=is_permanent(r.status_code),
        )


class TwilioWhatsAppChannel:
    name = "whatsapp"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_: str,
        client: httpx.AsyncClient,
        base_url: str = TWILIO_API,
        *,
        template_for: TemplateFor | None = None,
        windows: SessionWindows | None = None,
    ) -> None:
        if not (account_sid and auth_token and from_):
            raise ValueError("Twilio needs an account SID, an auth token and a From number")
        self._rest = _TwilioREST(account_sid, auth_token, client, base_url)
        self._from = _whatsapp(from_)
        self._template_for = template_for
        self._windows = windows

    async def send(self, recipient: str, msg: RenderedMessage) -> DeliveryResult:
        form = {"To": _whatsapp(recipient), "From": self._from}
        template = self._template_for(msg.tenant_id) if self._template_for else None
        in_window = self._windows is not None and await self._windows.is_open(recipient)
        if template is not None and msg.kind != "notice" and not in_window:
            # Outside the window only an approved template arrives; its buttons carry the ref.
            form["ContentSid"] = template.content_sid
            form["ContentVariables"] = json.dumps(template_variables(msg))
        else:
            # Inside the window (or no template configured): the text, with the link in it.
            text = msg.text
            form["Body"] = text if len(text) <= MAX_BODY else text[: MAX_BODY - 1] + "…"
        result = await self._rest.post(self.name, "Messages.json", form)
        if result.ok and self._windows is not None and msg.kind != "notice":
            await self._windows.sent(recipient, msg.ref)
        return result


def voice_twiml(msg: RenderedMessage, gather_url: str) -> str:
    """What the call says: the incident in a few words, check the phone, press 1 to
    acknowledge. Nothing on a call approves."""
    words = msg.summary or msg.title
    say = (
        f"AlertEngine. {words}. Check your phone to decide. "
        "Press 1 to acknowledge that you are on it."
    )
    return (
        "<Response>"
        f'<Gather numDigits="1" method="POST" action={quoteattr(gather_url)}>'
        f"<Say>{escape(say)}</Say>"
        "</Gather>"
        "<Say>No key pressed. Goodbye.</Say>"
        "</Response>"
    )


class TwilioVoiceChannel:
    """A phone call (Calls API with inline ``Twiml``); the keypad and the call's status come
    back to ``/twilio/voice/*`` on ``public_base`` as signed Twilio webhooks."""

    name = "voice"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_: str,
        client: httpx.AsyncClient,
        public_base: str,
        base_url: str = TWILIO_API,
    ) -> None:
        if not (account_sid and auth_token and from_):
            raise ValueError("Twilio voice needs an account SID, an auth token and a From number")
        self._rest = _TwilioREST(account_sid, auth_token, client, base_url)
        self._from = from_.strip()
        self._public = public_base.rstrip("/")

    async def send(self, recipient: str, msg: RenderedMessage) -> DeliveryResult:
        if msg.kind == "notice":
            # A call for "Alice is on it" would wake someone for nothing.
            return DeliveryResult(ok=True, channel=self.name, status=None)
        ref = msg.ref or "-"
        form = {
            "To": bare_number(recipient),
            "From": self._from,
            "Twiml": voice_twiml(msg, f"{self._public}/twilio/voice/gather?ref={ref}"),
            "StatusCallback": f"{self._public}/twilio/voice/status?ref={ref}",
            "StatusCallbackMethod": "POST",
            # One value per event name, as Twilio documents (space separated is accepted).
            "StatusCallbackEvent": "answered completed",
        }
        return await self._rest.post(self.name, "Calls.json", form)
