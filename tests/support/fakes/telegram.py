"""A fake Telegram Bot API on loopback: ``/bot<token>/sendMessage`` and
``/bot<token>/answerCallbackQuery``, checked and answered like the real API
(``{"ok": true, "result": …}`` or ``{"ok": false, "error_code", "description",
"parameters": {"retry_after"}}``). Also builds Updates and delivers them to a webhook
the way Telegram does (``X-Telegram-Bot-Api-Secret-Token``)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PARSE_MODES = {"HTML", "Markdown", "MarkdownV2"}


def fail(code: int, description: str, retry_after: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return body


def too_many_requests(retry_after: int) -> dict[str, Any]:
    return fail(429, f"Too Many Requests: retry after {retry_after}", retry_after)


def _check_keyboard(markup: Any) -> str | None:
    if not isinstance(markup, dict) or not isinstance(markup.get("inline_keyboard"), list):
        return "Bad Request: can't parse reply keyboard markup JSON object"
    for row in markup["inline_keyboard"]:
        if not isinstance(row, list):
            return 'Bad Request: field "inline_keyboard" must be an Array of Arrays'
        for b in row:
            if not isinstance(b, dict) or not b.get("text"):
                return "Bad Request: text buttons are unallowed in the inline keyboard"
            kinds = [k for k in ("url", "callback_data") if k in b]
            if len(kinds) != 1:
                return "Bad Request: inline keyboard button must have exactly one action"
            if "callback_data" in b and not 1 <= len(b["callback_data"].encode()) <= 64:
                return "Bad Request: BUTTON_DATA_INVALID"
            if "url" in b and not str(b["url"]).startswith(("http://", "https://", "tg://")):
                return "Bad Request: BUTTON_URL_INVALID"
    return None


@dataclass
class FakeTelegram:
    token: str = "123456:ABC-fake-token"
    #: Known chats; None accepts any chat id.
    chats: set[str] | None = None
    #: Scripted answers for the next sendMessage calls: (status, body).
    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    answered: list[dict[str, Any]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(100))

    async def _method(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return JSONResponse(fail(401, "Unauthorized"), status_code=401)
        method = request.path_params["method"]
        if not request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse(fail(400, "Bad Request: expected JSON"), status_code=400)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(fail(400, "Bad Request: invalid JSON"), status_code=400)
        if method == "sendMessage":
            return self._send_message(body)
        if method == "answerCallbackQuery":
            if not isinstance(body.get("callback_query_id"), str):
                return JSONResponse(
                    fail(400, "Bad Request: query is too old or query ID is invalid"), 400
                )
            if len(body.get("text", "")) > 200:
                return JSONResponse(fail(400, "Bad Request: MESSAGE_TOO_LONG"), 400)
            self.answered.append(body)
            return JSONResponse({"ok": True, "result": True})
        return JSONResponse(fail(404, "Not Found: method not found"), status_code=404)

    def _send_message(self, body: dict[str, Any]) -> JSONResponse:
        chat = body.get("chat_id")
        text = body.get("text")
        if chat is None or chat == "":
            return JSONResponse(fail(400, "Bad Request: chat_id is empty"), 400)
        if not isinstance(text, str) or not text.strip():
            return JSONResponse(fail(400, "Bad Request: message text is empty"), 400)
        if len(text) > 4096:
            return JSONResponse(fail(400, "Bad Request: message is too long"), 400)
        if "parse_mode" in body and body["parse_mode"] not in PARSE_MODES:
            return JSONResponse(fail(400, "Bad Request: unsupported parse_mode"), 400)
        if "reply_markup" in body:
            problem = _check_keyboard(body["reply_markup"])
            if problem:
                return JSONResponse(fail(400, problem), 400)
        if self.chats is not None and str(chat) not in self.chats:
            return JSONResponse(fail(400, "Bad Request: chat not found"), 400)
        if self.script:
            status, answer = self.script.pop(0)
            if status != 200:
                return JSONResponse(answer, status_code=status)
        self.sent.append(body)
        mid = next(self._ids)
        result = {
            "message_id": mid,
            "date": 1717344000,
            "chat": {
                "id": int(chat) if str(chat).lstrip("-").isdigit() else chat,
                "type": "private",
            },
            "text": text,
        }
        return JSONResponse({"ok": True, "result": result})

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/bot{token}/{method}", self._method, methods=["POST"])])


def callback_update(user_id: int, data: str, update_id: int = 1) -> dict[str, Any]:
    """An Update carrying a callback_query, as Telegram sends it when a button is pressed."""
    user = {"id": user_id, "is_bot": False, "first_name": "Ana", "username": "ana"}
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cbq-{update_id}",
            "from": user,
            "message": {
                "message_id": 100,
                "date": 1717344000,
                "chat": {"id": user_id, "type": "private"},
                "text": "🚨 checkout degraded",
            },
            "chat_instance": "-123",
            "data": data,
        },
    }


async def push_update(
    client: httpx.AsyncClient, url: str, update: Any, secret: str | None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    return await client.post(url, content=body, headers=headers)
