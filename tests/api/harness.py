"""A whole orchestrator app with every route switched on, for the HTTP-edge tests.

Real parts throughout: the real runtime and Starlette app (in-process over httpx's ASGI
transport), a real SQLite state store and ledger in a temp dir, the real Telegram channel
talking to the fake Bot API on loopback. ``Creds`` holds one valid credential of every kind
the routes use, so tests can aim both valid and invalid auth at each of them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette

from alertengine.clock import SystemClock
from alertengine.ledger.sqlite import SqliteLedgerStore
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores.sqlite import SqliteStateStore
from tests.support.fakes.telegram import FakeTelegram
from tests.support.servers import serve

ADMIN_KEY = "admin-" + "k" * 40
TG_SECRET = "tg-secret-" + "s" * 20
GITHUB_SECRET = "gh-" + "g" * 40

CONFIG = {
    "orchestrator": {"base_url": "http://orch.test"},
    "tenants": [
        {
            "id": "acme",
            "approvers": [
                {"channel": "web", "address": "alice"},
                {"channel": "telegram", "address": "4242"},
            ],
            "github_secret_env": "API_TEST_GITHUB_SECRET",
        },
        {"id": "globex", "approvers": [{"channel": "web", "address": "bob"}]},
    ],
    "targets": [
        {"tenant": "acme", "service": "checkout"},
        {"tenant": "globex", "service": "billing"},
    ],
}

DEGRADED = {
    "status": "critical",
    "health_score": {"score": 30, "status": "critical", "trend": "degrading"},
    "metrics": {"overall_p95_ms": 2900.0, "error_rate": 0.22, "sample_size": 300},
    "alerts": [{"type": "latency_spike", "severity": "critical"}],
}


@dataclass
class Creds:
    tenant_key: str  # acme's API key
    other_key: str  # globex's API key
    admin_key: str = ADMIN_KEY
    telegram_secret: str = TG_SECRET
    github_secret: str = GITHUB_SECRET


@dataclass
class Harness:
    rt: Runtime
    app: Starlette
    client: httpx.AsyncClient
    creds: Creds
    telegram: FakeTelegram

    async def approval_token(self) -> str:
        """A real, unspent approval link token for alice on a fresh VALIDATED incident."""
        r = await self.client.post(
            "/intake/health?service=checkout",
            json=DEGRADED,
            headers={"Authorization": f"Bearer {self.creds.tenant_key}"},
        )
        assert r.status_code == 202, r.text
        inc = r.json()["incident"]
        link = await self.rt.authorizer.issue("acme", inc["incident_id"], "engineer:web:alice")
        return link.token


@contextlib.asynccontextmanager
async def harness(tmp: Path) -> AsyncIterator[Harness]:
    """The app over ASGI; set ``API_TEST_GITHUB_SECRET`` in the environment for /commits."""
    tg = FakeTelegram()
    with serve(tg.app) as tg_url:
        env = {
            "ALERT_SECRET": "s" * 48,
            "ALERTENGINE_ADMIN_KEY": ADMIN_KEY,
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "TELEGRAM_API_BASE": tg_url,
            "TWILIO_AUTH_TOKEN": "twilio-auth-token-for-api-tests",
            "SLACK_SIGNING_SECRET": "slack-signing-secret-for-api-tests",
        }
        clock = SystemClock()
        ledger = SqliteLedgerStore(tmp / "ledger.db", key=b"k" * 32)
        store = SqliteStateStore(tmp / "state.db", clock=clock)
        rt = await build_runtime(
            parse_config(CONFIG),
            ledger=ledger,
            store=store,
            settings=Settings.from_env(env),
            clock=clock,
        )
        await sync_tenants(rt)
        app = create_app(rt, run_loop=False)
        creds = Creds(tenant_key=rt.new_keys["acme"], other_key=rt.new_keys["globex"])
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(
                transport=transport, base_url="http://orch.test", timeout=30
            ) as client:
                yield Harness(rt, app, client, creds, tg)
        finally:
            await rt.drain()
            await rt.http.aclose()
            await _close(store)
            await _close(ledger)


async def _close(thing: object) -> None:
    close = getattr(thing, "close", None)
    if close is not None:
        result = close()
        if hasattr(result, "__await__"):
            await result
