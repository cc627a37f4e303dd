"""A wired orchestrator served in-process (ASGI) for tests that drive it over HTTP.

The same few steps open every such test: parse the config, read the settings from an
environment mapping, build the runtime on in-memory stores under a virtual clock, sync the
tenants, and talk to ``create_app(run_loop=False)`` through an ``httpx`` client.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from alertengine.clock import VirtualClock
from alertengine.ledger import LedgerStore
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore
from tests.support.fakes.telegram import FakeTelegram

# A health report bad enough to open an incident that validates at once.
DEGRADED = {
    "status": "critical",
    "health_score": {"score": 22, "status": "critical", "trend": "degrading"},
    "metrics": {"overall_p95_ms": 2800.0, "error_rate": 0.19, "sample_size": 250},
    "alerts": [],
}


def telegram_env(tg: FakeTelegram, api_base: str) -> dict[str, str]:
    """Settings for the fake Bot API at ``api_base``; its webhook secret is ``tg-secret``."""
    return {
        "ALERT_SECRET": "s" * 48,
        "TELEGRAM_BOT_TOKEN": tg.token,
        "TELEGRAM_API_BASE": api_base,
        "TELEGRAM_WEBHOOK_SECRET": "tg-secret",
    }


@dataclass
class Wired:
    rt: Runtime
    client: httpx.AsyncClient
    clock: VirtualClock


@asynccontextmanager
async def wired_app(
    config: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    base_url: str,
    ledger: LedgerStore | None = None,
) -> AsyncIterator[Wired]:
    """The runtime of ``config`` with settings from ``env``, and a client of its app.

    The runtime's HTTP client is left open: callers close ``rt.http`` where they did before.
    """
    clock = VirtualClock(start=time.time())
    rt = await build_runtime(
        parse_config(dict(config)),
        ledger=ledger if ledger is not None else MemoryLedgerStore(b"k" * 32),
        store=MemoryStateStore(clock),
        settings=Settings.from_env(dict(env)),
        clock=clock,
    )
    await sync_tenants(rt)
    app = create_app(rt, run_loop=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as c:
        yield Wired(rt, c, clock)
