"""A runtime for the People page tests: two tenants (both with an ``alice``), a schedule, a
WhatsApp template, and Twilio configured (or not), on a real SQLite file the CLI can open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores.factory import open_stores

LEDGER_KEY = "l" * 40
ADMIN_KEY = "a" * 40
AUTH_TOKEN = "twilio-auth-token-never-shown-7f3a9"
ALICE_WA = "+263771234567"
SID = "HX" + "0123456789abcdef" * 2
TWILIO_ENV = {
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "TWILIO_WHATSAPP_FROM": "whatsapp:+15550001111",
    "TWILIO_VOICE_FROM": "+15550002222",
    "TWILIO_API_BASE": "http://127.0.0.1:9",  # never called: nothing is sent in these tests
}


def config(*, base_url: str = "https://alerts.example.com", content_sid: str = SID) -> Any:
    return {
        "orchestrator": {"base_url": base_url},
        "tenants": [
            {
                "id": "acme",
                "whatsapp_content_sid": content_sid,
                "people": [
                    {"id": "alice", "name": "Alice A", "github": ["alice-gh"], "channels": [
                        {"channel": "telegram", "address": "4242"},
                        {"channel": "whatsapp", "address": ALICE_WA},
                    ]},
                    {"id": "bob", "name": "Bob B", "channels": [
                        {"channel": "web", "address": "bob@example.com"},
                    ]},
                ],
                "schedules": [{"name": "primary", "timezone": "UTC", "layers": [
                    {"name": "day", "people": ["alice"], "every": "weekly",
                     "start": "2026-01-05T09:00"},
                ]}],
            },
            {
                "id": "globex",
                "people": [
                    {"id": "zed", "channels": [{"channel": "telegram", "address": "999"}]},
                    {"id": "alice", "channels": [{"channel": "telegram", "address": "777"}]},
                ],
            },
        ],
        "targets": [{"tenant": "acme", "service": "checkout"},
                    {"tenant": "globex", "service": "b"}],
    }  # fmt: skip


def store_url(tmp: Path) -> str:
    return f"sqlite:///{tmp / 'ae.db'}"


async def make_runtime(tmp: Path, *, twilio: bool = True, **cfg: str) -> Runtime:
    env = {"ALERT_SECRET": "s" * 48, "ALERTENGINE_ADMIN_KEY": ADMIN_KEY}
    if twilio:
        env.update(TWILIO_ENV)
    ledger, store = open_stores(store_url(tmp), ledger_key=LEDGER_KEY.encode())
    rt = await build_runtime(
        parse_config(config(**cfg)), ledger=ledger, store=store, settings=Settings.from_env(env)
    )
    await sync_tenants(rt)
    return rt


async def close(rt: Runtime) -> None:
    await rt.drain()
    await rt.http.aclose()
    await rt.ledger.close()
    await rt.store.close()
