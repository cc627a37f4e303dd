"""Migration (flat approvers keep working, check-config shows the people it derived, old
``engineer:…`` ledgers still verify and replay) and separation of duties by person."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertengine.clock import VirtualClock
from alertengine.engine import Change, IncidentEngine
from alertengine.incidents import Stage
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.replay import replay
from alertengine.policy import Policy
from tests.orchestrator.test_config_startup import SECRETS, check
from tests.people.support import close, runtime, validated
from tests.people.test_quorum_http import DAVE
from tests.people.test_quorum_http import LEGACY as QUORUM_LEGACY

LEGACY = """
[orchestrator]
store_url = "sqlite:///{db}"
[[tenants]]
id = "acme"
approvers = [
  {{ channel = "webhook", address = "http://127.0.0.1:9/dave", identity = "dave" }},
  {{ channel = "telegram", address = "222222", identity = "dave" }},
  {{ channel = "webhook", address = "http://127.0.0.1:9/erin", identity = "erin" }},
  {{ channel = "webhook", address = "http://127.0.0.1:9/x", identity = "Zoe Q" }},
]
"""


def test_check_config_shows_the_people_derived_from_flat_approvers(tmp_path: Path) -> None:
    r = check(
        tmp_path, LEGACY.format(db=tmp_path / "a.db"), {**SECRETS, "TELEGRAM_BOT_TOKEN": "1:x"}
    )
    assert r.exit_code == 0, r.output
    out = r.output
    assert "3 approver(s) (people)" in out
    assert "the flat `approvers` list is deprecated" in out and "[[tenants.people]]" in out
    assert "person:dave (dave): webhook, telegram" in out
    assert "person:erin (erin): webhook" in out
    assert "person:zoe-q (Zoe Q): webhook" in out
    assert "approver person:dave: reachable via webhook, telegram" in out


def test_two_people_sharing_an_address_is_a_config_error(tmp_path: Path) -> None:
    text = f"""
[orchestrator]
store_url = "sqlite:///{tmp_path / "a.db"}"
[[tenants]]
id = "acme"
[[tenants.people]]
id = "ana"
channels = [{{ channel = "telegram", address = "42" }}]
[[tenants.people]]
id = "ben"
channels = [{{ channel = "telegram", address = "42" }}]
"""
    r = check(tmp_path, text, SECRETS)
    assert r.exit_code == 2
    assert "'ana' and 'ben' share a telegram address" in r.output


@pytest.mark.parametrize(
    ("channels", "why"),
    [
        ('{ channel = "whatsapp", address = "0771234567" }', "E.164"),
        ('{ channel = "webhook", address = "inbox" }', "URL to POST to"),
    ],
)
def test_a_person_channel_is_validated_at_start_up(tmp_path: Path, channels: str, why: str) -> None:
    text = f"""
