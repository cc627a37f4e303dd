"""A fake Slack: the incoming webhook the orchestrator posts to, the ``response_url`` it
answers a press on, and the Slack client side that presses a button.

* ``POST /services/T…/B…/<secret>`` with JSON ``text`` and optional ``blocks``; answers
  ``200 ok`` (text/plain) or Slack's plain-text errors (``400 invalid_payload``,
  ``404 no_service``, ``500 rollup_error``, …). Each message is recorded with a ``ts``.
* ``POST /actions/T…/<id>/<secret>`` (a press's ``response_url``): JSON with ``text`` (and
  ``response_type``, ``replace_original``); answers ``200 ok``, or what ``reply_script`` says.
* :meth:`FakeSlack.press` builds the request Slack sends to an app's Interactivity Request URL
  when a member presses a button of a posted message: a form body with one ``payload`` field
  holding the ``block_actions`` JSON, signed with the app's signing secret
  (``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{ts}:{body}">``).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

BLOCK_TYPES = {"header", "section", "actions", "context", "divider", "image"}


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Written from Slack's documentation, independently of the code under test."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Signed:
    """A request as Slack sends it to the Interactivity Request URL."""

    body: bytes
    headers: dict[str, str]
    payload: dict[str, Any]


@dataclass
class FakeSlack:
    path: str = "/services/T0000/B0000/XXXXSECRETXXXX"
    team_id: str = "T0000"
    #: The Slack app's signing secret (Basic Information → App Credentials): 32 hex.
    signing_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    script: list[tuple[int, str]] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)
    #: Failures the next ``response_url`` calls answer with: (status, text).
    reply_script: list[tuple[int, str]] = field(default_factory=list)
    #: What was posted to each ``response_url``: {"url_path": …, **body}.
    replies: list[dict[str, Any]] = field(default_factory=list)
    _ts: Any = field(default_factory=lambda: itertools.count(1))

    def _valid(self, body: Any) -> bool:
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return False
        for block in body.get("blocks", []):
            if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
                return False
            if block["type"] == "actions":
                ids = [el.get("action_id") for el in block.get("elements", [])]
                if len(ids) != len(set(ids)) or len(ids) > 25:
                    return False  # Slack: action_id unique per message, <= 25 elements
                for el in block.get("elements", []):
                    if el.get("type") != "button" or el.get("text", {}).get("type") != "plain_text":
                        return False
                    if not (el.get("url") or el.get("value")):
                        return False  # a button nobody could act on
                    if len(el.get("value", "")) > 2000 or el.get("style") not in (
                        None,
                        "primary",
                        "danger",
                    ):
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
        body["ts"] = f"{int(time.time())}.{next(self._ts):06d}"
        self.posted.append(body)
        return PlainTextResponse("ok")

    async def _response_url(self, request: Request) -> PlainTextResponse:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return PlainTextResponse("invalid_payload", status_code=400)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not isinstance(body, dict) or not body.get("text"):
            return PlainTextResponse("no_text", status_code=400)
        if self.reply_script:
            status, text = self.reply_script.pop(0)
            return PlainTextResponse(text, status_code=status)
        self.replies.append({"url_path": request.url.path, **body})
        return PlainTextResponse("ok")

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/services/{rest:path}", self._hook, methods=["POST"]),
                Route("/actions/{rest:path}", self._response_url, methods=["POST"]),
            ]
        )

    # -- the Slack client: a member presses a button --------------------------------------

    @staticmethod
    def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            el
            for block in message.get("blocks", [])
            if block.get("type") == "actions"
            for el in block.get("elements", [])
        ]

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": slack_signature(self.signing_secret, ts, body),
        }

    def press(
        self,
        message: dict[str, Any],
        action_id: str,
        user_id: str,
        *,
        hooks_base: str,
        timestamp: int | None = None,
        value: str | None = None,
    ) -> Signed:
        """The signed ``block_actions`` request for ``user_id`` pressing the button
        ``action_id`` of ``message`` (one of :attr:`posted`); ``value`` overrides the
        button's (a forged or stale press)."""
        (button,) = [b for b in self.buttons(message) if b["action_id"] == action_id]
        now = time.time() if timestamp is None else float(timestamp)
        action_ts = f"{now:.6f}"
        action: dict[str, Any] = {
            "type": "button",
            "block_id": "b" + secrets.token_hex(3),
            "action_id": action_id,
            "text": button["text"],
            "action_ts": action_ts,
        }
        if "style" in button:
            action["style"] = button["style"]
        if value is not None or "value" in button:
            action["value"] = value if value is not None else button["value"]
        response_url = (
            f"{hooks_base.rstrip('/')}/actions/{self.team_id}/{next(self._ts)}/"
            f"{secrets.token_urlsafe(18)}"
        )
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {
                "id": user_id,
                "username": user_id.lower(),
                "name": user_id.lower(),
                "team_id": self.team_id,
            },
            "api_app_id": "A0KRD7HC3",
            "token": "Shh_its_a_seekrit",  # the deprecated verification token; unused
            "container": {
                "type": "message",
                "message_ts": message.get("ts", "1.000001"),
                "channel_id": "C0ONCALL",
                "is_ephemeral": False,
            },
            "trigger_id": f"{next(self._ts)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}",
            "team": {"id": self.team_id, "domain": "acme-ops"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": "C0ONCALL", "name": "oncall"},
            "message": {
                "type": "message",
                "subtype": "bot_message",
                "text": message.get("text", ""),
                "ts": message.get("ts", "1.000001"),
                "bot_id": "B0000",
                "blocks": message.get("blocks", []),
            },
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [action],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        sign_at = int(now) if timestamp is not None else None
        return Signed(body, self.sign(body, sign_at), payload)
