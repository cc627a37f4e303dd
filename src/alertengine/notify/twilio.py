"""WhatsApp through Twilio's Messages API (form-encoded, HTTP basic auth).

The recipient is a phone number, which must never reach the ledger: Twilio's error messages
often quote it ("The 'To' number +2637… is not a valid phone number"), so every number in an
error is replaced before the error leaves this module (delivery errors are ledgered).
"""

from __future__ import annotations

import re

import httpx

from alertengine.notify.channel import DeliveryResult, is_permanent, transport_failure
from alertengine.notify.render import RenderedMessage

TWILIO_API = "https://api.twilio.com"
#: WhatsApp bodies are capped at 1600 characters by Twilio.
MAX_BODY = 1600


#: ``+263 77 123 4567``, ``whatsapp:+26377…``, ``263771234567``: seven or more digits in a row,
#: possibly grouped by spaces, dots or dashes.
_PHONE = re.compile(r"(?:whatsapp:)?\+?\d(?:[\s.\-()]?\d){6,}")


def redact_numbers(text: str) -> str:
    """Phone-number-like runs replaced with ``<number>`` (error codes have at most 5 digits)."""
    return _PHONE.sub("<number>", text)


def _whatsapp(number: str) -> str:
    number = number.strip()
    return number if number.startswith("whatsapp:") else f"whatsapp:{number}"


class TwilioWhatsAppChannel:
    name = "whatsapp"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_: str,
        client: httpx.AsyncClient,
        base_url: str = TWILIO_API,
    ) -> None:
        if not (account_sid and auth_token and from_):
            raise ValueError("Twilio needs an account SID, an auth token and a From number")
        self._sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._from = _whatsapp(from_)
        self._client = client
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"

    async def send(self, recipient: str, msg: RenderedMessage) -> DeliveryResult:
        # WhatsApp has no inline buttons without templates: the link is in the text.
        body = msg.text if len(msg.text) <= MAX_BODY else msg.text[: MAX_BODY - 1] + "…"
        form = {"To": _whatsapp(recipient), "From": self._from, "Body": body}
        try:
            r = await self._client.post(self._url, data=form, auth=self._auth)
        except httpx.HTTPError as exc:
            return transport_failure(self.name, exc)
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.status_code in (200, 201) and isinstance(data, dict) and data.get("sid"):
            return DeliveryResult(
                ok=True,
                channel=self.name,
                status=r.status_code,
                provider_message_id=str(data["sid"]),
            )
        code = data.get("code") if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        retry = r.headers.get("retry-after")
        return DeliveryResult(
            ok=False,
            channel=self.name,
            status=r.status_code,
            retry_after_s=float(retry) if retry and retry.isdigit() else None,
            error=redact_numbers(f"Twilio {r.status_code}: {code or '-'} {message or 'error'}"),
            permanent=is_permanent(r.status_code),
        )
