"""The channel contract: send one rendered message to one recipient, never raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from alertengine.notify.render import RenderedMessage

#: HTTP statuses worth retrying: rate limits, timeouts and server-side trouble.
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    channel: str
    status: int | None = None
    provider_message_id: str | None = None
    #: The provider asked us to wait this long before trying again.
    retry_after_s: float | None = None
    #: Free of secrets (tokens, auth, webhook URLs) by construction.
    error: str = ""
    #: Retrying cannot help (bad credentials, unknown chat, invalid payload).
    permanent: bool = False


def transport_failure(channel: str, exc: BaseException) -> DeliveryResult:
    """A network-level failure. Only the exception *type*: httpx messages can carry URLs,
    and some providers (Telegram, Slack) put credentials in the URL."""
    return DeliveryResult(ok=False, channel=channel, error=f"transport error: {type(exc).__name__}")


def is_permanent(status: int) -> bool:
    return status not in TRANSIENT_STATUSES and 400 <= status < 500


class Channel(Protocol):
    name: str

    async def send(self, recipient: str, msg: RenderedMessage) -> DeliveryResult:
        """Deliver ``msg`` to ``recipient`` (a chat id, phone number, …). Never raises."""
        ...
