"""Process-level fault cases: a real ``alertengine serve`` on a SQLite file, a tenant-side
receiver that records every call, and the real HTTP path to an approval.

The orchestrator runs at default settings (loop interval, webhook timeout and backoff,
lease times); only the policy's detection thresholds are lowered so two pushed health
reports validate an incident. Every process is started here and stopped by its own pid.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alertengine.clock import SystemClock
from alertengine.execute.signing import IDEMPOTENCY_HEADER, verify
from alertengine.ledger import Entry, LedgerQuery
from alertengine.ledger.sqlite import SqliteLedgerStore
from alertengine.stores.sqlite import SqliteStateStore
from alertengine.tenants import TenantRegistry
from tests.scale.cluster import ROOT, SECRETS, Proc, critical, inbox_route, until, wait_http
from tests.support.redis_server import free_port
from tests.support.servers import ServerThread

TENANT = "acme"
SERVICE = "checkout"
#: The promise in docs/orchestrator.md: after a SIGKILL, EXECUTED within 5 s of restart.
RESTART_TO_EXECUTED_S = 5.0

CRITICAL = critical(SERVICE)


@dataclass
class Call:
    key: str
    at: float  # wall clock
    ok: bool  # answered 2xx (for a held call: would have, had the sender waited)


@dataclass
class FaultReceiver:
    """The tenant's side: an inbox for approval messages and the recovery webhook.

    The webhook de-duplicates by ``Idempotency-Key`` (as docs/webhooks.md asks receivers
    to): ``executed`` holds the keys it acted on. With ``hold_first`` the first call is
    received and recorded, then not answered until ``release`` is set (or ever).
    """

    hold_first: bool = False
    fail: bool = False  # answer 503 to every call (the endpoint is down)
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def app(self) -> Starlette:
        async def recover(request: Request) -> Response:
            body = await request.body()
            if not verify(SECRETS["SCALE_RECOVERY_SECRET"].encode(), dict(request.headers), body):
                return JSONResponse({"error": "bad signature"}, status_code=401)
            key = request.headers.get(IDEMPOTENCY_HEADER, "")
            self.calls.append(Call(key, time.time(), not self.fail))
            if self.fail:
                return JSONResponse({"error": "down"}, status_code=503)
            if key not in self.executed:
                self.executed.append(key)
            if self.hold_first and len(self.calls) == 1:
                while not self.release.is_set():  # the sender is killed while it waits
                    await asyncio.sleep(0.02)
            return JSONResponse({"ok": True})

        return Starlette(
            routes=[inbox_route(self.messages), Route("/recover", recover, methods=["POST"])]
        )

    def approve_token(self, n: int = -1) -> str:
        url = str(self.messages[n]["approve_url"])
        return parse_qs(urlsplit(url).query)["token"][0]


def config_toml(db: Path, port: int, receiver: str) -> str:
    return f"""
[orchestrator]
store_url = "sqlite:///{db}"
base_url = "http://127.0.0.1:{port}"
port = {port}

[[tenants]]
id = "{TENANT}"
approvers = [{{ channel = "webhook", address = "{receiver}/inbox", identity = "alice" }}]

[tenants.policy]
open_p95_ms = 300
min_sample_size = 5
validate_after_polls = 2

