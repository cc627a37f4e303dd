"""The on-call registry on every state store (memory, SQLite, real Redis): what one process
writes, another reads; every change reaches the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest

from alertengine.oncall.registry import OnCallRegistry
from alertengine.oncall.schedule import schedule_from_dict
from alertengine.oncall.silences import incident_labels, parse_matcher
from alertengine.tenants import TenantRegistry
from tests.stores.conftest import HandClock

SCHEDULE = {
    "name": "primary",
    "timezone": "Asia/Kolkata",
    "layers": [{"people": ["alice", "bob"], "every": "weekly", "start": "2027-01-04T10:00"}],
}


@pytest.mark.redis
async def test_schedules_and_silences_persist_across_registries(state_backend) -> None:  # type: ignore[no-untyped-def]
    log: list[tuple[str, str, str]] = []

    async def record(t: str, kind: str, actor: str, decision: str, _r: str,
                     _d: Mapping[str, Any]) -> None:  # fmt: skip
        log.append((kind, decision, actor))

    clock = HandClock()
    clock.t = datetime(2027, 1, 12, tzinfo=timezone.utc).timestamp()
    writer_store = state_backend.open()
    reader_store = state_backend.open()
    try:
        await TenantRegistry(writer_store).add("acme", "Acme")
        await TenantRegistry(writer_store).set_approvers("acme", "web", ["alice", "bob"])
        writer = OnCallRegistry(writer_store, record, clock)
        reader = OnCallRegistry(reader_store, record, clock)
        assert await writer.set_schedule("acme", schedule_from_dict(SCHEDULE), actor="op:a")
        at = datetime(2027, 1, 12, 6, tzinfo=timezone.utc)  # 11:30 IST Tuesday, week 2: bob
        assert await reader.who("acme", at) == ["bob"]
        s = await writer.add_silence(
            "acme", [parse_matcher("service=~check.*")], starts_at=None,
            ends_at=clock.t + 600, created_by="alice", comment="deploy", actor="op:a",
        )  # fmt: skip
        labels = incident_labels("acme", "checkout")
        assert (await reader.silencing("acme", labels, clock.t)) == s
        assert await reader.silencing("globex", labels, clock.t) is None
        await reader.expire_silence("acme", s.id, actor="op:b")
        assert await writer.silencing("acme", labels, clock.t) is None
        assert log == [
            ("schedule", "set", "op:a"),
            ("silence", "created", "op:a"),
            ("silence", "expired", "op:b"),
        ]
    finally:
        await writer_store.close()
        if reader_store is not writer_store:
            await reader_store.close()
