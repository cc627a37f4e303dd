"""A runtime with the dashboard mounted, and helpers to drive incidents through it."""

from __future__ import annotations

from typing import Any

from alertengine.clock import VirtualClock
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.dashboard import dashboard_routes
from alertengine.orchestrator.runtime import Runtime, build_runtime, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore

ADMIN_KEY = "a" * 40
CONFIG: dict[str, Any] = {
    "orchestrator": {"base_url": "http://approve.test"},
    "tenants": [
        {"id": "acme", "approvers": [{"channel": "web", "address": "alice"}]},
        {"id": "globex", "approvers": [{"channel": "web", "address": "bob"}]},
    ],
    "targets": [
        {"tenant": "acme", "service": "checkout"},
        {"tenant": "globex", "service": "billing"},
    ],
}


def health(score: float, p95: float, err: float, n: int = 300) -> dict[str, Any]:
    status = "critical" if score < 40 else "warning" if score < 70 else "ok"
    return {
        "status": status,
        "health_score": {"score": score, "status": status, "trend": "stable"},
        "metrics": {"overall_p95_ms": p95, "error_rate": err, "sample_size": n},
        "alerts": [],
    }


DEGRADED = health(30, 2900.0, 0.22)


async def make_runtime() -> Runtime:
    clock = VirtualClock()
    settings = Settings.from_env({"ALERT_SECRET": "s" * 40, "ALERTENGINE_ADMIN_KEY": ADMIN_KEY})
    rt = await build_runtime(
        parse_config(CONFIG),
        ledger=MemoryLedgerStore(b"x" * 32),
        store=MemoryStateStore(clock),
        settings=settings,
        clock=clock,
    )
    await sync_tenants(rt)
    rt.extra_routes.extend(dashboard_routes(rt))
    return rt


async def authorized_incident(rt: Runtime, tenant: str = "acme", service: str = "checkout") -> str:
    """Healthy history, a degradation, then approval through the real Authorizer."""
    assert isinstance(rt.clock, VirtualClock)
    for score in (96, 95, 97):
        await rt.orch.push_health(tenant, service, health(score, 120.0, 0.0))
        await rt.clock.advance(5)
    state = await rt.orch.push_health(tenant, service, DEGRADED)
    assert state is not None and state.stage.value == "VALIDATED", state
    await rt.clock.advance(5)
    link = await rt.authorizer.issue(tenant, state.incident_id, "engineer:web:alice")
    await rt.clock.advance(5)
    result = await rt.authorizer.confirm(link.token)
    assert result.ok and result.authorized, result
    return state.incident_id
