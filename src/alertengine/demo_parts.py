"""The demo's stand-ins for the tenant's world: a shop API, its recovery webhook, a phone.

The phone is also a WhatsApp client: its quick-reply buttons (Approve / I'm on it / Details)
post what Twilio would post to the orchestrator's ``/twilio/whatsapp`` — the documented form
parameters, ``ButtonPayload`` naming the approval link, signed with the demo's auth token —
and show the TwiML answer as the reply in the chat.

These are the parts a real tenant owns (their app, their recovery endpoint, their phone);
AlertEngine's own parts in the demo are the real ones. The recovery webhook is the shipped
:class:`alertengine.receiver.Receiver`, as docs/webhooks.md tells tenants to run it: it
verifies the signature, runs once per ``Idempotency-Key``, witnesses the log's checkpoint
(the phone's notifications carry one too, so the recovery call's larger tree is checked
with a consistency proof fetched from the orchestrator) and answers a signed receipt.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode, urlparse

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from alertengine.execute.signing import IDEMPOTENCY_HEADER, verify
from alertengine.notify.twilio import signature
from alertengine.receiver import Receiver
from alertengine.receiver.core import Inconsistent, read_checkpoint_header

#: The demo on-call engineer's WhatsApp number (a reserved fictional range).
DEMO_WHATSAPP = "+15555550100"
DEMO_WHATSAPP_FROM = "+15555550199"
_TWIML_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.S)


def link_ref(approve_url: str) -> str:
    """The approval link's id (``jti``), which the WhatsApp template's quick replies carry
    (``approve:<jti>``); the stand-in phone reads it from the link it was sent."""
    token = dict(p.split("=", 1) for p in urlparse(approve_url).query.split("&") if "=" in p)
    parts = token.get("token", "").split(".")
    if len(parts) != 3:
        return ""
    raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
    return str(json.loads(raw).get("jti", ""))


@dataclass
class WhatsAppClient:
    """What Twilio does when the person taps a quick reply: a signed form POST."""

    orchestrator: str
    account_sid: str
    auth_token: str
    number: str = DEMO_WHATSAPP
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    async def press(self, verb: str, ref: str) -> str:
        sid = f"SM{next(self._ids):032x}"
        title = {"approve": "Approve", "ack": "Acknowledge", "details": "Details"}[verb]
        params = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": self.account_sid,
            "From": f"whatsapp:{self.number}",
            "To": f"whatsapp:{DEMO_WHATSAPP_FROM}",
            "Body": title,
            "ButtonText": title,
            "ButtonPayload": f"{verb}:{ref}",
            "MessageType": "button",
            "NumMedia": "0",
            "WaId": self.number.lstrip("+"),
            "ProfileName": "Alice",
            "ApiVersion": "2010-04-01",
        }
        url = f"{self.orchestrator}/twilio/whatsapp"
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.post(
                url,
                content=urlencode(params),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": signature(self.auth_token, url, params.items()),
                },
            )
        found = _TWIML_MESSAGE.search(r.text)
        return html.unescape(found.group(1)) if found else f"(HTTP {r.status_code})"


@dataclass
class Chaos:
    """What is wrong with the shop right now (the demo's fault injector)."""

    latency_s: float = 0.0
    error_rate: float = 0.0


@dataclass
class TenantSide:
    recovery_secret: bytes
    notify_secret: bytes
    #: The GitHub push webhook's secret (the tenant's repository settings).
    github_secret: bytes = b""
    chaos: Chaos = field(default_factory=Chaos)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    executed_keys: set[str] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)
    message_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    recovered: asyncio.Event = field(default_factory=asyncio.Event)
    #: The phone's WhatsApp side (set by the demo once the orchestrator's URL is known).
    whatsapp: WhatsAppClient | None = None
    #: The tenant's receiver (set by the demo once the log's public key is known). Without
    #: one, the recovery webhook only checks the HMAC and de-duplicates (no receipt).
    receiver: Receiver | None = None
    tenant_id: str = ""
    #: Tree sizes of the checkpoints witnessed, and why any was not.
    witnessed: list[int] = field(default_factory=list)
    witness_problems: list[str] = field(default_factory=list)


#: The deploy that causes the demo's spike: a query change, as in the README's story.
DEMO_COMMIT = {
    "id": "c4e2a91f7b3d5e8a0c6f1b2d4e9a7c3f5b8d0e1a",
    "message": "Tune checkout query: SERIALIZABLE isolation for cart totals",
    "author": {"name": "Bob Example", "username": "bob-deploys"},
    "added": [],
    "removed": [],
    "modified": ["app/db/queries.py"],
    "url": "https://github.example/shop/commit/c4e2a91",
}


def github_push(secret: bytes, at: float) -> tuple[bytes, dict[str, str]]:
    """A GitHub ``push`` delivery of :data:`DEMO_COMMIT` (body and headers, signed as GitHub
    signs: ``X-Hub-Signature-256: sha256=<HMAC-SHA256(secret, body)>``)."""
    commit = {**DEMO_COMMIT, "timestamp": datetime.fromtimestamp(at, tz=timezone.utc).isoformat()}
    body = json.dumps({"ref": "refs/heads/main", "commits": [commit]}).encode()
    sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": f"sha256={sig}",
    }


