"""Twilio's webhooks: ``POST /twilio/whatsapp`` (an inbound WhatsApp message or quick-reply
press), ``POST /twilio/voice/gather`` (a key pressed during a call) and
``POST /twilio/voice/status`` (the call's progress).

Each request must carry a valid ``X-Twilio-Signature`` computed over the public URL Twilio
called (``base_url`` + path + query) and the form parameters, with the auth token; anything
else is refused with 403, and the refusal is handed to ``on_refused`` (ledgered). What a
message means is decided by the injected handlers; the answer goes back as TwiML.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from alertengine.notify.twilio import SIGNATURE_HEADER, signature_ok

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
FAILURE_TEXT = "Something went wrong; nothing was run."


@dataclass(frozen=True)
class Reply:
    """The answer to one webhook: ``text`` goes back in TwiML (a chat message, or words
    said on the call); ``status`` other than 200 sends nothing (a replay gets no reply)."""

    text: str = ""
    status: int = 200


OnForm = Callable[[dict[str, str], str], Awaitable[Reply]]
OnRefused = Callable[[str, str], Awaitable[None]]


def message_twiml(text: str) -> str:
    body = f"<Message>{escape(text)}</Message>" if text else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


def say_twiml(text: str) -> str:
    body = f"<Say>{escape(text)}</Say>" if text else ""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


def twilio_routes(
    auth_token: str,
    public_base: str,
    *,
    on_whatsapp: OnForm,
    on_gather: OnForm,
    on_status: OnForm,
    on_refused: OnRefused,
) -> list[Route]:
    if not auth_token:
        raise ValueError("the Twilio auth token is required to check webhook signatures")
    base = public_base.rstrip("/")

    def handler(on_form: OnForm, twiml: Callable[[str], str]) -> Callable[..., Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            path = request.url.path
            if request.headers.get("content-type", "").split(";")[0].strip() != FORM:
                await on_refused(path, "not form-encoded")
                return PlainTextResponse("form-encoded body required", status_code=415)
            try:
                pairs = parse_qsl(
                    (await request.body()).decode(), keep_blank_values=True, strict_parsing=False
                )
            except UnicodeDecodeError:
                await on_refused(path, "body is not UTF-8")
                return PlainTextResponse("malformed body", status_code=400)
            query = request.url.query
            url = f"{base}{path}" + (f"?{query}" if query else "")
            given = request.headers.get(SIGNATURE_HEADER, "")
            if not signature_ok(auth_token, url, pairs, given):
                await on_refused(path, "missing or invalid X-Twilio-Signature")
                return PlainTextResponse("invalid signature", status_code=403)
            params: dict[str, str] = {}
            for k, v in pairs:
                params.setdefault(k, v)
            try:
                reply = await on_form(params, request.query_params.get("ref", ""))
            except Exception:
                # Answer anyway, with 200, so Twilio does not retry a half-done press.
                log.exception("twilio webhook %s failed", path)
                reply = Reply(FAILURE_TEXT)
            if reply.status != 200:
                return PlainTextResponse(reply.text, status_code=reply.status)
            return Response(twiml(reply.text), media_type="application/xml")

        return endpoint

    return [
        Route("/twilio/whatsapp", handler(on_whatsapp, message_twiml), methods=["POST"]),
        Route("/twilio/voice/gather", handler(on_gather, say_twiml), methods=["POST"]),
        Route(
            "/twilio/voice/status", handler(on_status, lambda _t: say_twiml("")), methods=["POST"]
        ),
    ]
