"""Slack incoming webhooks: Block Kit header + section + buttons.

Without interactivity (no signing secret), only link buttons are sent: "Approve fix" and
"I'm on it" open our pages. With it (``interactive=True``: the Slack app that owns the
incoming webhook has an Interactivity Request URL pointing at ``/slack/interactions`` and
``SLACK_SIGNING_SECRET`` is set), the message's in-chat buttons become Block Kit buttons
whose presses Slack POSTs to us: **Approve** (``action_id="ae_approve"``) and **I'm on it**
(``action_id="ae_ack"``), each with the approval link's id (jti) as ``value``, the same ref
the Telegram and WhatsApp buttons carry. Link buttons stay beside them.

The webhook URL is itself a credential, so it never appears in an error. Every mrkdwn field
(the section *and* the top-level ``text`` fallback, which Slack shows in notifications and
parses just the same) is escaped: a commit message like ``<https://evil|Approve> <!channel>``
must stay text, not become a link or a channel-wide ping.
"""

from __future__ import annotations

from typing import Any

import httpx

from alertengine.notify.channel import DeliveryResult, is_permanent, transport_failure
from alertengine.notify.render import Button, RenderedMessage

#: Slack caps a section's text at 3000 characters.
MAX_SECTION = 3000
#: Slack caps a button's ``value`` at 2000 characters and its ``action_id`` at 255.
MAX_VALUE = 2000

#: The action ids of our interactive buttons (``value`` = the approval link's jti).
ACTION_APPROVE = "ae_approve"
ACTION_ACK = "ae_ack"
#: A rendered message's callback data prefix -> the Slack action it becomes.
_CALLBACK_ACTIONS = {"ae": ACTION_APPROVE, "ack": ACTION_ACK}


def _mrkdwn_escape(text: str) -> str:
    """Slack's three control characters, as its docs say to escape them (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _button(label: str, action_id: str, **extra: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label[:75], "emoji": True},
        "action_id": action_id,
        **extra,
    }


def _interactive(b: Button) -> dict[str, Any] | None:
    """The Slack button of an in-chat (callback) button we can handle, else None (e.g. the
    Dissent Alert's "Trust Theory" buttons, which stay Telegram-only)."""
    prefix, _, ref = b.callback_data.partition(":")
    action_id = _CALLBACK_ACTIONS.get(prefix)
    if action_id is None or not ref or len(ref) > MAX_VALUE:
        return None
    style = {"style": "primary"} if action_id == ACTION_APPROVE else {}
    return _button(b.label, action_id, value=ref, **style)


def blocks(msg: RenderedMessage, *, interactive: bool = False) -> list[dict[str, Any]]:
    body = msg.text.split("\n", 1)[1] if "\n" in msg.text else ""
    section = _mrkdwn_escape(body.strip())[:MAX_SECTION]
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": msg.title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": section or " "}},
    ]
    elements: list[dict[str, Any]] = []
    links = 0
    # With buttons that act in Slack, those stand out; the links (the pages) are secondary.
    link_style = {} if interactive else {"style": "primary"}
    for b in msg.buttons:
        if b.url:
            elements.append(_button(b.label, f"link-{links}", url=b.url, **link_style))
            links += 1
        elif interactive and (button := _interactive(b)) is not None:
            elements.append(button)
    if elements:
        out.append({"type": "actions", "elements": elements})
    return out


class SlackWebhookChannel:
    name = "slack"

    def __init__(
        self, webhook_url: str, client: httpx.AsyncClient, *, interactive: bool = False
    ) -> None:
        if not webhook_url:
            raise ValueError("a Slack webhook URL is required")
        self._url = webhook_url
        self._client = client
        #: Presses reach ``/slack/interactions`` (a signing secret is configured): the
        #: message carries Approve / I'm on it buttons that act in Slack.
        self.interactive = interactive

    async def send(self, recipient: str, msg: RenderedMessage) -> DeliveryResult:
        """``recipient`` is informational: an incoming webhook posts to its own channel."""
        payload = {
            "text": _mrkdwn_escape(msg.text),
            "blocks": blocks(msg, interactive=self.interactive),
        }
        try:
            r = await self._client.post(self._url, json=payload)
        except httpx.HTTPError as exc:
            return transport_failure(self.name, exc)
        answer = r.text.strip()[:200]
        if r.status_code == 200 and answer == "ok":
            return DeliveryResult(ok=True, channel=self.name, status=200)
        retry = r.headers.get("retry-after")
        return DeliveryResult(
            ok=False,
            channel=self.name,
            status=r.status_code,
            retry_after_s=float(retry) if retry and retry.isdigit() else None,
            error=f"Slack {r.status_code}: {answer or 'error'}",
            permanent=is_permanent(r.status_code),
        )
