"""A fake Twilio: the Messages API (``POST /2010-04-01/Accounts/{Sid}/Messages.json``) and the
Calls API (``…/Calls.json``), plus the phone side: signed webhooks as Twilio sends them.

Form-encoded ``To``/``From``/``Body`` or ``ContentSid`` + ``ContentVariables`` (a JSON object
of strings), HTTP basic auth (SID, auth token); answers 201 with a message (``SM…``) or call
(``CA…``) resource, or Twilio's error JSON (``code``, ``message``, ``more_info``, ``status``).
:meth:`FakeTwilio.whatsapp_press` and friends build the inbound webhooks with the parameters
Twilio documents and a real ``X-Twilio-Signature``; :meth:`FakeTwilio.report_status` POSTs a
call's signed status callback (a chosen ``CallStatus``) to its ``StatusCallback`` URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
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
    calls: list[dict[str, str]] = field(default_factory=list)
    #: Status callbacks posted (:meth:`report_status`): (url, params, our answer's status).
    callbacks: list[tuple[str, dict[str, str], int]] = field(default_factory=list)
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
        for key, code in (("To", 21604), ("From", 21603)):
            if not form.get(key):
                status, body = error(400, code, f"A '{key}' parameter is required.")
                return JSONResponse(body, status_code=status)
        if not form.get("Body") and not form.get("ContentSid"):
            status, body = error(400, 21619, "A text message body or media urls must be specified.")
            return JSONResponse(body, status_code=status)
        if form.get("ContentSid"):
            problem = _content_problem(form)
            if problem:
                status, body = error(400, 21656, problem)
                return JSONResponse(body, status_code=status)
        if not (form["To"].startswith("whatsapp:+") and form["From"].startswith("whatsapp:+")):
            status, body = error(
                400, 63007, "Twilio could not find a Channel with the From address"
            )
            return JSONResponse(body, status_code=status)
        if len(form.get("Body", "")) > 1600:
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
                "body": form.get("Body", ""),
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

    async def _calls(self, request: Request) -> JSONResponse:
        sid = request.path_params["sid"]
        if not self._authorized(request, sid):
            status, body = error(401, 20003, "Authenticate")
            return JSONResponse(body, status_code=status)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        for key, code in (("To", 21201), ("From", 21213)):
            if not form.get(key):
                status, body = error(400, code, f"A '{key}' phone number is required.")
                return JSONResponse(body, status_code=status)
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            status, body = error(400, 21205, "Url parameter is required.")
            return JSONResponse(body, status_code=status)
        if not form["To"].startswith("+"):
            status, body = error(
                400, 13223, "The phone number you are attempting to call is invalid."
            )
            return JSONResponse(body, status_code=status)
        if self.script:
            status, body = self.script.pop(0)
            return JSONResponse(body, status_code=status)
        call_sid = f"CA{next(self._ids):032x}"
        self.calls.append({**form, "_sid": call_sid})
        return JSONResponse(
            {
                "sid": call_sid,
                "account_sid": sid,
                "to": form["To"],
                "from": form["From"],
                "status": "queued",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{sid}/Calls/{call_sid}.json",
            },
            status_code=201,
        )

    # -- the phone side: webhooks as Twilio sends them ------------------------------------

    def sign(self, url: str, params: dict[str, str]) -> str:
        """``X-Twilio-Signature`` as Twilio computes it (independent of our code)."""
        data = url + "".join(f"{k}{params[k]}" for k in sorted(params))
        digest = hmac.new(self.auth_token.encode(), data.encode(), hashlib.sha1).digest()
        return base64.b64encode(digest).decode()

    def whatsapp_inbound(
        self, from_: str, to: str, *, body: str = "", payload: str = "", text: str = ""
    ) -> dict[str, str]:
        """The parameters of an inbound WhatsApp message; with ``payload`` a quick-reply press
        (``ButtonPayload`` is the button's id, ``ButtonText`` its title)."""
        msg_sid = f"SM{next(self._ids):032x}"
        params = {
            "SmsMessageSid": msg_sid,
            "NumMedia": "0",
            "ProfileName": "On-call",
            "MessageType": "button" if payload else "text",
            "SmsSid": msg_sid,
            "WaId": from_.removeprefix("whatsapp:").lstrip("+"),
            "SmsStatus": "received",
            "Body": text or body,
            "To": to if to.startswith("whatsapp:") else f"whatsapp:{to}",
            "NumSegments": "1",
            "ReferralNumMedia": "0",
            "MessageSid": msg_sid,
            "AccountSid": self.account_sid,
            "From": from_ if from_.startswith("whatsapp:") else f"whatsapp:{from_}",
            "ApiVersion": "2010-04-01",
        }
        if payload:
            params["ButtonPayload"] = payload
            params["ButtonText"] = text or payload.split(":")[0].title()
            params["Body"] = params["ButtonText"]
        return params

    def call_params(self, call: dict[str, str], **extra: str) -> dict[str, str]:
        """A voice webhook's parameters for a call we placed (``Digits``, ``CallStatus``…)."""
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.get("_sid", "CA" + "0" * 32),
            "Called": call["To"],
            "Caller": call["From"],
            "Direction": "outbound-api",
            "From": call["From"],
            "To": call["To"],
            "CallStatus": "in-progress",
            **extra,
        }

    def status_params(
        self, call: dict[str, str], status: str, *, duration: int = 0
    ) -> dict[str, str]:
        """A call's StatusCallback as Twilio documents it for ``call-progress-events``: the
        call's parameters, ``CallStatus`` (``in-progress`` when answered; ``completed``,
        ``busy``, ``no-answer``, ``failed`` or ``canceled`` at the end), ``CallDuration``
        (final only), ``Timestamp`` (RFC 2822), ``SequenceNumber`` (0, 1, … per call)."""
        seq = sum(1 for _, p, _ in self.callbacks if p.get("CallSid") == call.get("_sid"))
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.get("_sid", "CA" + "0" * 32),
            "CallStatus": status,
            "Called": call["To"],
            "Caller": call["From"],
            "Direction": "outbound-api",
            "From": call["From"],
            "To": call["To"],
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(seq),
            "Timestamp": format_datetime(datetime.now(timezone.utc)),  # …:01 +0000
        }
        if status not in ("initiated", "ringing", "in-progress"):
            params["CallDuration"] = str(duration)
        return params

    async def report_status(
        self,
        call: dict[str, str],
        status: str,
        client: httpx.AsyncClient | None = None,
        *,
        duration: int = 0,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST the signed status callback to the call's ``StatusCallback`` URL, form-encoded
        with ``X-Twilio-Signature``, as Twilio does; ``params`` resends an earlier one (Twilio
        retrying). ``client`` reaches an in-process app; without it, a loopback request."""
        url = call["StatusCallback"]
        params = params or self.status_params(call, status, duration=duration)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": self.sign(url, params),
            "User-Agent": "TwilioProxy/1.1",
        }
        if client is not None:
            r = await client.post(url, content=urlencode(params), headers=headers)
        else:
            async with httpx.AsyncClient(timeout=10) as c:
                r = await c.post(url, content=urlencode(params), headers=headers)
        self.callbacks.append((url, params, r.status_code))
        return r

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/2010-04-01/Accounts/{sid}/Messages.json", self._messages, methods=["POST"]),
                Route("/2010-04-01/Accounts/{sid}/Calls.json", self._calls, methods=["POST"]),
            ]
        )


def _content_problem(form: dict[str, str]) -> str:
    """Twilio refuses a ContentSid that is not ``HX`` + 32 hex, or variables that are not a
    JSON object of strings."""
    content_sid = form["ContentSid"]
    if not (content_sid.startswith("HX") and len(content_sid) == 34):
        return "Invalid ContentSid"
    raw = form.get("ContentVariables")
    if raw is None:
        return ""
    try:
        variables = json.loads(raw)
    except ValueError:
        return "ContentVariables is not valid JSON"
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        return "ContentVariables must be a JSON object of strings"
    return ""
