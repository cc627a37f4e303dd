"""Quorum counts people, not channels: over real HTTP, one person through two or three
channels counts once (the second attempt: 409 "already approved", ledgered), concurrently
too; the two-person rule is met only by two people.

The ``legacy`` variant is a flat ``approvers`` list whose entries share an ``identity``; the
``people`` variant is ``[[tenants.people]]``. Both pin the defect of issue 11 (one human with
a web link and a Telegram chat satisfied a two-person rule alone).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertengine.incidents import Stage
from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.runtime import Runtime
from tests.people.support import close, runtime, served, validated

DAVE = ("http://127.0.0.1:9/dave", "222222", "dave@example.com")
ERIN = "http://127.0.0.1:9/erin"

HEAD = """
[orchestrator]
base_url = "http://127.0.0.1:1"
[[tenants]]
id = "t1"
"""
POLICY = """
[tenants.policy]
approvals_required = 2
forbid_deployer_sole_approval = false
"""
LEGACY = (
    HEAD
    + f"""approvers = [
  {{ channel = "webhook", address = "{DAVE[0]}", identity = "dave" }},
  {{ channel = "telegram", address = "{DAVE[1]}", identity = "dave" }},
  {{ channel = "web", address = "{DAVE[2]}", identity = "dave" }},
  {{ channel = "webhook", address = "{ERIN}", identity = "erin" }},
]"""
    + POLICY
)
PEOPLE = (
    HEAD
    + POLICY
    + f"""
[[tenants.people]]
id = "dave"
name = "Dave"
channels = [
  {{ channel = "webhook", address = "{DAVE[0]}" }},
  {{ channel = "telegram", address = "{DAVE[1]}" }},
  {{ channel = "web", address = "{DAVE[2]}" }},
]
[[tenants.people]]
id = "erin"
channels = [{{ channel = "webhook", address = "{ERIN}" }}]
"""
)
CONFIGS = [pytest.param(LEGACY, id="legacy-shared-identity"), pytest.param(PEOPLE, id="people")]


async def links(rt: Runtime, incident: str) -> tuple[list[Any], Any]:
    """Dave's links (one per channel) and Erin's, issued as the notifier issues them."""
    route = rt.notifier.route("t1")
    dave = [
        await rt.authorizer.issue("t1", incident, r.identity) for r in route if r.address in DAVE
    ]
    (erin,) = [
        await rt.authorizer.issue("t1", incident, r.identity) for r in route if r.address == ERIN
    ]
    assert len(dave) == 3
    return dave, erin


@contextlib.asynccontextmanager
async def dave_and_erin(toml: str, tmp: Path) -> AsyncIterator[tuple[Runtime, str, list[Any], Any]]:
    """The runtime of ``toml``, a VALIDATED incident, Dave's links and Erin's; closed after."""
    rt = await runtime(toml, tmp)
    try:
        incident = await validated(rt)
        dave, erin = await links(rt, incident)
        yield rt, incident, dave, erin
    finally:
        await close(rt)


async def confirm(c: httpx.AsyncClient, token: str) -> httpx.Response:
    return await c.post(
        "/action/recover/confirm", json={"token": token}, headers={"Accept": "application/json"}
    )


async def stage(rt: Runtime, incident: str) -> Stage:
    await rt.engine.refresh("t1")
    s = await rt.engine.get("t1", incident)
    assert s is not None
    return s.stage


def authorized_by(entries: list[Any]) -> list[str]:
    return [e.actor for e in entries if e.kind == "transition" and e.stage == "AUTHORIZED"]


@pytest.mark.parametrize("toml", CONFIGS)
async def test_one_person_through_two_channels_counts_once(toml: str, tmp_path: Path) -> None:
    async with dave_and_erin(toml, tmp_path) as (rt, incident, dave, erin):
        async with served(rt) as base, httpx.AsyncClient(base_url=base) as c:
            first = await confirm(c, dave[0].token)
            assert first.status_code == 202, first.text
            second = await confirm(c, dave[1].token)  # the same human, through Telegram's link
            assert second.status_code == 409, second.text
            assert second.json()["message"] == "You have already approved this incident."
            assert await stage(rt, incident) is Stage.VALIDATED
            done = await confirm(c, erin.token)
            assert done.status_code == 200 and done.json()["authorized"], done.text
        ledger = await rt.ledger.read(LedgerQuery(tenant_id="t1", incident_id=incident))
        refused = [e for e in ledger if e.kind == "refused"]
        assert [(e.actor, e.data["problem"]) for e in refused] == [
            ("person:dave", "already_approved")
        ]
        approvals = [e.actor for e in ledger if e.kind == "approval"]
        assert approvals == ["person:dave", "person:erin"]
        assert authorized_by(ledger) == ["person:erin"]


@pytest.mark.parametrize("toml", CONFIGS)
async def test_concurrent_confirms_through_three_channels_count_once(
    toml: str, tmp_path: Path
) -> None:
    async with dave_and_erin(toml, tmp_path) as (rt, incident, dave, erin):
        async with served(rt) as base, httpx.AsyncClient(base_url=base) as c:
            rs = await asyncio.gather(*(confirm(c, link.token) for link in dave))
            assert sorted(r.status_code for r in rs) == [202, 409, 409], [r.text for r in rs]
            assert await stage(rt, incident) is Stage.VALIDATED  # one person is not two
            done = await confirm(c, erin.token)
            assert done.status_code == 200, done.text
        ledger = await rt.ledger.read(LedgerQuery(tenant_id="t1", incident_id=incident))
        assert sum(e.kind == "refused" for e in ledger) == 2
        assert authorized_by(ledger) == ["person:erin"]


@pytest.mark.parametrize("toml", CONFIGS)
async def test_two_people_confirming_at_once_meet_the_two_person_rule(
    toml: str, tmp_path: Path
) -> None:
    async with dave_and_erin(toml, tmp_path) as (rt, incident, dave, erin):
        async with served(rt) as base, httpx.AsyncClient(base_url=base) as c:
            rs = await asyncio.gather(confirm(c, dave[1].token), confirm(c, erin.token))
        codes = sorted(r.status_code for r in rs)
        # Both count; whoever completes the quorum authorizes (a racing loser may be told
        # the incident moved on, but its approval was recorded first).
        assert codes in ([200, 202], [200, 409]), [r.text for r in rs]
        assert await stage(rt, incident) in (Stage.AUTHORIZED, Stage.WEBHOOK_FAILED)
        ledger = await rt.ledger.read(LedgerQuery(tenant_id="t1", incident_id=incident))
        assert {e.actor for e in ledger if e.kind == "approval"} == {"person:dave", "person:erin"}


@pytest.mark.parametrize("toml", CONFIGS)
async def test_a_telegram_button_maps_the_chat_user_to_their_person(
    toml: str, tmp_path: Path
) -> None:
    async with dave_and_erin(toml, tmp_path) as (rt, incident, dave, erin):
        async with served(rt) as base, httpx.AsyncClient(base_url=base) as c:
            assert (await confirm(c, dave[0].token)).status_code == 202
        # Dave (Telegram user 222222) presses a button carrying Erin's link.
        tapped = await rt.authorizer.confirm_identity("telegram", DAVE[1], f"ae:{erin.jti}")
        assert (tapped.status, tapped.approver) == (409, "person:dave"), tapped
        assert await stage(rt, incident) is Stage.VALIDATED
        # Erin's link was not spent by Dave's refused tap.
        async with served(rt) as base, httpx.AsyncClient(base_url=base) as c:
            assert (await confirm(c, erin.token)).status_code == 200
