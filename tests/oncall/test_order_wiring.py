"""The notifier asks whoever the schedule has on call first; config schedules are ledgered."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from alertengine.ledger import LedgerQuery
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.orchestrator.config import ConfigError, parse_config
from alertengine.orchestrator.runtime import sync_tenants
from tests.support.fakes.telegram import FakeTelegram
from tests.support.servers import serve
from tests.support.wired import DEGRADED, wired_app


def cfg(schedule_people: list[str]) -> dict[str, object]:
    return {
        "tenants": [
            {
                "id": "acme",
                "approvers": [
                    {"channel": "telegram", "address": "1001", "identity": "alice"},
                    {"channel": "telegram", "address": "1002", "identity": "bob"},
                    {"channel": "telegram", "address": "1003", "identity": "carol"},
                ],
                "schedules": [
                    {
                        "name": "primary",
                        "timezone": "UTC",
                        "layers": [
                            {"name": "day", "people": schedule_people, "every": "daily",
                             "start": "2020-01-01T00:00"}
                        ],
                    }
                ],
            }
        ],
        "targets": [{"tenant": "acme", "service": "checkout"}],
    }  # fmt: skip


async def test_whoever_is_on_call_is_asked_first_and_config_changes_are_ledgered() -> None:
    tg = FakeTelegram()
    with serve(tg.app) as tg_url:
        env = {
            "ALERT_SECRET": "s" * 48,
            "TELEGRAM_BOT_TOKEN": tg.token,
            "TELEGRAM_API_BASE": tg_url,
        }
        ledger = MemoryLedgerStore(b"k" * 32)
        # carol is the only person of the rotation: on call whatever the day.
        async with wired_app(cfg(["carol"]), env, base_url="http://orch.test", ledger=ledger) as w:
            rt, client, clock = w.rt, w.client, w.clock
            key = {"Authorization": f"Bearer {rt.new_keys['acme']}"}
            r = await client.post("/intake/health?service=checkout", json=DEGRADED, headers=key)
            assert r.json()["incident"]["stage"] == "VALIDATED"
            assert [str(m["chat_id"]) for m in tg.sent] == ["1003"]  # not alice, the first
            who = (await client.get("/oncall", headers=key)).json()
            assert who["on_call"] == ["carol"] and who["shifts"]["primary"]
        entries = await ledger.read(LedgerQuery(tenant_id="acme"))
        (sched,) = [e for e in entries if e.kind == "schedule"]
        assert sched.actor == "config" and sched.decision == "set"
        # The same config again: no new entry. A different one: ledgered.
        await sync_tenants(rt)
        assert len([e for e in await ledger.read(LedgerQuery(tenant_id="acme"))
                    if e.kind == "schedule"]) == 1  # fmt: skip
        assert rt.oncall is not None
        await rt.oncall.sync_config(
            "acme", parse_config(cfg(["bob", "carol"])).tenants[0].on_call()
        )
        changed = [e for e in await ledger.read(LedgerQuery(tenant_id="acme"))
                   if e.kind == "schedule"]  # fmt: skip
        assert len(changed) == 2 and changed[-1].data["previous"]["layers"][0]["people"] == [
            "carol"
        ]
        now = datetime.fromtimestamp(clock.now(), timezone.utc)
        assert len(await rt.oncall.who("acme", now)) == 1


def test_a_schedule_naming_someone_who_is_not_an_approver_stops_start_up() -> None:
    with pytest.raises(ConfigError, match=r"schedules.primary: \['mallory'\] not among"):
        parse_config(cfg(["carol", "mallory"]))


def test_a_bad_schedule_names_the_field() -> None:
    bad = cfg(["carol"])
    bad["tenants"][0]["schedules"][0]["timezone"] = "Nowhere/Land"  # type: ignore[index]
    with pytest.raises(ConfigError, match="unknown timezone"):
        parse_config(bad)
