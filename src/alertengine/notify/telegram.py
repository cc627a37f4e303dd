"""Telegram Bot API: ``sendMessage`` with an inline keyboard, ``answerCallbackQuery``.

The bot token is part of every request path, so it must never reach an error string or a
log line: errors carry only the API's ``description``, and a logging filter scrubs
``/bot<token>/`` from httpx's request log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx

from alertengine.notify.channel import DeliveryResult, is_permanent, transport_failure
from alertengine.notify.render import RenderedMessage

TELEGRAM_API = "https://api.telegram.org"
MAX_TEXT = 4096
_TOKEN_IN_URL = re.compile(r"/bot[^/\s]+/")


class _RedactBotToken(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(
                _TOKEN_IN_URL.sub("/bot<redacted>/", str(a)) if "/bot" in str(a) else a
                for a in args
            )
        if isinstance(record.msg, str) and "/bot" in record.msg:
            record.msg = _TOKEN_IN_URL.sub("/bot<redacted>/", record.msg)
        return True


_FILTER = _RedactBotToken()


def _install_log_redaction() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def inline_keyboard(msg: RenderedMessage) -> list[list[dict[str, str]]]:
    """One button per row: long labels stay readable on phones."""
    rows: list[list[dict[str, str]]] = []
    for b in msg.buttons:
        button = (
            {"text": b.label, "url": b.url}
            if b.url
            else {
                "text": b.label,
                "callback_data": b.callback_data,
            }
        )
        rows.append([button])
    return rows


class TelegramChannel:
    name = "telegram"

    def __init__(
        self, bot_token: str, client: httpx.AsyncClient, base_url: str = TELEGRAM_API
    ) -> None:
        if not bot_token:
            raise ValueError("a Telegram bot token is required")
        self._token = bot_token
        self._client = client
        self._base = base_url.rstrip("/")
        _install_log_redaction()

    async def _call(self, method: str, payload: dict[str, Any]) -> tuple[int | None, Any, str]:
        """(status, decoded JSON or None, transport error)."""
        try:
            r = await self._client.post(f"{self._base}/bot{self._token}/{method}", json=payload)
        except httpx.HTTPError as exc:
            return None, None, transport_failure(self.name, exc).error
        try:
            return r.status_code, r.json(), ""
        except ValueError:
            return r.status_code, None, ""

    def _result(self, status: int | None, body: Any, transport_error: str) -> DeliveryResult:
        if status is None:
            return DeliveryResult(ok=False, channel=self.name, error=transport_error)
        if isinstance(body, dict) and body.get("ok") is True:
            result = body.get("result")
            mid = result.get("message_id") if isinstance(result, dict) else None
            return DeliveryResult(
                ok=True,
                channel=self.name,
                status=status,
                provider_message_id=str(mid) if mid is not None else None,
            )
        desc = body.get("description") if isinstance(body, dict) else None
        params = body.get("parameters") if isinstance(body, dict) else None
        retry_after = params.get("retry_after") if isinstance(params, dict) else None
        # Belt and braces: the API does not echo the token, but never trust that.
        safe_desc = str(desc or "error").replace(self._token, "<redacted>")
        return DeliveryResult(
            ok=False,
            channel=self.name,
            status=status,
            retry_after_s=float(retry_after) if isinstance(retry_after, (int, float)) else None,
            error=f"Telegram {status}: {safe_desc[:200]}",
            permanent=is_permanent(status),
        )

    async def send(self, recipient: str, msg: RenderedMessage) -> DeliveryResult:
        text = msg.html if len(msg.html) <= MAX_TEXT else msg.html[: MAX_TEXT - 1] + "…"
        payload: dict[str, Any] = {
            "chat_id": recipient,
            "text": text,
            "parse_mode": "HTML",
            # Approval links must not be fetched by a preview crawler.
            "link_preview_options": {"is_disabled": True},
        }
        keyboard = inline_keyboard(msg)
        if keyboard:
            payload["reply_markup"] = {"inline_keyboard": keyboard}
        return self._result(*await self._call("sendMessage", payload))

    async def answer_callback(self, callback_query_id: str, text: str) -> DeliveryResult:
        """Stop the button's spinner and show ``text`` (Telegram shows up to 200 chars)."""
        payload = {"callback_query_id": callback_query_id, "text": text[:200]}
        return self._result(*await self._call("answerCallbackQuery", payload))
