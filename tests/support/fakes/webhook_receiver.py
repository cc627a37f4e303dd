"""A receiver for AlertEngine's signed notification webhooks; records what arrived and
whether its signature verified."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.execute.signing import verify


@dataclass
class FakeWebhookReceiver:
    secret: bytes = b"webhook-secret-for-tests-0123456789"
    script: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)

    async def _hook(self, request: Request) -> JSONResponse:
        body = await request.body()
        valid = verify(self.secret, dict(request.headers), body, now=time.time())
        if not valid:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        if self.script:
            return JSONResponse({"error": "scripted"}, status_code=self.script.pop(0))
        self.received.append(json.loads(body))
        return JSONResponse({"ok": True})

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
