"""The config alone decides the diagnoser and the council, and each lens uses its own model.

A real runtime drives an incident to diagnosis; Claude is the real client against the local
fake Anthropic API, which records each request (model, system prompt).
"""

from __future__ import annotations

import time
from typing import Any

from alertengine.clock import VirtualClock
from alertengine.ledger import LedgerQuery
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore
from tests.dashboard.helpers import DEGRADED, health
from tests.diagnose.test_council import DB, NET, by_lens
from tests.support.fakes.anthropic import FakeAnthropic

#: The documented default: a fast model (lens A) beside a strong one (lens B).
DEFAULT_COUNCIL_MODELS = ("claude-haiku-4-5", "claude-sonnet-4-6")


async def runtime(fake: Any, orchestrator: dict[str, Any], tenant: dict[str, Any]) -> Runtime:
    clock = VirtualClock(start=time.time())
    settings = Settings.from_env(
        {
            "ALERT_SECRET": "s" * 40,
            "ANTHROPIC_API_KEY": fake.api_key,
            "ANTHROPIC_BASE_URL": fake.base_url,
        }
    )
    assert not settings.council_enabled  # the config alone must be enough
    config = parse_config(
        {
            "orchestrator": {"base_url": "http://approve.test", **orchestrator},
            "tenants": [
                {"id": "acme", "approvers": [{"channel": "web", "address": "alice"}], **tenant}
            ],
            "targets": [{"tenant": "acme", "service": "checkout"}],
        }
    )
    rt = await build_runtime(
        config,
        ledger=MemoryLedgerStore(b"x" * 32),
        store=MemoryStateStore(clock),
        settings=settings,
        clock=clock,
    )
    await sync_tenants(rt)
    return rt


async def diagnose(rt: Runtime) -> Any:
    assert isinstance(rt.clock, VirtualClock)
    for score in (96, 95, 97):
        await rt.orch.push_health("acme", "checkout", health(score, 120.0, 0.0))
        await rt.clock.advance(5)
    state = await rt.orch.push_health("acme", "checkout", DEGRADED)
    assert state is not None
    (entry,) = [
        e for e in await rt.ledger.read(LedgerQuery(tenant_id="acme")) if e.kind == "diagnosis"
    ]
    return entry


def lens_models(fake: FakeAnthropic) -> dict[str, str]:
    return {
        ("A" if "database specialist" in r["system"] else "B"): r["model"] for r in fake.requests
    }


async def test_council_in_the_config_runs_both_lenses_each_with_its_model(
    anthropic_fake: FakeAnthropic,
) -> None:
    anthropic_fake.responder = by_lens(DB, NET)
    models = ("claude-haiku-test-fast", "claude-sonnet-test-strong")
    rt = await runtime(
        anthropic_fake, {"diagnoser": "council", "council_models": list(models)}, {"council": True}
    )
    try:
        entry = await diagnose(rt)
    finally:
        await rt.http.aclose()
    assert len(anthropic_fake.requests) == 2
    assert lens_models(anthropic_fake) == {"A": models[0], "B": models[1]}
    council = entry.data["council"]
    assert council["dissent"]
    assert council["a"]["model"] == f"claude:{models[0]}:latency_database"
    assert council["b"]["model"] == f"claude:{models[1]}:network_dependency"
    assert entry.actor.startswith("diagnosis:council(") and models[1] in entry.actor


async def test_diagnoser_council_alone_is_enough_with_default_fast_and_strong_models(
    anthropic_fake: FakeAnthropic,
) -> None:
    anthropic_fake.responder = by_lens(DB, DB)
    rt = await runtime(anthropic_fake, {"diagnoser": "council"}, {})
    try:
        entry = await diagnose(rt)
    finally:
        await rt.http.aclose()
    assert lens_models(anthropic_fake) == dict(zip("AB", DEFAULT_COUNCIL_MODELS, strict=True))
    assert entry.data["council"]["agree"]


async def test_a_tenant_that_opts_out_gets_one_claude_lens_with_the_configured_model(
    anthropic_fake: FakeAnthropic,
) -> None:
    anthropic_fake.responder = by_lens(DB, NET)
    rt = await runtime(
        anthropic_fake,
        {"diagnoser": "council", "claude_model": "claude-test-single"},
        {"council": False},
    )
    try:
        entry = await diagnose(rt)
    finally:
        await rt.http.aclose()
    assert [r["model"] for r in anthropic_fake.requests] == ["claude-test-single"]
    assert "council" not in entry.data


async def test_a_tenant_council_under_the_claude_diagnoser(anthropic_fake: FakeAnthropic) -> None:
    anthropic_fake.responder = by_lens(DB, NET)
    rt = await runtime(anthropic_fake, {"diagnoser": "claude"}, {"council": True})
    try:
        entry = await diagnose(rt)
    finally:
        await rt.http.aclose()
    assert sorted(r["model"] for r in anthropic_fake.requests) == sorted(DEFAULT_COUNCIL_MODELS)
    assert "council" in entry.data
