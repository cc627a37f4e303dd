"""``POST /slack/interactions``: a Slack button press (the app's Interactivity Request URL).

Slack POSTs ``application/x-www-form-urlencoded`` with one field, ``payload``, holding JSON
(``type="block_actions"``, ``user``, ``team``, ``actions``, ``response_url``, …). Every
request is signed: ``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{raw body}">``
with the app's signing secret, ``X-Slack-Request-Timestamp`` the Unix time it was signed.
A missing or wrong signature, or a timestamp more than five minutes away from our clock, is
refused with 401 before the body is parsed, and handed to ``on_refused(path, why)``
(ledgered; wrappable, e.g. by a rate limiter).

What a press means is decided by the injected ``on_press``; its answer goes back to the
presser through the press's ``response_url`` as an ephemeral message (only they see it).
Slack wants the HTTP answer within 3 seconds, so the request is answered 200 as soon as the
decision is made or :data:`ANSWER_BUDGET_S` has passed, whichever is first; the reply is
posted afterwards, and a ``response_url`` that fails is logged, never raised.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from alertengine import strict_json
from alertengine.clock import Clock

log = logging.getLogger(__name__)

PATH = "/slack/interactions"
FORM = "application/x-www-form-urlencoded"
SIGNATURE_HEADER = "x-slack-signature"
TIMESTAMP_HEADER = "x-slack-request-timestamp"
VERSION = "v0"
#: Slack's advice: refuse a request signed more than five minutes from now (a replay).
MAX_SKEW_S = 300.0
#: Slack shows the presser an error when the answer takes longer than 3 s.
ANSWER_BUDGET_S = 2.0
REPLY_TIMEOUT_S = 5.0
FAILURE_TEXT = "Something went wrong; nothing was run."

# Slack's own limits on what it sends (ids are short; a button value is <= 2000 chars).
MAX_ID = 255
MAX_VALUE = 2000
MAX_URL = 2048


class MalformedInteraction(ValueError):
    """A signed body that is not an interaction payload we can read; says why (for a 400)."""


@dataclass(frozen=True)
class Action:
    """One element of ``payload.actions``: the button that was pressed."""

    action_id: str
    value: str
    action_ts: str
    block_id: str = ""
    type: str = "button"


@dataclass(frozen=True)
class Interaction:
    """A ``block_actions`` payload, reduced to what a press needs."""

    user_id: str
    team_id: str
    action: Action
    response_url: str = ""


@dataclass(frozen=True)
class Reply:
    """What to tell the presser (ephemeral, via ``response_url``; empty: nothing). A status
    other than 200 is the HTTP answer itself and nothing is posted (a replay gets no reply)."""

    text: str = ""
    status: int = 200


OnPress = Callable[[Interaction], Awaitable[Reply]]
OnRefused = Callable[[str, str], Awaitable[None]]


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v0=<hex>``, exactly as Slack signs a request."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str, timestamp: str, body: bytes, given: str, now: float
) -> str | None:
    """Why the request is not Slack's (None when it is): the timestamp must be an integer
    within :data:`MAX_SKEW_S` of ``now``, and the signature must match (constant time)."""
    if not given or not timestamp:
        return "missing X-Slack-Signature or X-Slack-Request-Timestamp"
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return "X-Slack-Request-Timestamp is not a Unix time"
    if abs(now - int(timestamp)) > MAX_SKEW_S:
        return f"X-Slack-Request-Timestamp more than {MAX_SKEW_S:.0f} s from now (a replay?)"
    expected = signature(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        return "invalid X-Slack-Signature"
    return None


def _text(obj: dict[str, Any], key: str, limit: int, *, required: bool = True) -> str:
    value = obj.get(key, "")
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise MalformedInteraction(f"{key} must be a string")
    if required and not value:
        raise MalformedInteraction(f"{key} missing")
    if len(value) > limit:
        raise MalformedInteraction(f"{key} longer than {limit} characters")
    return value


def _object(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise MalformedInteraction(f"{key} must be an object")
    return value


def parse_interaction(body: bytes) -> Interaction | None:
    """The press in a signed request body; None for a payload that is not ``block_actions``
    (nothing to do); :class:`MalformedInteraction` for anything unreadable. Never raises
    anything else, whatever the bytes."""
    try:
        text = body.decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedInteraction(f"body is not a form: {exc}") from None
    values = fields.get("payload", [])
    if len(values) != 1:
        raise MalformedInteraction("exactly one payload field is required")
    try:
        payload = strict_json.loads(values[0])
    except strict_json.JSONInputError as exc:
        raise MalformedInteraction(f"payload: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedInteraction("payload must be a JSON object")
    if payload.get("type") != "block_actions":
        return None
    user = _object(payload, "user")
    team = payload.get("team")
    team_id = user.get("team_id") or (team.get("id") if isinstance(team, dict) else "") or ""
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions:
        raise MalformedInteraction("actions must be a non-empty list")
    # Slack sends the one element that was used; a longer list is not a button press of ours.
    first = actions[0]
    if not isinstance(first, dict):
        raise MalformedInteraction("actions[0] must be an object")
    action = Action(
        action_id=_text(first, "action_id", MAX_ID),
        value=_text(first, "value", MAX_VALUE, required=False),
        action_ts=_text(first, "action_ts", MAX_ID),
        block_id=_text(first, "block_id", MAX_ID, required=False),
        type=_text(first, "type", MAX_ID, required=False),
    )
    return Interaction(
        user_id=_text(user, "id", MAX_ID),
        team_id=team_id if isinstance(team_id, str) and len(team_id) <= MAX_ID else "",
        action=action,
        response_url=_text(payload, "response_url", MAX_URL, required=False),
    )


class Responder:
    """Posts a reply to a press's ``response_url``. Only URLs under ``hooks_base`` (Slack's
    ``https://hooks.slack.com``) are called: a payload naming another host gets no request
    from us. Failures are logged without the URL (it is a credential for 30 minutes)."""

    def __init__(self, http: httpx.AsyncClient, hooks_base: str) -> None:
        self._http = http
        self._base = hooks_base.rstrip("/") + "/"

    async def reply(self, response_url: str, text: str) -> bool:
        if not response_url.startswith(self._base):
            log.warning("slack response_url is not under the configured hooks base; not called")
            return False
        body = {"text": text, "response_type": "ephemeral", "replace_original": False}
        try:
            r = await self._http.post(response_url, json=body, timeout=REPLY_TIMEOUT_S)
        except httpx.HTTPError as exc:
            log.warning("slack response_url failed: %s", type(exc).__name__)
            return False
        if r.status_code != 200:
            log.warning("slack response_url answered %s: %s", r.status_code, r.text[:100])
            return False
        return True


class SlackInteractions:
    """The route, with the tasks that outlive a request (a slow decision, the reply)."""

    def __init__(
        self,
        signing_secret: str,
        clock: Clock,
        responder: Responder,
        *,
        on_press: OnPress,
        on_refused: OnRefused,
        answer_budget_s: float = ANSWER_BUDGET_S,
    ) -> None:
        if not signing_secret:
            raise ValueError("the Slack signing secret is required to check interactions")
        self._secret, self._clock, self._responder = signing_secret, clock, responder
        self.on_press, self.on_refused = on_press, on_refused
        self._budget = answer_budget_s
        self._tasks: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait for decisions and replies still under way (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _decide(self, interaction: Interaction) -> Reply:
        try:
            reply = await self.on_press(interaction)
        except Exception:
            log.exception("slack press failed")
            reply = Reply(FAILURE_TEXT)
        if reply.status == 200 and reply.text and interaction.response_url:
            self._spawn(self._responder.reply(interaction.response_url, reply.text))
        return reply

    async def endpoint(self, request: Request) -> Response:
        path = request.url.path
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
            await self.on_refused(path, "not form-encoded")
            return PlainTextResponse("form-encoded body required", status_code=415)
        body = await request.body()
        problem = signature_problem(
            self._secret,
            request.headers.get(TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(SIGNATURE_HEADER, ""),
            self._clock.now(),
        )
        if problem is not None:
            await self.on_refused(path, problem)
            return PlainTextResponse("invalid signature", status_code=401)
        try:
            interaction = parse_interaction(body)
        except MalformedInteraction as exc:
            await self.on_refused(path, f"malformed payload: {exc}")
            return JSONResponse({"error": f"malformed payload: {exc}"}, status_code=400)
        if interaction is None:
            return Response(status_code=200)  # another kind of interaction: nothing to do
        task = self._spawn(self._decide(interaction))
        done, _ = await asyncio.wait({task}, timeout=self._budget)
        if task in done:
            reply = task.result()
            if reply.status != 200:
                return PlainTextResponse(reply.text, status_code=reply.status)
        # Slow (or done): answer now; the reply reaches the presser through response_url.
        return Response(status_code=200)

    def routes(self) -> list[Route]:
        return [Route(PATH, self.endpoint, methods=["POST"])]
