"""A restart must not undo what people changed at run time: "Bob covers Alice on Saturday"
added from the CLI, API or dashboard survives the next start with the same config file, and
survives a changed config file too (laid on top of the new version). Only a schedule the file
no longer defines goes. On every state store (memory, SQLite, real Redis)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest

from alertengine.oncall.registry import CONFIG_ACTOR, OnCallRegistry
from alertengine.oncall.schedule import schedule_from_dict
from alertengine.tenants import TenantRegistry
from tests.stores.conftest import HandClock

CONFIG = {
    "name": "primary",
    "timezone": "America/New_York",
    "layers": [{"people": ["alice", "bob"], "every": "daily", "start": "2026-11-01T09:00"}],
}
#: Bob covers Alice on Saturday 7 Nov (Alice's day) 09:00-21:00.
OVERRIDE = {"who": "bob", "covers": "alice", "start": "2026-11-07T09:00", "end": "2026-11-07T21:00"}
SATURDAY_NOON = datetime(2026, 11, 7, 17, tzinfo=timezone.utc)  # 12:00 in New York


@pytest.mark.redis
async def test_run_time_overrides_survive_restarts_and_config_changes(state_backend) -> None:  # type: ignore[no-untyped-def]
    log: list[tuple[str, str, str]] = []

    async def record(t: str, kind: str, actor: str, decision: str, _r: str,
                     _d: Mapping[str, Any]) -> None:  # fmt: skip
        log.append((kind, decision, actor))

    clock = HandClock()
    store = state_backend.open()
    try:
        await TenantRegistry(store).add("acme", "Acme")
        await TenantRegistry(store).set_approvers("acme", "web", ["alice", "bob", "carol"])

        def start() -> OnCallRegistry:  # a fresh process reading the same store
            return OnCallRegistry(store, record, clock)

        assert await start().sync_config("acme", [schedule_from_dict(CONFIG)]) == ["primary"]
        assert await start().who("acme", SATURDAY_NOON) == ["alice"]
        await start().add_override("acme", "primary", OVERRIDE, actor="operator:dana")
        assert await start().who("acme", SATURDAY_NOON) == ["bob"]

        # Restart with the same file: the override stands, nothing is ledgered.
        assert await start().sync_config("acme", [schedule_from_dict(CONFIG)]) == []
        assert await start().who("acme", SATURDAY_NOON) == ["bob"]

        # The file changes (carol joins the rotation): the new version, the override on top.
        changed = {**CONFIG, "layers": [{**CONFIG["layers"][0], "people": ["alice", "carol"]}]}  # type: ignore[dict-item]
        assert await start().sync_config("acme", [schedule_from_dict(changed)]) == ["primary"]
        sunday_noon = datetime(2026, 11, 8, 17, tzinfo=timezone.utc)
        assert await start().who("acme", sunday_noon) == ["carol"]  # the new rotation ...
        assert await start().who("acme", SATURDAY_NOON) == ["bob"]  # ... and the override
        assert await start().sync_config("acme", [schedule_from_dict(changed)]) == []

        # The file drops the schedule: it goes, override and all.
        assert await start().sync_config("acme", []) == ["primary"]
        assert await start().schedules("acme") == []
        assert log == [
            ("schedule", "set", CONFIG_ACTOR),
            ("schedule", "set", "operator:dana"),
            ("schedule", "set", CONFIG_ACTOR),
            ("schedule", "removed", CONFIG_ACTOR),
        ]
    finally:
        await store.close()


async def test_a_schedule_set_at_run_time_stands_until_the_file_changes() -> None:
    from alertengine.stores.memory import MemoryStateStore

    async def record(*_a: Any) -> None:
        return None

    store = MemoryStateStore()
    await TenantRegistry(store).add("acme", "Acme")
    await TenantRegistry(store).set_approvers("acme", "web", ["alice", "bob", "carol"])
    reg = OnCallRegistry(store, record, HandClock())
    await reg.sync_config("acme", [schedule_from_dict(CONFIG)])
    edited = {**CONFIG, "layers": [{**CONFIG["layers"][0], "people": ["bob", "alice"]}]}  # type: ignore[dict-item]
    assert await reg.set_schedule("acme", schedule_from_dict(edited), actor="op", source="cli")
    assert await reg.sync_config("acme", [schedule_from_dict(CONFIG)]) == []
    assert await reg.who("acme", SATURDAY_NOON) == ["bob"]  # the CLI's edit stands
