"""The person registry and its CLI: validated, and every change ledgered (who, what, when)
with channels as kind + marker, never an address."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.ledger import LedgerQuery
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.people import Channel, Person, PersonRegistry, ledger_recorder
from alertengine.stores.factory import open_ledger, open_state_store
from alertengine.stores.memory import MemoryStateStore
from alertengine.tenants import TenantRegistry

KEY = "l" * 40
PHONE = "+15550001111"


def cli(db: Path, *args: str, key: str | None = KEY) -> Any:
    env = {"ALERTENGINE_STORE_URL": f"sqlite:///{db}", "ALERTENGINE_LEDGER_KEY": key}
    return CliRunner().invoke(app, list(args), env=env)


def ledger_entries(db: Path) -> list[Any]:
    async def go() -> list[Any]:
        ledger = open_ledger(f"sqlite:///{db}", key=None)
        try:
            assert (await ledger.verify("acme")).ok
            return await ledger.read(LedgerQuery(tenant_id="acme"))
        finally:
            await ledger.close()

    return asyncio.run(go())


def test_person_cli_adds_lists_changes_and_removes_and_ledgers_each_change(tmp_path: Path) -> None:
    db = tmp_path / "ae.db"
    assert cli(db, "tenant", "add", "acme").exit_code == 0
    r = cli(db, "person", "add", "alice", "--tenant", "acme", "--name", "Alice A",
            "--channel", "telegram=123456", "--channel", f"whatsapp={PHONE}",
            "--github", "Alice-GH", "--actor", "operator:ci", "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["github_logins"] == ["alice-gh"]
    r = cli(db, "person", "channel", "add", "alice", "web", "alice@example.com",
            "--tenant", "acme", "--actor", "operator:ci")  # fmt: skip
    assert r.exit_code == 0, r.output
    listed = json.loads(cli(db, "person", "list", "--tenant", "acme", "--json").stdout)
    assert [(p["id"], [c["kind"] for c in p["channels"]]) for p in listed] == [
        ("alice", ["telegram", "whatsapp", "web"])
    ]
    table = cli(db, "person", "list", "--tenant", "acme").stdout
    assert "person:alice" in table and PHONE not in table  # a table never shows a number
    r = cli(db, "person", "channel", "remove", "alice", "whatsapp", "--tenant", "acme",
            "--actor", "operator:ci")  # fmt: skip
    assert r.exit_code == 0, r.output
    r = cli(db, "person", "remove", "alice", "--tenant", "acme", "--actor", "operator:bo")
    assert r.exit_code == 0 and "removed person:alice" in r.stdout
    assert cli(db, "person", "show", "alice", "--tenant", "acme").exit_code == 2

    entries = [e for e in ledger_entries(db) if e.kind == "people"]
    assert [(e.actor, e.decision) for e in entries] == [
        ("operator:ci", "person added"),
        ("operator:ci", "channel added"),
        ("operator:ci", "channel removed"),
        ("operator:bo", "person removed"),
    ]
    assert all(e.data["person"] == "person:alice" for e in entries)
    assert entries[2].data["channel"]["kind"] == "whatsapp"
    dump = "\n".join(e.to_json() for e in entries)
    assert PHONE not in dump and PHONE[1:] not in dump and "123456" not in dump


def test_person_cli_refuses_bad_input_with_a_reason_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "ae.db"
    assert cli(db, "tenant", "add", "acme").exit_code == 0
    ok = cli(db, "person", "add", "bob", "--tenant", "acme", "--channel", "telegram=42")
    assert ok.exit_code == 0, ok.output
    cases = [
        (("person", "add", "Bob!", "--tenant", "acme"), "invalid person id"),
        (("person", "add", "eve", "--tenant", "acme", "--channel", "telegram=42"), "already"),
        (("person", "add", "eve", "--tenant", "acme", "--channel", "whatsapp=0771"), "E.164"),
        (("person", "add", "eve", "--tenant", "acme", "--channel", "fax"), "kind=address"),
        (("person", "add", "eve", "--tenant", "nope"), "no such tenant"),
        (("person", "add", "bob", "--tenant", "acme"), "already exists"),
        (("person", "channel", "remove", "bob", "slack", "--tenant", "acme"), "no such slack"),
        (("person", "add", "eve", "--tenant", "acme", "--actor", "root"), "--actor"),
    ]
    for args, why in cases:
        r = cli(db, *args)
        assert r.exit_code == 2 and why in r.output, (args, r.output)
    no_key = cli(db, "person", "add", "eve", "--tenant", "acme", key=None)
    assert no_key.exit_code == 2 and "ALERTENGINE_LEDGER_KEY" in no_key.output
    assert [e.decision for e in ledger_entries(db) if e.kind == "people"] == ["person added"]


async def test_config_sync_ledgers_only_differences_and_keeps_cli_people() -> None:
    store, ledger = MemoryStateStore(), MemoryLedgerStore(b"k" * 32)
    await TenantRegistry(store).add("acme", "Acme")
    reg = PersonRegistry(store, ledger_recorder(ledger))
    alice = Person("alice", channels=(Channel("telegram", "1"),))
    bob = Person("bob", channels=(Channel("telegram", "2"),))
    assert await reg.sync("acme", [alice, bob], actor="config") == ["added alice", "added bob"]
    assert await reg.sync("acme", [alice, bob], actor="config") == []  # a restart: silent
    await reg.add("acme", Person("carol", channels=(Channel("web", "c@x.io"),)), actor="operator:o")
    moved = Person("alice", channels=(Channel("telegram", "1"), Channel("slack", "U1")))
    assert await reg.sync("acme", [moved], actor="config") == ["removed bob", "changed alice"]
    assert [p.id for p in await reg.list("acme")] == ["alice", "carol"]  # config order first
    found = await reg.find_by_channel("acme", "slack", "U1")
    assert found is not None and found.id == "alice"
    decisions = [e.decision for e in await ledger.read(LedgerQuery(tenant_id="acme"))]
    assert decisions == [
        "person added",
        "person added",
        "person added",
        "person removed",
        "person changed",
    ]


async def test_a_read_only_registry_refuses_changes(tmp_path: Path) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        reg = PersonRegistry(store)
        try:
            await reg.add("acme", Person("alice"), actor="operator:o")
        except ValueError as exc:
            assert "ledgered" in str(exc)
        else:  # pragma: no cover
            raise AssertionError("an unledgered change went through")
        assert await reg.get("acme", "alice") is None
    finally:
        await store.close()
