"""A fake Slack incoming webhook: ``POST /services/T…/B…/<secret>`` with JSON ``text`` and
optional ``blocks``; answers ``200 ok`` (text/plain) or Slack's plain-text errors
(``400 invalid_payload``, ``404 no_service``, ``500 rollup_error``, …)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

BLOCK_TYPES = {"header", "section", "actions", "context", "divider", "image"}


@dataclass
class FakeSlack:
    path: str = "/services/T0000/B0000/XXXXSECRETXXXX"
    script: list[tuple[int, str]] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)

    def _valid(self, body: Any) -> bool:
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return False
        for block in body.get("blocks", []):
            if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
                return False
            if block["type"] == "actions":
                for el in block.get("elements", []):
                    if el.get("type") != "button" or el.get("text", {}).get("type") != "plain_text":
                        return False
            if block["type"] == "section" and len(block.get("text", {}).get("text", "")) > 3000:
                return False
        return True

    async def _hook(self, request: Request) -> PlainTextResponse:
        if request.url.path != self.path:
            return PlainTextResponse("no_service", status_code=404)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return PlainTextResponse("invalid_payload", status_code=400)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not self._valid(body):
            return PlainTextResponse("invalid_payload", status_code=400)
        if self.script:
            status, text = self.script.pop(0)
            return PlainTextResponse(text, status_code=status)
        self.posted.append(body)
        return PlainTextResponse("ok")

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/services/{rest:path}", self._hook, methods=["POST"])])
