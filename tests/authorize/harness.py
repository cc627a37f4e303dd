"""Shared test harness for authorization/execution: build the real components on a backend.

Backends: ``memory``, ``sqlite`` and ``redis``, always all three. Their modules (and the
packages they need, such as ``redis``) are imported here, unconditionally: a missing one
fails the run instead of quietly skipping a backend.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.authorize import Authorizer, TokenSigner
from alertengine.clock import Clock, SystemClock
from alertengine.engine import Change, IncidentEngine
from alertengine.execute import Executor, verify
from alertengine.incidents import Stage
from alertengine.ledger import LedgerStore
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.policy import Policy
from alertengine.stores import MemoryStateStore, StateStore
from alertengine.stores.factory import open_stores
from alertengine.tenants import TenantRegistry

LEDGER_KEY = b"ledger-key-for-tests-0123456789abcdef"
SECRET = b"s" * 16 + b"-test-secret-0123456789abcdef"
WEBHOOK_SECRET = "whsec-test-0123456789-abcdefghijklmnopqrst"  # >= 32 bytes
ALICE = "engineer:web:alice@example.com"
BOB = "engineer:telegram:123456"
CAROL = "engineer:web:carol@example.com"


def backend_params() -> list[Any]:
    """pytest params for every backend; none is ever skipped."""
    return [
        pytest.param("memory", id="memory"),
        pytest.param("sqlite", id="sqlite"),
        pytest.param("redis", id="redis", marks=[pytest.mark.redis]),
    ]


async def open_backend(
    name: str, tmp_path: Path, clock: Clock, redis_url: str | None = None
) -> tuple[LedgerStore, StateStore]:
    if name == "memory":
        return MemoryLedgerStore(LEDGER_KEY), MemoryStateStore(clock)
    url = f"sqlite:///{tmp_path / 'ae.db'}" if name == "sqlite" else str(redis_url)
    return open_stores(url, ledger_key=LEDGER_KEY, clock=clock)


@dataclass
class System:
    clock: Clock
    ledger: LedgerStore
    store: StateStore
    engine: IncidentEngine
    tenants: TenantRegistry
    signer: TokenSigner
    authorizer: Authorizer
    policy: Policy
    executor: Executor | None = None
    http: httpx.AsyncClient | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def close(self) -> None:
        for t in self.tasks:
            if not t.done():
                await asyncio.wait([t], timeout=10)
        if self.http is not None:
            await self.http.aclose()
        await self.store.close()
        await self.ledger.close()


async def build_system(
    backend: str = "memory",
    tmp_path: Path | None = None,
    *,
    clock: Clock | None = None,
    policy: Policy | None = None,
    redis_url: str | None = None,
    webhook_url: str | None = None,
    base_url: str = "http://127.0.0.1",
    execute_on_authorize: bool = True,
    holder: str | None = None,
) -> System:
    clk = clock or SystemClock()
    pol = policy or Policy()
    ledger, store = await open_backend(backend, tmp_path or Path("/tmp"), clk, redis_url)
    engine = IncidentEngine(ledger, clk, lambda _t: pol)
    tenants = TenantRegistry(store, clk)
    signer = TokenSigner(SECRET, clk)
    authorizer = Authorizer(engine, store, signer, tenants, clk, base_url)
    sys = System(clk, ledger, store, engine, tenants, signer, authorizer, pol)
    if webhook_url is not None:
        sys.http = httpx.AsyncClient()
        sys.executor = Executor(
            engine,
            store,
            sys.http,
            clk,
            lambda _t, _s: (webhook_url, WEBHOOK_SECRET),
            holder=holder,
        )
        if execute_on_authorize:
            executor = sys.executor

            def wake(tenant_id: str, incident_id: str) -> None:
                sys.tasks.append(asyncio.ensure_future(executor.run(tenant_id, incident_id)))

            authorizer.on_authorized = wake
    return sys


async def add_tenant(
    sys: System, tenant_id: str = "acme", approvers: dict[str, list[str]] | None = None
) -> str:
    key = await sys.tenants.add(tenant_id, tenant_id.title())
    for channel, ids in (
        approvers or {"web": ["alice@example.com", "carol@example.com"], "telegram": ["123456"]}
    ).items():
        await sys.tenants.set_approvers(tenant_id, channel, ids)
    return key


async def validated_incident(
    sys: System,
    tenant_id: str = "acme",
    service: str = "checkout",
    *,
    action: str = "restart workers",
    diagnosis: dict[str, Any] | None = None,
) -> str:
    state, _ = await sys.engine.open(
        tenant_id,
        service,
        reason="error rate 30%",
        snapshot={"score": 31.0, "status": "critical", "error_rate": 0.3, "p95_ms": 2400.0,
                  "sample_size": 500, "source": "poll"},
    )  # fmt: skip
    i = state.incident_id
    await sys.engine.transition(
        tenant_id, i, Change(Stage.PROPOSED, "policy", "degraded", data={"action": action})
    )
    if diagnosis is not None:
        await sys.engine.record(tenant_id, i, kind="diagnosis", actor="diagnosis:rules",
                                data=diagnosis)  # fmt: skip
    await sys.engine.transition(tenant_id, i, Change(Stage.VALIDATED, "policy", "real"))
    return i


async def entries(sys: System, tenant_id: str, kind: str | None = None) -> list[Any]:
    out = []
    async for e in sys.ledger.scan(tenant_id):
        if kind is None or e.kind == kind:
            out.append(e)
    return out


# --- a recovery-webhook receiver that verifies signatures and dedups by Idempotency-Key -------


@dataclass
class Receiver:
    secret: str = WEBHOOK_SECRET
    fail_first: int = 0  # answer 503 to this many requests first
    always_fail: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    executed: dict[str, dict[str, Any]] = field(default_factory=dict)  # by Idempotency-Key
    bad_signatures: int = 0
    on_request: Callable[[], None] | None = None

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            headers = dict(request.headers)
            if not verify(self.secret, headers, body):
                self.bad_signatures += 1
                return JSONResponse({"error": "bad signature"}, status_code=401)
            self.requests.append({"headers": headers, "body": json.loads(body), "raw": body})
            if self.on_request is not None:
                self.on_request()
            if self.always_fail or len(self.requests) <= self.fail_first:
                return JSONResponse({"error": "down"}, status_code=503)
            key = headers["idempotency-key"]
            if key in self.executed:  # documented receiver behaviour: duplicates are no-ops
                return JSONResponse({"duplicate": True}, status_code=200)
            self.executed[key] = json.loads(body)
            return JSONResponse({"ok": True}, status_code=200)

        return Starlette(routes=[Route("/recover", hook, methods=["POST"])])


async def authorized(sys: System) -> str:
    """A VALIDATED incident of a new tenant ``acme``, authorized by alice; its id."""
    await add_tenant(sys)
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, ALICE)
    assert (await sys.authorizer.confirm(link.token)).authorized
    return i
