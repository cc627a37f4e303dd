"""Slack incoming webhooks: Block Kit section + a link button.

The webhook URL is itself a credential, so it never appears in an error. Every mrkdwn field
(the section *and* the top-level ``text`` fallback, which Slack shows in notifications and
parses just the same) is escaped: a commit message like ``<https://evil|Approve> <!channel>``
must stay text, not become a link or a channel-wide ping.
"""

from __future__ import annotations

from typing import Any

import httpx

from alertengine.notify.channel import DeliveryResult, is_permanent, transport_failure
from alertengine.notify.render import RenderedMessage

#: Slack caps a section's text at 3000 characters.
MAX_SECTION = 3000


def _mrkdwn_escape(text: str) -> str:
    """Slack's three control characters, as its docs say to escape them (``&`` first)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def blocks(msg: RenderedMessage) -> list[dict[str, Any]]:
    body = msg.text.split("\n", 1)[1] if "\n" in msg.text else ""
    section = _mrkdwn_escape(body.strip())[:MAX_SECTION]
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": msg.title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": section or " "}},
    ]
    # Incoming webhooks cannot receive button callbacks: only link buttons are useful.
    links = [b for b in msg.buttons if b.url]
    if links:
        out.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": b.label[:75], "emoji": True},
                        "url": b.url,
                        "style": "primary",
                        "action_id": f"link-{i}",
                    }
                    for i, b in enumerate(links)
                ],
            }
        )
    return out


class SlackWebhookChannel:
    name = "slack"

    def __init__(self, webhook_url: str, client: httpx.AsyncClient) -> None:
        if not webhook_url:
            raise ValueError("a Slack webhook URL is required")
        self._url = webhook_url
        self._client = client

    async def send(self, recipient: str, msg: RenderedMessage) -> DeliveryResult:
        """``recipient`` is informational: an incoming webhook posts to its own channel."""
        payload = {"text": _mrkdwn_escape(msg.text), "blocks": blocks(msg)}
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