def shop_app(chaos: Chaos) -> Any:
    """The tenant's API: a FastAPI app with one route that chaos can slow down."""
    from fastapi import FastAPI

    app = FastAPI(title="demo shop")
    counter = {"n": 0}

    @app.get("/checkout/{cart_id}")
    async def checkout(cart_id: int) -> Any:
        await asyncio.sleep(0.005 + chaos.latency_s)
        counter["n"] += 1
        if chaos.error_rate and (counter["n"] % 100) < chaos.error_rate * 100:
            return JSONResponse({"error": "payment backend timeout"}, status_code=503)
        return {"cart": cart_id, "status": "paid"}

    return app


def tenant_app(side: TenantSide) -> Starlette:
    """The recovery webhook receiver and the on-call engineer's phone (an outbox page)."""

    def run_recovery(key: str, payload: dict[str, Any]) -> None:
        side.recoveries.append({"at": time.time(), "idempotency_key": key, "payload": payload})
        side.chaos.latency_s = 0.0  # "restart the checkout workers"
        side.chaos.error_rate = 0.0
        side.recovered.set()

    async def recover(request: Request) -> Response:
        body = await request.body()
        if side.receiver is not None:
            answer = await side.receiver.receive(request.headers, body)
            if answer.receipt is not None and answer.receipt.checkpoint is not None:
                side.witnessed.append(answer.receipt.checkpoint.size)
            if answer.run:  # once per Idempotency-Key
                run_recovery(request.headers.get(IDEMPOTENCY_HEADER, ""), answer.payload)
            return JSONResponse(answer.body, status_code=answer.status)
        if not verify(side.recovery_secret, dict(request.headers), body):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if key in side.executed_keys:  # a retry of work already done: acknowledge, do nothing
            return JSONResponse({"ok": True, "duplicate": True})
        side.executed_keys.add(key)
        payload = await request.json()
        run_recovery(key, payload)
        return JSONResponse({"ok": True, "action": payload.get("action")})

    async def inbox(request: Request) -> Response:
        body = await request.body()
        if not verify(side.notify_secret, dict(request.headers), body):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        note = read_checkpoint_header(request.headers)
        if side.receiver is not None and note:
            try:  # the log's checkpoint rides on notifications too: witness it
                side.witnessed.append((await side.receiver.witness(side.tenant_id, note)).size)
            except Inconsistent as exc:
                side.witness_problems.append(f"{exc.error}: {exc.reason}")
        side.messages.append({"received_at": time.time(), **(await request.json())})
        side.message_arrived.set()
        return JSONResponse({"ok": True})

    async def phone(_: Request) -> Response:
        items = []
        for m in reversed(side.messages):
            text = html.escape(str(m.get("text", "")))
            if m.get("reply"):
                items.append(f'<article class="msg me"><pre>{text}</pre></article>')
                continue
            url = html.escape(str(m.get("approve_url", "")))
            link = f'<a class="btn" href="{url}">Review &amp; approve</a>' if url else ""
            ref = link_ref(str(m.get("approve_url", ""))) if side.whatsapp else ""
            replies = (
                "".join(
                    f'<form method="post" action="/phone/press"><input type="hidden" name="ref" '
                    f'value="{html.escape(ref)}"><button name="verb" value="{verb}" '
                    f'class="qr">{label}</button></form>'
                    for verb, label in (
                        ("approve", "✅ Approve"),
                        ("ack", "👀 I'm on it"),
                        ("details", "ℹ️ Details"),
                    )
                )
                if ref
                else ""
            )
            items.append(f'<article class="msg"><pre>{text}</pre>{link}{replies}</article>')
        body = "".join(items) or '<p class="empty">No messages yet. Waiting for an incident…</p>'
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="3"><title>On-call phone</title>
<style>body{{font:16px system-ui,sans-serif;background:#e5ddd5;margin:0;padding:12px;
max-width:520px}}
h1{{font-size:18px}} .msg{{background:#fff;border-radius:10px;padding:12px;margin:10px 0;
box-shadow:0 1px 2px #0002}} pre{{white-space:pre-wrap;font:15px system-ui,sans-serif;margin:0}}
.btn{{display:inline-block;margin-top:10px;padding:10px 16px;background:#128c7e;color:#fff;
border-radius:8px;text-decoration:none}} .empty{{color:#555}}
.me{{background:#dcf8c6;margin-left:40px}} form{{display:inline}}
.qr{{margin:10px 6px 0 0;padding:8px 12px;border:1px solid #128c7e;border-radius:16px;
background:#fff;color:#128c7e;font:15px system-ui,sans-serif}}</style></head>
<body><h1>📱 On-call phone — messages from AlertEngine</h1>{body}</body></html>"""
        return HTMLResponse(page)

    async def messages(_: Request) -> Response:
        return JSONResponse(side.messages)

    async def press(request: Request) -> Response:
        """A quick-reply tap on the phone page: Twilio's signed webhook to the orchestrator."""
        form = await request.form(max_files=0, max_fields=4)
        verb, ref = str(form.get("verb", "")), str(form.get("ref", ""))
        if side.whatsapp is None or verb not in ("approve", "ack", "details") or not ref:
            return JSONResponse({"error": "no such quick reply"}, status_code=400)
        answer = await side.whatsapp.press(verb, ref)
        side.messages.append({"received_at": time.time(), "text": answer, "reply": True})
        return RedirectResponse("/phone", status_code=303)

    return Starlette(
        routes=[
            Route("/recover", recover, methods=["POST"]),
            Route("/phone/inbox", inbox, methods=["POST"]),
            Route("/phone", phone, methods=["GET"]),
            Route("/messages", messages, methods=["GET"]),
            Route("/phone/press", press, methods=["POST"]),
        ]
    )
