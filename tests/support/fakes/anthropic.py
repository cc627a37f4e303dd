"""A fake Anthropic Messages API (``POST /v1/messages``) on loopback.

It checks what the real API requires (the key as ``x-api-key`` or a Bearer token,
``anthropic-version``, JSON body with model / max_tokens / messages, well-formed tools
and tool_choice) and answers with the real shapes: a ``message`` with content blocks,
or ``{"type": "error", "error": {...}}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

#: Given the request body, return (status, JSON body).
Responder = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def error(status: int, kind: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"type": "error", "error": {"type": kind, "message": message}}


def message(content: list[dict[str, Any]], model: str = "claude-test") -> dict[str, Any]:
    stop = "tool_use" if any(b.get("type") == "tool_use" for b in content) else "end_turn"
    return {
        "id": "msg_01FakeFakeFake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 321, "output_tokens": 54},
    }


def tool_use(name: str, tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_01FakeFake", "name": name, "input": tool_input}


def answer_with_tool(tool_input: Any) -> Responder:
    """Answer every request by calling the tool the request forced, with ``tool_input``."""

    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body["tool_choice"]["name"]
        return 200, message([tool_use(name, tool_input)], model=body["model"])

    return respond


@dataclass
class FakeAnthropic:
    api_key: str = "sk-ant-test-key"
    responder: Responder = field(default=lambda body: error(500, "api_error", "no responder"))
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def _check(self, request: Request, body: Any) -> tuple[int, dict[str, Any]] | None:
        # The API takes the key as ``x-api-key``; newer SDKs send it as a Bearer token.
        bearer = request.headers.get("authorization", "")
        given = request.headers.get("x-api-key") or bearer.removeprefix("Bearer ")
        if given != self.api_key:
            return error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error(400, "invalid_request_error", "anthropic-version header is required")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return error(400, "invalid_request_error", "content-type must be application/json")
        if not isinstance(body, dict):
            return error(400, "invalid_request_error", "body must be a JSON object")
        for key, kind in (("model", str), ("max_tokens", int), ("messages", list)):
            if not isinstance(body.get(key), kind):
                return error(400, "invalid_request_error", f"{key}: field required")
        tools = body.get("tools", [])
        names = set()
        for tool in tools:
            if (
                not isinstance(tool.get("name"), str)
                or tool.get("input_schema", {}).get("type") != "object"
            ):
                return error(400, "invalid_request_error", "tools: invalid tool definition")
            names.add(tool["name"])
        choice = body.get("tool_choice")
        if choice is not None and choice.get("type") == "tool" and choice.get("name") not in names:
            return error(400, "invalid_request_error", "tool_choice names an unknown tool")
        return None

    async def _messages(self, request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except ValueError:
            status, payload = error(400, "invalid_request_error", "invalid JSON")
            return JSONResponse(payload, status_code=status)
        self.headers.append(dict(request.headers))
        problem = self._check(request, body)
        if problem is not None:
            return JSONResponse(problem[1], status_code=problem[0])
        self.requests.append(body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status, payload = self.responder(body)
        return JSONResponse(payload, status_code=status, headers={"request-id": "req_fake"})

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])
