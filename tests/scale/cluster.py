"""Helpers for the scale-out tests: real processes by pid, a tenant-side receiver, a config.

Everything listens on 127.0.0.1; every process is started here and stopped by its own pid.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alertengine.execute.signing import IDEMPOTENCY_HEADER, verify
from alertengine.ledger import LedgerQuery, LedgerStore
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
TENANT = "t1"
SERVICE = "shop"
T = TypeVar("T")

SECRETS = {
    "ALERT_SECRET": "a" * 48,
    "ALERTENGINE_LEDGER_KEY": "l" * 48,
    "ALERTENGINE_ADMIN_KEY": "admin-" + "k" * 32,
    "NOTIFY_WEBHOOK_SECRET": "n" * 40,
    "SCALE_RECOVERY_SECRET": "r" * 40,
}


class Proc:
    """A child process we started; signalled and reaped by its pid only."""

    def __init__(self, args: list[str], *, env: Mapping[str, str] | None = None, log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.p = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.p.pid

    def kill(self) -> None:
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.p.wait(timeout=10)

    def stop(self) -> None:
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()

    def tail(self, n: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def app_proc(port: int, redis_url: str, log: Path) -> Proc:
    return Proc(
        [sys.executable, "-m", "tests.scale.app_worker", "--port", str(port),
         "--redis-url", redis_url],
        log=log,
    )  # fmt: skip


def orch_proc(config: Path, port: int, redis_url: str, log: Path) -> Proc:
    return Proc(
        [sys.executable, "-m", "alertengine", "serve", "--config", str(config),
         "--redis-url", redis_url, "--port", str(port), "--log-level", "warning"],
        env=SECRETS,
        log=log,
    )  # fmt: skip


async def wait_http(url: str, timeout_s: float, procs: list[Proc] = ()) -> None:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1.0) as c:
        while time.monotonic() < deadline:
            for p in procs:
                assert p.p.poll() is None, f"process {p.pid} exited:\n{p.tail()}"
            try:
                if (await c.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout_s} s")


async def until(
    pred: Callable[[], Awaitable[T]], timeout_s: float, what: str, every: float = 0.2
) -> T:
    """Poll ``pred`` until it returns something truthy (and return that), or time out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = await pred()
        if got:
            return got
        await asyncio.sleep(every)
    raise TimeoutError(what)


PUSHED = "pushed"  # a push-only target (no health_url)
ADMIN = {"Authorization": f"Bearer {SECRETS['ALERTENGINE_ADMIN_KEY']}"}


def critical(service: str) -> dict[str, Any]:
    """A pushed health report bad enough to open an incident on ``service``."""
    return {
        "service": service,
        "status": "critical",
        "health_score": {"score": 12.0, "status": "critical"},
        "metrics": {"overall_p95_ms": 2400.0, "error_rate_5xx": 0.3, "sample_size": 500},
    }


CRITICAL = critical(PUSHED)


def config_toml(
    *, base_url: str, receiver: str, health_url: str = "", loop_interval_s: float = 0.5
) -> str:
    policy = {
        "open_p95_ms": 300,
        "min_sample_size": 5,
        "validate_after_polls": 2,
        "recover_polls": 2,
        "webhook_backoff_s": 0.2,
        "webhook_timeout_s": 5,
        "escalate_after_s": 600,
    }
    lines = [
        "[orchestrator]",
        'store_url = "memory://"',
        f'base_url = "{base_url}"',
        f"loop_interval_s = {loop_interval_s}",
        "",
        "[[tenants]]",
        f'id = "{TENANT}"',
        'approvers = [{ channel = "webhook", '
        f'address = "{receiver}/inbox", identity = "alice" }}]',
        "",
        "[tenants.policy]",
        *(f"{k} = {json.dumps(v)}" for k, v in policy.items()),
        "",
        "[[targets]]",
        f'tenant = "{TENANT}"',
        f'service = "{SERVICE}"',
        f'health_url = "{health_url}"' if health_url else "",
        f'recovery_webhook = "{receiver}/recover"',
        'webhook_secret_env = "SCALE_RECOVERY_SECRET"',
        'action = "restart shop workers"',
        "poll_timeout_s = 1.0",
        "",
        "[[targets]]",
        f'tenant = "{TENANT}"',
        f'service = "{PUSHED}"',
        f'recovery_webhook = "{receiver}/recover"',
        'webhook_secret_env = "SCALE_RECOVERY_SECRET"',
    ]
    return "\n".join(lines) + "\n"


class AofRedis:
    """A redis-server that survives SIGKILL without losing a write (AOF, fsync always)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server",
             "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None


def inbox_route(messages: list[dict[str, Any]]) -> Route:
    """POST /inbox: the tenant's phone (the signed webhook channel); keeps what it is sent."""

    async def inbox(request: Request) -> Response:
        body = await request.body()
        if not verify(SECRETS["NOTIFY_WEBHOOK_SECRET"].encode(), dict(request.headers), body):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        messages.append(json.loads(body))
        return JSONResponse({"ok": True})

    return Route("/inbox", inbox, methods=["POST"])


@dataclass
class Receiver:
    """The tenant's side: its phone inbox (the signed webhook channel) and recovery webhook."""

    on_recover: Callable[[], Awaitable[None]] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    recoveries: list[str] = field(default_factory=list)  # Idempotency-Key of every POST

    def app(self) -> Starlette:
        async def recover(request: Request) -> Response:
            body = await request.body()
            if not verify(SECRETS["SCALE_RECOVERY_SECRET"].encode(), dict(request.headers), body):
                return JSONResponse({"error": "bad signature"}, status_code=401)
            self.recoveries.append(request.headers.get(IDEMPOTENCY_HEADER, ""))
            if self.on_recover is not None:
                await self.on_recover()
            return JSONResponse({"ok": True})

        return Starlette(
            routes=[inbox_route(self.messages), Route("/recover", recover, methods=["POST"])]
        )


async def transitions(ledger: LedgerStore, tenant: str = TENANT) -> list[Any]:
    return [
        e
        for e in await ledger.read(LedgerQuery(tenant_id=tenant, limit=100_000))
        if e.kind == "transition"
    ]


def duplicates(entries: list[Any]) -> list[tuple[str, str]]:
    """(incident, stage) pairs moved into more than once."""
    c = collections.Counter((e.incident_id, e.stage) for e in entries)
    return [k for k, n in c.items() if n > 1]


async def load(
    urls: list[str], stop: asyncio.Event, stats: collections.Counter[str], *, per_url: int = 2,
    max_requests: int = 200_000, pause_s: float = 0.02,
) -> None:  # fmt: skip
    """Bounded traffic: ``per_url`` workers per app until ``stop`` or ``max_requests``."""
    async with httpx.AsyncClient(timeout=10) as c:

        async def worker(base: str, i: int) -> None:
            n = 0
            while not stop.is_set() and stats["sent"] < max_requests:
                n += 1
                stats["sent"] += 1
                try:
                    r = await c.get(f"{base}/checkout/{i * 1_000_000 + n}")
                    stats[str(r.status_code)] += 1
                except httpx.HTTPError as exc:
                    stats[type(exc).__name__] += 1
                await asyncio.sleep(pause_s)

        await asyncio.gather(
            *(worker(u, k * per_url + j) for k, u in enumerate(urls) for j in range(per_url))
        )
