"""A fake Twilio Messages API: ``POST /2010-04-01/Accounts/{Sid}/Messages.json``.

Form-encoded ``To``/``From``/``Body``, HTTP basic auth (SID, auth token); answers 201 with a
message resource, or Twilio's error JSON (``code``, ``message``, ``more_info``, ``status``).
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "1" * 32
    auth_token: str = "twilio-auth-token"
    script: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    sent: list[dict[str, str]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def _authorized(self, request: Request, sid: str) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == (self.account_sid, self.auth_token) and sid == user

    async def _messages(self, request: Request) -> JSONResponse:
        sid = request.path_params["sid"]
        if not self._authorized(request, sid):
            status, body = error(401, 20003, "Authenticate")
            return JSONResponse(body, status_code=status)
        if request.headers.get("content-type", "") != "application/x-www-form-urlencoded":
            status, body = error(400, 20001, "Content-Type must be form-encoded")
            return JSONResponse(body, status_code=status)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        for key, code in (("To", 21604), ("From", 21603), ("Body", 21602)):
            if not form.get(key):
                status, body = error(400, code, f"A '{key}' parameter is required.")
                return JSONResponse(body, status_code=status)
        if not (form["To"].startswith("whatsapp:+") and form["From"].startswith("whatsapp:+")):
            status, body = error(
                400, 63007, "Twilio could not find a Channel with the From address"
            )
            return JSONResponse(body, status_code=status)
        if len(form["Body"]) > 1600:
            status, body = error(
                400, 21617, "The concatenated message body exceeds 1600 characters"
            )
            return JSONResponse(body, status_code=status)
        if self.script:
            status, body = self.script.pop(0)
            return JSONResponse(body, status_code=status)
        self.sent.append(form)
        msg_sid = f"SM{next(self._ids):032x}"
        return JSONResponse(
            {
                "sid": msg_sid,
                "account_sid": sid,
                "to": form["To"],
                "from": form["From"],
                "body": form["Body"],
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "error_code": None,
                "error_message": None,
                "uri": f"/2010-04-01/Accounts/{sid}/Messages/{msg_sid}.json",
            },
            status_code=201,
        )

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{sid}/Messages.json", self._messages, methods=["POST"])
            ]
        )