[orchestrator]
store_url = "sqlite:///{tmp_path / "a.db"}"
[[tenants]]
id = "acme"
[[tenants.people]]
id = "ana"
channels = [{channels}]
"""
    r = check(tmp_path, text, SECRETS)
    assert r.exit_code == 2 and "tenants.0.people.0" in r.output and why in r.output, r.output


async def test_an_old_ledger_with_engineer_actors_still_verifies_and_replays() -> None:
    ledger = MemoryLedgerStore(b"k" * 32)
    policy = Policy(approvals_required=2)
    engine = IncidentEngine(ledger, VirtualClock(), lambda _t: policy)
    state, _ = await engine.open("acme", "shop", reason="x", snapshot={"score": 10.0})
    i = state.incident_id
    await engine.transition("acme", i, Change(Stage.PROPOSED, "policy", "p"))
    await engine.transition("acme", i, Change(Stage.VALIDATED, "policy", "v"))
    await engine.record("acme", i, kind="approval", actor="engineer:web:alice", decision="approve")
    await engine.transition("acme", i, Change(Stage.AUTHORIZED, "engineer:telegram:42", "ok"))
    assert (await ledger.verify("acme")).ok
    replayed = await replay(ledger, "acme")
    assert replayed[i].stage is Stage.AUTHORIZED
    assert replayed[i].approvers == ("engineer:web:alice",)
    # A new ledger mixes in person actors; the same fold reads both.
    state2, _ = await engine.open("acme", "db", reason="x", snapshot={"score": 10.0})
    j = state2.incident_id
    await engine.transition("acme", j, Change(Stage.PROPOSED, "policy", "p"))
    await engine.transition("acme", j, Change(Stage.VALIDATED, "policy", "v"))
    await engine.record("acme", j, kind="approval", actor="person:alice", decision="approve")
    await engine.transition("acme", j, Change(Stage.AUTHORIZED, "person:bob", "ok"))
    assert (await replay(ledger, "acme"))[j].stage is Stage.AUTHORIZED


DUTIES = """
[orchestrator]
base_url = "http://127.0.0.1:1"
[[tenants]]
id = "t1"
{approvers}
[tenants.policy]
forbid_deployer_sole_approval = true
{people}
"""
PEOPLE = """
[[tenants.people]]
id = "alice"
channels = [
  { channel = "telegram", address = "9001" },
  { channel = "web", address = "alice@example.com" },
]
github = ["alice-gh"]
[[tenants.people]]
id = "bob"
channels = [{ channel = "telegram", address = "9002" }]
"""
LEGACY_DUTIES = """approvers = [
  { channel = "telegram", address = "9001", identity = "alice" },
  { channel = "web", address = "alice@example.com", identity = "alice" },
  { channel = "telegram", address = "9002", identity = "bob" },
]"""


@pytest.mark.parametrize(
    ("toml", "author"),
    [
        pytest.param(DUTIES.format(approvers="", people=PEOPLE), "alice-gh", id="github-login"),
        pytest.param(DUTIES.format(approvers="", people=PEOPLE), "Alice@Example.com", id="email"),
        pytest.param(
            DUTIES.format(approvers=LEGACY_DUTIES, people=""), "alice@example.com", id="legacy"
        ),
    ],
)
async def test_the_deployer_is_refused_as_sole_approver_whatever_channel_they_use(
    toml: str, author: str, tmp_path: Path
) -> None:
    rt = await runtime(toml, tmp_path)
    try:
        i = await validated(rt, diagnosis={"commit": {"author_username": author}})
        route = rt.notifier.route("t1")
        # Alice approves through Telegram, a channel the commit does not name.
        (alice_tg,) = [r for r in route if r.address == "9001"]
        link = await rt.authorizer.issue("t1", i, alice_tg.identity)
        refused = await rt.authorizer.confirm(link.token)
        assert refused.status == 403 and refused.problem is not None
        assert str(refused.problem) == "self_approval"
        (bob,) = [r for r in route if r.address == "9002"]
        ok = await rt.authorizer.confirm((await rt.authorizer.issue("t1", i, bob.identity)).token)
        assert ok.authorized
    finally:
        await close(rt)


async def test_an_approval_ledgered_before_the_upgrade_still_counts_for_its_person(
    tmp_path: Path,
) -> None:
    rt = await runtime(QUORUM_LEGACY, tmp_path)
    try:
        i = await validated(rt, "t1")
        # Dave approved through the web link before people existed: the old actor shape.
        await rt.engine.record(
            "t1", i, kind="approval", actor="engineer:webhook:dave", decision="approve"
        )
        route = rt.notifier.route("t1")
        (tg,) = [r for r in route if r.address == DAVE[1]]
        again = await rt.authorizer.confirm((await rt.authorizer.issue("t1", i, tg.identity)).token)
        assert (again.status, str(again.problem)) == (409, "already_approved"), again
        state = await rt.engine.get("t1", i)
        assert state is not None and state.stage is Stage.VALIDATED
    finally:
        await close(rt)
