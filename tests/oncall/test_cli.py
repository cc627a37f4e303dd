"""``alertengine oncall …`` and ``alertengine silence …`` on a SQLite store: output, ledger
entries naming the operator, refusals with reasons."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.ledger import LedgerQuery
from alertengine.stores.factory import open_ledger

KEY = "k" * 48
SCHEDULE = """
name = "primary"
timezone = "America/New_York"
[[layers]]
name = "day"
people = ["alice", "bob"]
every = "daily"
start = 2026-10-25T09:00:00
[[overrides]]
who = "carol"
covers = "bob"
start = "2026-11-07T09:00"
end = "2026-11-07T21:00"
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'ae.db'}"
    monkeypatch.setenv("ALERTENGINE_STORE_URL", url)
    monkeypatch.setenv("ALERTENGINE_LEDGER_KEY", KEY)
    return url


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.output


def ledger(url: str) -> list[tuple[str, str, str]]:
    async def go() -> list[tuple[str, str, str]]:
        store = open_ledger(url, key=KEY.encode())
        try:
            return [(e.kind, e.decision, e.actor)
                    for e in await store.read(LedgerQuery(tenant_id="acme"))]  # fmt: skip
        finally:
            await store.close()

    return asyncio.run(go())


def test_schedule_set_who_remove(env: str, tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(SCHEDULE)
    # Only the tenant's approvers can be on call (else they would never be asked).
    code, out = run("oncall", "set", "--tenant", "acme", str(f), "--by", "dana")
    assert code == 2 and "no such tenant" in out
    assert run("tenant", "add", "acme")[0] == 0
    assert run("tenant", "approvers", "acme", "web", "alice", "bob")[0] == 0
    code, out = run("oncall", "set", "--tenant", "acme", str(f), "--by", "dana")
    assert code == 2 and "['carol'] not among the tenant's approvers" in " ".join(out.split())
    assert run("tenant", "approvers", "acme", "telegram", "carol")[0] == 0
    assert run("oncall", "set", "--tenant", "acme", str(f), "--by", "dana") == (
        0,
        "schedule saved\n",
    )
    assert run("oncall", "set", "--tenant", "acme", str(f), "--by", "dana")[1] == "no change\n"

    def who(at: str) -> list[str]:
        code, out = run("oncall", "who", "--tenant", "acme", "--at", at, "--json")
        assert code == 0, out
        on_call: list[str] = json.loads(out)["on_call"]
        return on_call

    # Saturday 7 Nov 2026 is bob's day; carol covers him 09:00-21:00 New York time.
    assert who("2026-11-07T12:00-05:00") == ["carol"]
    assert who("2026-11-07T22:00-05:00") == ["bob"]
    assert who("2026-10-25T12:59Z") == [] and who("2026-10-25T13:00Z") == ["alice"]
    # The hand-off stays at 09:00 local across the change on 1 Nov: 13:00 UTC in EDT ...
    assert who("2026-10-31T12:59Z") == ["bob"] and who("2026-10-31T13:00Z") == ["alice"]
    # ... 14:00 UTC in EST.
    assert who("2026-11-08T13:59Z") == ["bob"] and who("2026-11-08T14:00Z") == ["alice"]
    # "Alice covers Bob Monday 09:00-12:00" from the CLI, in the schedule's zone.
    code, out = run("oncall", "override", "--tenant", "acme", "primary", "--who", "alice",
                    "--covers", "bob", "--start", "2026-11-09T09:00", "--end",
                    "2026-11-09T12:00", "--by", "dana")  # fmt: skip
    assert code == 0, out
    assert who("2026-11-09T10:00-05:00") == ["alice"] and who("2026-11-09T12:00-05:00") == ["bob"]
    code, out = run("oncall", "override", "--tenant", "acme", "primary", "--who", "zed",
                    "--start", "2026-11-09T09:00", "--end", "2026-11-09T12:00")  # fmt: skip
    assert code == 2 and "zed" in out
    assert run("oncall", "remove", "--tenant", "acme", "primary", "--by", "dana")[0] == 0
    assert run("oncall", "remove", "--tenant", "acme", "primary", "--by", "dana")[0] == 1
    assert ledger(env) == [
        ("schedule", "set", "operator:dana"),
        ("schedule", "set", "operator:dana"),
        ("schedule", "removed", "operator:dana"),
    ]


def test_silence_add_list_expire_delete(env: str) -> None:
    code, sid = run("silence", "add", "--tenant", "acme", "-m", "service=checkout",
                    "-m", "env!~stag.*", "--duration", "2h", "--comment", "migration",
                    "--by", "dana")  # fmt: skip
    assert code == 0 and sid.startswith("sil-")
    sid = sid.strip()
    code, out = run("silence", "list", "--tenant", "acme", "--json")
    (s,) = json.loads(out)
    assert s["state"] == "active" and s["created_by"] == "dana"
    assert run("silence", "expire", "--tenant", "acme", sid, "--by", "eve")[0] == 0
    assert json.loads(run("silence", "list", "--tenant", "acme", "--json")[1]) == []
    assert (
        len(json.loads(run("silence", "list", "--tenant", "acme", "--expired", "--json")[1])) == 1
    )
    assert run("silence", "delete", "--tenant", "acme", sid, "--by", "eve")[0] == 0
    assert run("silence", "expire", "--tenant", "acme", sid, "--by", "eve")[0] == 1
    assert ledger(env) == [
        ("silence", "created", "operator:dana"),
        ("silence", "expired", "operator:eve"),
        ("silence", "deleted", "operator:eve"),
    ]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["-m", "service=~(", "--duration", "1h", "--comment", "x"], "regular expression"),
        (["-m", "service=a", "--comment", "x"], "exactly one of --duration and --end"),
        (["-m", "service=a", "--duration", "1h", "--comment", " "], "say why"),
        (["-m", "service=a", "--end", "2001-01-01T00:00", "--comment", "x"], "in the past"),
        (["-m", "service=a", "--duration", "1h", "--comment", "x", "--by", "a b"], "plain name"),
    ],
)
def test_bad_silences_exit_2_with_the_reason(env: str, args: list[str], words: str) -> None:
    code, out = run("silence", "add", "--tenant", "acme", *args)
    assert code == 2 and words in " ".join(out.split()), out
    assert ledger(env) == []


def test_changes_need_the_ledger_key(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALERTENGINE_LEDGER_KEY")
    code, out = run("silence", "add", "--tenant", "acme", "-m", "a=b", "--duration", "1h",
                    "--comment", "x")  # fmt: skip
    assert code == 2 and "ALERTENGINE_LEDGER_KEY" in out
