"""``POST /telegram/webhook``: in-Telegram button presses reach the authorization path.

Telegram sends the secret given to ``setWebhook(secret_token=…)`` in the
``X-Telegram-Bot-Api-Secret-Token`` header; anything without it is refused (constant-time
comparison) and handed to ``on_refused(path, why)`` (ledgered, through the refusal budget:
anyone can send these). A callback press is handed to the injected
``on_callback(user_id, data)`` — the orchestrator decides what it means and whether this
user may do it — and its answer is shown to the user through ``answerCallbackQuery``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine import strict_json
from alertengine.notify.telegram import TelegramChannel

log = logging.getLogger(__name__)

OnCallback = Callable[[str, str], Awaitable[str]]
OnRefused = Callable[[str, str], Awaitable[None]]
SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 (a header name)
FAILURE_TEXT = "Something went wrong; nothing was run."


def _callback(update: Any) -> tuple[str, str, str] | None:
    """(callback id, user id, data) of a callback_query update; None for other updates."""
    cq = update.get("callback_query") if isinstance(update, dict) else None
    if cq is None:
        return None
    if not isinstance(cq, dict):
        raise ValueError("callback_query must be an object")
    sender = cq.get("from")
    cq_id, data = cq.get("id"), cq.get("data")
    if not isinstance(cq_id, str) or not cq_id:
        raise ValueError("callback_query.id missing")
    if not isinstance(sender, dict) or not isinstance(sender.get("id"), int):
        raise ValueError("callback_query.from.id missing")
    if not isinstance(data, str):
        raise ValueError("callback_query.data missing")
    return cq_id, str(sender["id"]), data


def telegram_webhook_routes(
    secret_token: str,
    bot: TelegramChannel,
    on_callback: OnCallback,
    path: str = "/telegram/webhook",
    on_refused: OnRefused | None = None,
) -> list[Route]:
    if not secret_token:
        raise ValueError("a webhook secret token is required")
    expected = secret_token.encode()

    async def webhook(request: Request) -> JSONResponse:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            if on_refused is not None:
                await on_refused(path, "missing or invalid secret token")
            return JSONResponse({"error": "invalid secret token"}, status_code=401)
        try:
            # Strict: deep nesting or a lone surrogate is a 400, never a 500.
            update = strict_json.loads(await request.body())
            if not isinstance(update, dict):
                raise ValueError("update must be a JSON object")
            parsed = _callback(update)
        except ValueError as exc:
            return JSONResponse({"error": f"malformed update: {exc}"}, status_code=400)
        if parsed is None:
            return JSONResponse({"ignored": "not a callback_query"})
        cq_id, user_id, data = parsed
        try:
            text = await on_callback(user_id, data)
        except Exception:
            # Answer the user anyway, and 200 so Telegram does not redeliver the press.
            log.exception("telegram on_callback failed")
            text = FAILURE_TEXT
        answered = await bot.answer_callback(cq_id, text)
        if not answered.ok:
            log.warning("answerCallbackQuery failed: %s", answered.error)
        return JSONResponse({"ok": True, "answered": answered.ok})

    return [Route(path, webhook, methods=["POST"])]
