"""A generic signed webhook (PagerDuty bridges, custom routing).

Signed exactly like recovery webhooks (:mod:`alertengine.execute.signing`, documented in
docs/webhooks.md): ``X-AlertEngine-Timestamp: <ts>`` and ``X-AlertEngine-Signature:
v1=<hex HMAC-SHA256(secret, f"{ts}." + body)>``. One scheme, one receiver-side ``verify``.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import httpx

from alertengine.clock import Clock, SystemClock
from alertengine.execute.receipts import CheckpointSource, checkpoint_headers
from alertengine.execute.signing import check_key, sign, verify
from alertengine.notify.channel import DeliveryResult, is_permanent, transport_failure
from alertengine.notify.render import RenderedMessage

__all__ = ["SignedWebhookChannel", "sign", "verify"]


class SignedWebhookChannel:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: bytes,
        client: httpx.AsyncClient,
        clock: Clock | None = None,
        *,
        checkpoint: CheckpointSource | None = None,
    ) -> None:
        if not url:
            raise ValueError("a webhook URL is required")
        self._url = url
        self._secret = check_key(secret)  # WeakKeyError: never sign with a guessable key
        self._client = client
        self._clock = clock or SystemClock()
        self._checkpoint = checkpoint  # the log's latest checkpoint rides along (receipts.py)

    async def send(self, recipient: str, msg: RenderedMessage) -> DeliveryResult:
        payload = {
            "type": f"alertengine.{msg.kind}",
            "recipient": recipient,
            "tenant_id": msg.tenant_id,
            "incident_id": msg.incident_id,
            "title": msg.title,
            "text": msg.text,
            "approve_url": msg.approve_url,
            "buttons": [asdict(b) for b in msg.buttons],
        }
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            **sign(self._secret, body, self._clock.now()),
            **await checkpoint_headers(self._checkpoint, msg.tenant_id),
        }
        try:
            r = await self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return transport_failure(self.name, exc)
        if 200 <= r.status_code < 300:
            return DeliveryResult(ok=True, channel=self.name, status=r.status_code)
        retry = r.headers.get("retry-after")
        return DeliveryResult(
            ok=False,
            channel=self.name,
            status=r.status_code,
            retry_after_s=float(retry) if retry and retry.isdigit() else None,
            error=f"webhook {r.status_code}",
            permanent=is_permanent(r.status_code),
        )
