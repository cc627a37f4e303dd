"""The demo's stand-ins for the tenant's world: a shop API, its recovery webhook, a phone.

These are the parts a real tenant owns (their app, their recovery endpoint, their phone);
AlertEngine's own parts in the demo are the real ones. The recovery webhook verifies the
signature and honours ``Idempotency-Key`` exactly as docs/webhooks.md tells receivers to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from alertengine.execute.signing import IDEMPOTENCY_HEADER, verify


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

    async def recover(request: Request) -> Response:
        body = await request.body()
        if not verify(side.recovery_secret, dict(request.headers), body):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if key in side.executed_keys:  # a retry of work already done: acknowledge, do nothing
            return JSONResponse({"ok": True, "duplicate": True})
        side.executed_keys.add(key)
        payload = await request.json()
        side.recoveries.append({"at": time.time(), "idempotency_key": key, "payload": payload})
        side.chaos.latency_s = 0.0  # "restart the checkout workers"
        side.chaos.error_rate = 0.0
        side.recovered.set()
        return JSONResponse({"ok": True, "action": payload.get("action")})

    async def inbox(request: Request) -> Response:
        body = await request.body()
        if not verify(side.notify_secret, dict(request.headers), body):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        side.messages.append({"received_at": time.time(), **(await request.json())})
        side.message_arrived.set()
        return JSONResponse({"ok": True})

    async def phone(_: Request) -> Response:
        items = []
        for m in reversed(side.messages):
            text = html.escape(str(m.get("text", "")))
            url = html.escape(str(m.get("approve_url", "")))
            link = f'<a class="btn" href="{url}">Review &amp; approve</a>' if url else ""
            items.append(f'<article class="msg"><pre>{text}</pre>{link}</article>')
        body = "".join(items) or '<p class="empty">No messages yet. Waiting for an incident…</p>'
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="3"><title>On-call phone</title>
<style>body{{font:16px system-ui,sans-serif;background:#e5ddd5;margin:0;padding:12px;
max-width:520px}}
h1{{font-size:18px}} .msg{{background:#fff;border-radius:10px;padding:12px;margin:10px 0;
box-shadow:0 1px 2px #0002}} pre{{white-space:pre-wrap;font:15px system-ui,sans-serif;margin:0}}
.btn{{display:inline-block;margin-top:10px;padding:10px 16px;background:#128c7e;color:#fff;
border-radius:8px;text-decoration:none}} .empty{{color:#555}}</style></head>
<body><h1>📱 On-call phone — messages from AlertEngine</h1>{body}</body></html>"""
        return HTMLResponse(page)

    async def messages(_: Request) -> Response:
        return JSONResponse(side.messages)

    return Starlette(
        routes=[
            Route("/recover", recover, methods=["POST"]),
            Route("/phone/inbox", inbox, methods=["POST"]),
            Route("/phone", phone, methods=["GET"]),
            Route("/messages", messages, methods=["GET"]),
        ]
    )
