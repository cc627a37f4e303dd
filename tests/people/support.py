"""Helpers for the people tests: a runtime from a TOML config, a real HTTP server for its
app in the test's own event loop, and a VALIDATED incident."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn

from alertengine.engine import Change
from alertengine.incidents import Stage
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores.factory import open_stores

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LEDGER_KEY = b"l" * 40


async def runtime(toml: str, tmp_path: Path) -> Runtime:
    config = parse_config(tomllib.loads(toml))
    ledger, store = open_stores(f"sqlite:///{tmp_path / 'ae.db'}", ledger_key=LEDGER_KEY)
    settings = Settings.from_env({"ALERT_SECRET": "s" * 48, "NOTIFY_WEBHOOK_SECRET": "n" * 40})
    rt = await build_runtime(config, ledger=ledger, store=store, settings=settings)
    await sync_tenants(rt)
    return rt


async def close(rt: Runtime) -> None:
    await rt.drain()
    await rt.http.aclose()
    await rt.ledger.close()
    await rt.store.close()


@contextlib.asynccontextmanager
async def served(rt: Runtime) -> AsyncIterator[str]:
    """The runtime's app under uvicorn on a free loopback port, in this event loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(rt, run_loop=False)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), task
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def validated(
    rt: Runtime,
    tenant: str = "t1",
    service: str = "shop",
    *,
    diagnosis: dict[str, Any] | None = None,
) -> str:
    snap: dict[str, Any] = {"score": 20.0, "status": "critical", "error_rate": 0.3}
    state, _ = await rt.engine.open(tenant, service, reason="error rate 30%", snapshot=snap)
    i = state.incident_id
    await rt.engine.transition(
        tenant, i, Change(Stage.PROPOSED, "policy", "degraded", data={"action": "restart"})
    )
    if diagnosis is not None:
        await rt.engine.record(tenant, i, kind="diagnosis", actor="diagnosis:rules", data=diagnosis)
    await rt.engine.transition(tenant, i, Change(Stage.VALIDATED, "policy", "real"))
    return i
