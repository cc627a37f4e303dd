"""``alertengine ledger verify|export`` end to end, on a real SQLite file and a real Redis."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.ledger.chain import Entry, verify_chain
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.sqlite import SqliteLedgerStore
from alertengine.ledger.tools import parse_time
from tests.ledger.conftest import KEY, draft
from tests.support.redis_server import RedisServer

runner = CliRunner()
ENV = {"ALERTENGINE_LEDGER_KEY": KEY.decode()}


def fill(path: Path) -> list[Entry]:
    async def go() -> list[Entry]:
        store = SqliteLedgerStore(path, key=KEY)
        try:
            a = await store.append("acme", [draft("acme", i) for i in range(30)])
            await store.append("beta", [draft("beta", i) for i in range(5)])
            return a
        finally:
            await store.close()

    return asyncio.run(go())


def test_verify_ok_prints_head_and_count_per_tenant(tmp_path: Path) -> None:
    path = tmp_path / "ae.db"
    acme = fill(path)
    res = runner.invoke(app, ["ledger", "verify", "--store-url", f"sqlite:///{path}"], env=ENV)
    assert res.exit_code == 0, res.output
    assert "OK" in res.output and "acme: 30 entries" in res.output
    assert acme[-1].hash in res.output
    assert "beta: 5 entries" in res.output


def test_verify_names_the_first_bad_seq_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "ae.db"
    fill(path)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("DROP TRIGGER ledger_entries_no_update")
    con.execute(
        "UPDATE ledger_entries SET decision = 'approve' WHERE tenant_id = 'acme' AND seq = 17"
    )
    con.close()
    res = runner.invoke(
        app, ["ledger", "verify", "--tenant", "acme", "--store-url", f"sqlite:///{path}"], env=ENV
    )
    assert res.exit_code == 1
    assert "first bad seq 17" in res.output and "altered" in res.output


def test_verify_refuses_without_a_key_and_says_how(tmp_path: Path) -> None:
    path = tmp_path / "ae.db"
    fill(path)
    res = runner.invoke(
        app,
        ["ledger", "verify", "--store-url", f"sqlite:///{path}"],
        env={"ALERTENGINE_LEDGER_KEY": ""},
    )
    assert res.exit_code == 2
    assert "ALERTENGINE_LEDGER_KEY" in res.output


def test_verify_with_the_wrong_key_fails(tmp_path: Path) -> None:
    path = tmp_path / "ae.db"
    fill(path)
    res = runner.invoke(
        app,
        ["ledger", "verify", "--store-url", f"sqlite:///{path}"],
        env={"ALERTENGINE_LEDGER_KEY": "not the key"},
    )
    assert res.exit_code == 1
    assert "signature" in res.output


def test_a_missing_file_is_an_error_not_a_new_ledger(tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["ledger", "verify", "--store-url", f"sqlite:///{tmp_path / 'nope.db'}"], env=ENV
    )
    assert res.exit_code == 2
    assert not (tmp_path / "nope.db").exists()


def test_store_url_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "ae.db"
    fill(path)
    res = runner.invoke(
        app, ["ledger", "verify"], env={**ENV, "ALERTENGINE_STORE_URL": f"sqlite:///{path}"}
    )
    assert res.exit_code == 0, res.output


def test_verify_a_redis_ledger(redis_server: RedisServer) -> None:
    async def go() -> None:
        store = RedisLedgerStore(redis_server.url, key=KEY)
        await store.append("acme", [draft("acme", i) for i in range(12)])
        await store.close()

    asyncio.run(go())
    res = runner.invoke(app, ["ledger", "verify", "--store-url", redis_server.url], env=ENV)
    assert res.exit_code == 0, res.output
    assert "acme: 12 entries" in res.output


def test_export_jsonl_is_the_chain_itself(tmp_path: Path) -> None:
    path = tmp_path / "ae.db"
    acme = fill(path)
    out = tmp_path / "acme.jsonl"
    res = runner.invoke(
        app,
        [
            "ledger",
            "export",
            "--tenant",
            "acme",
            "--out",
            str(out),
            "--store-url",
            f"sqlite:///{path}",
        ],
        env=ENV,
    )
    assert res.exit_code == 0, res.output
    entries = [Entry.from_dict(json.loads(line)) for line in out.read_text().splitlines()]
    assert entries == acme
    assert verify_chain("acme", entries).ok  # an auditor can re-check the file alone


def test_export_csv_with_filters(tmp_path: Path) -> None:
    path = tmp_path / "ae.db"
    acme = fill(path)
    res = runner.invoke(
        app,
        [
            "ledger",
            "export",
            "--format",
            "csv",
            "--tenant",
            "acme",
            "--incident",
            "inc-1",
            "--since",
            str(acme[3].timestamp),
            "--until",
            str(acme[20].timestamp),
            "--store-url",
            f"sqlite:///{path}",
        ],
        env=ENV,
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    expected = [e for e in acme[3:20] if e.incident_id == "inc-1"]
    assert [int(r["seq"]) for r in rows] == [e.seq for e in expected]
    assert rows[0]["hash"] == expected[0].hash
    assert json.loads(rows[0]["data"]) == dict(expected[0].data)


def test_export_time_window_without_incident(tmp_path: Path) -> None:
    path = tmp_path / "ae.db"
    acme = fill(path)
    res = runner.invoke(
        app,
        ["ledger", "export", "--since", "2023-11-14T22:13:25Z", "--store-url", f"sqlite:///{path}"],
        env=ENV,
    )
    assert res.exit_code == 0, res.output
    seqs = [json.loads(line)["seq"] for line in res.stdout.splitlines() if line.startswith("{")]
    t = parse_time("2023-11-14T22:13:25Z")
    beta = [1_700_000_000.0 + i for i in range(5)]  # all before the window
    assert len(seqs) == sum(1 for e in acme if e.timestamp >= t) + sum(x >= t for x in beta)
    assert seqs[0] == 6


def test_export_refuses_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "ae.db"
    fill(path)
    res = runner.invoke(
        app, ["ledger", "export", "--format", "xml", "--store-url", f"sqlite:///{path}"]
    )
    assert res.exit_code == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000.5", 1_700_000_000.5),
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T22:13:20", 1_700_000_000.0),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text) == expected


def test_parse_time_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday")