[[targets]]
tenant = "{TENANT}"
service = "{SERVICE}"
recovery_webhook = "{receiver}/recover"
webhook_secret_env = "SCALE_RECOVERY_SECRET"
action = "restart checkout workers"
"""


class Deployment:
    """One orchestrator on one SQLite file, started and killed as the test says."""

    def __init__(self, tmp: Path, receiver: FaultReceiver) -> None:
        self.tmp = tmp
        self.db = tmp / "ae.db"
        self.url = f"sqlite:///{self.db}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.receiver = receiver
        self.server = ServerThread(receiver.app())
        self.server.start()
        self.config = tmp / "alertengine.toml"
        self.config.write_text(config_toml(self.db, self.port, self.server.base_url))
        self.procs: list[Proc] = []
        self.api_key = ""

    def start(self, **env: str) -> Proc:
        n = len(self.procs)
        p = Proc(
            [sys.executable, "-m", "alertengine", "serve", "--config", str(self.config),
             "--log-level", "warning"],
            env={**SECRETS, "ALERTENGINE_STORE_URL": self.url, "REDIS_URL": "", **env},
            log=self.tmp / f"orch{n}.log",
        )  # fmt: skip
        self.procs.append(p)
        return p

    async def ready(self, p: Proc, timeout_s: float = 60) -> None:
        await wait_http(f"{self.base}/healthz", timeout_s, [p])

    def close(self) -> None:
        for p in self.procs:
            p.stop()
        self.receiver.release.set()
        self.server.stop()

    # -- the tenant's key, straight from the store (what `alertengine tenant rotate-key` does)

    async def mint_key(self) -> str:
        store = SqliteStateStore(self.db)
        try:
            self.api_key = await TenantRegistry(store, SystemClock()).rotate_key(TENANT)
        finally:
            await store.close()
        return self.api_key

    # -- the path a person takes -------------------------------------------------------------

    async def validated_and_asked(self, p: Proc) -> str:
        """Push bad health until an incident is VALIDATED and its link reached the inbox."""
        async with httpx.AsyncClient(timeout=10) as c:
            for _ in range(3):
                r = await c.post(
                    f"{self.base}/intake/health",
                    params={"service": SERVICE},
                    json=CRITICAL,
                    headers={"Authorization": f"Bearer {self.api_key}"},
                )
                assert r.status_code == 202, r.text
        await until(self._has_message, 30, f"no approval message:\n{p.tail()}")
        return self.receiver.approve_token()

    async def _has_message(self) -> bool:
        return bool(self.receiver.messages)

    async def confirm(self, token: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=15) as c:
            return await c.post(f"{self.base}/action/recover/confirm", data={"token": token})

    # -- what the ledger says (read from the file, as an auditor would) -----------------------

    async def entries(self) -> list[Entry]:
        ledger = SqliteLedgerStore(self.db, key=SECRETS["ALERTENGINE_LEDGER_KEY"].encode())
        try:
            return await ledger.read(LedgerQuery(tenant_id=TENANT))
        finally:
            await ledger.close()

    async def stage_entry(self, stage: str) -> Entry | None:
        for e in await self.entries():
            if e.kind == "transition" and e.stage == stage:
                return e
        return None

    async def wait_stage(self, stage: str, timeout_s: float, p: Proc) -> Entry:
        async def seen() -> Entry | None:
            assert p.p.poll() is None, f"orchestrator exited:\n{p.tail()}"
            return await self.stage_entry(stage)

        return await until(seen, timeout_s, f"no {stage} in {timeout_s} s:\n{p.tail()}", 0.05)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """An ``alertengine`` command on the same store, as an operator would run it."""
        return subprocess.run(
            [sys.executable, "-m", "alertengine", *args, "--store-url", self.url],
            cwd=ROOT,
            env={**os.environ, **SECRETS},
            capture_output=True,
            text=True,
            timeout=60,
        )


async def wait_log(p: Proc, text: str, timeout_s: float) -> None:
    async def seen() -> bool:
        assert p.p.poll() is None, f"orchestrator exited:\n{p.tail()}"
        return text in p.log.read_text(errors="replace")

    await until(seen, timeout_s, f"{text!r} not in the log:\n{p.tail()}", 0.05)


def assert_one_execution(entries: list[Entry], receiver: FaultReceiver) -> None:
    """One successful execution: one key at the receiver, acted on once, one success and
    one EXECUTED in the ledger, with that key."""
    keys = {c.key for c in receiver.calls if c.ok}
    assert len(keys) == 1 and len(receiver.executed) == 1, receiver.calls
    execs = [e for e in entries if e.kind == "execution"]
    succeeded = [e for e in execs if e.decision == "succeeded"]
    assert len(succeeded) == 1, [e.reason for e in execs]
    executed = [e for e in entries if e.kind == "transition" and e.stage == "EXECUTED"]
    assert len(executed) == 1
    assert executed[0].data["idempotency_key"] == succeeded[0].data["idempotency_key"]
    assert keys == {executed[0].data["idempotency_key"]}
