"""A runtime with schedules for the on-call dashboard tests (a Saturday, 12:00 UTC)."""

from __future__ import annotations

from typing import Any

from alertengine.clock import VirtualClock
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore

SATURDAY_NOON = 1796472000.0  # 2026-12-05T12:00:00Z
CONFIG: dict[str, Any] = {
    "orchestrator": {"base_url": "http://approve.test"},
    "tenants": [
        {
            "id": "acme",
            "approvers": [
                {"channel": "web", "address": "alice"},
                {"channel": "web", "address": "bob"},
                {"channel": "web", "address": "carol"},
            ],
            "schedules": [
                {
                    "name": "primary",
                    "timezone": "Europe/Berlin",
                    "layers": [
                        {"name": "day", "people": ["alice", "bob"], "every": "daily",
                         "start": "2026-12-01T09:00"},
                        {"name": "backup", "people": ["carol"], "every": "weekly",
                         "start": "2026-11-30T09:00"},
                    ],
                    "overrides": [{"who": "carol", "covers": "bob", "start": "2026-12-08T09:00",
                                   "end": "2026-12-08T21:00"}],
                }
            ],
        },
        {"id": "globex", "approvers": [{"channel": "web", "address": "zed"}]},
    ],
    "targets": [{"tenant": "acme", "service": "checkout"}, {"tenant": "globex", "service": "b"}],
}  # fmt: skip


async def make_runtime() -> Runtime:
    clock = VirtualClock(SATURDAY_NOON)
    settings = Settings.from_env({"ALERT_SECRET": "s" * 40, "ALERTENGINE_ADMIN_KEY": "a" * 40})
    rt = await build_runtime(
        parse_config(CONFIG),
        ledger=MemoryLedgerStore(b"x" * 32),
        store=MemoryStateStore(clock),
        settings=settings,
        clock=clock,
    )
    await sync_tenants(rt)
    return rt
