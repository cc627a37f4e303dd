"""CLI output an operator can act on: whole ids in tables, ``--json`` everywhere, one store
option name, and exit codes that match docs/ledger.md. Each command runs as a real process
with stdout on a pipe (not a terminal): that is where Rich used to assume 80 columns."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from alertengine.execute import DLQ
from alertengine.ledger.sqlite import SqliteLedgerStore
from alertengine.stores.factory import open_state_store
from tests.ledger.conftest import KEY, draft

ALERTENGINE = str(Path(sys.executable).parent / "alertengine")
# Real ids are this long: the idempotency key and an incident id with a timestamp.
DLQ_ID = "ae-" + "3f9c2b7d" * 8
INCIDENT = "inc-checkout-payments-eu-west-1-1796423171-b1facc"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # No COLUMNS: a pipe, as in CI or `| grep`.
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [ALERTENGINE, *args], env={**base, **(env or {})}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


@pytest.fixture
def dlq_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ae.db'}"

    async def fill() -> None:
        store = open_state_store(url)
        try:
            await store.put(
                DLQ,
                DLQ_ID,
                {
                    "id": DLQ_ID,
                    "tenant_id": "acme-payments-europe",
                    "incident_id": INCIDENT,
                    "service": "checkout-payments-eu-west-1",
                    "attempts": 3,
                    "last_status": 503,
                    "status": "dead",
                    "failed_at": 1.0,
                },
            )
        finally:
            await store.close()

    asyncio.run(fill())
    return url


def test_dlq_list_prints_every_id_whole_when_piped(dlq_store: str) -> None:
    r = run("dlq", "list", "--store-url", dlq_store)
    assert r.returncode == 0, r.stderr
    assert DLQ_ID in r.stdout and INCIDENT in r.stdout, r.stdout
    assert "…" not in r.stdout


def test_dlq_list_json_and_the_deprecated_url_spelling(dlq_store: str) -> None:
    r = run("dlq", "list", "--json", "--store-url", dlq_store)
    assert r.returncode == 0, r.stderr
    [doc] = json.loads(r.stdout)
    assert doc["id"] == DLQ_ID
    old = run("dlq", "list", "--json", "--url", dlq_store)
    assert old.returncode == 0 and json.loads(old.stdout) == [doc]
    assert "--url is deprecated; use --store-url" in old.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("ledger", "verify"),
        ("ledger", "export"),
        ("ledger", "replay"),
        ("ledger", "report"),
        ("dlq", "list"),
        ("dlq", "replay"),
        ("tenant", "add"),
        ("tenant", "list"),
        ("tenant", "rotate-key"),
        ("tenant", "approvers"),
        ("serve",),
    ],
)
def test_one_store_option_name_everywhere(command: tuple[str, ...]) -> None:
    r = run(*command, "--help", env={"COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    assert "--store-url" in r.stdout and "--url " not in r.stdout


@pytest.mark.parametrize(
    "command",
    [
        ("ledger", "verify"),
        ("ledger", "replay"),
        ("dlq", "list"),
        ("tenant", "list"),
        ("tenant", "approvers"),
    ],
)
def test_every_listing_has_json(command: tuple[str, ...]) -> None:
    r = run(*command, "--help", env={"COLUMNS": "200"})
    assert "--json" in r.stdout


def test_tenant_list_json_and_whole_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ae.db'}"
    long_id = "acme-payments-europe-west-production-1"
    assert run("tenant", "add", long_id, "--store-url", url).returncode == 0
    approver = "oncall-primary-payments-europe-west-production"
    assert run("tenant", "approvers", long_id, "web", approver, "--store-url", url).returncode == 0
    table = run("tenant", "list", "--store-url", url)
    assert long_id in table.stdout and f"engineer:web:{approver}" in table.stdout, table.stdout
    [t] = json.loads(run("tenant", "list", "--json", "--store-url", url).stdout)
    assert t["tenant_id"] == long_id and t["approvers"] == [f"engineer:web:{approver}"]
    shown = json.loads(run("tenant", "approvers", long_id, "--json", "--store-url", url).stdout)
    assert shown == {"tenant_id": long_id, "approvers": [f"engineer:web:{approver}"]}


def _ledger(tmp_path: Path) -> str:
    path = tmp_path / "ledger.db"

    async def go() -> None:
        store = SqliteLedgerStore(path, key=KEY)
        try:
            await store.append("acme", [draft("acme", i) for i in range(3)])
        finally:
            await store.close()

    asyncio.run(go())
    return f"sqlite:///{path}"


def test_verify_of_a_tenant_the_ledger_never_saw_exits_2(tmp_path: Path) -> None:
    url = _ledger(tmp_path)
    env = {"ALERTENGINE_LEDGER_KEY": KEY.decode()}
    r = run("ledger", "verify", "--tenant", "nosuch", "--store-url", url, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "OK" not in r.stdout and "nosuch" in r.stderr
    j = run("ledger", "verify", "--tenant", "nosuch", "--json", "--store-url", url, env=env)
    assert j.returncode == 2 and json.loads(j.stdout)["ok"] is False
    ok = run("ledger", "verify", "--tenant", "acme", "--json", "--store-url", url, env=env)
    assert ok.returncode == 0, ok.stderr
    [res] = json.loads(ok.stdout)["results"]
    assert res["tenant_id"] == "acme" and res["count"] == 3 and res["ok"] is True


def test_tenant_approvers_refuses_a_phone_number_as_an_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ae.db'}"
    assert run("tenant", "add", "acme", "--store-url", url).returncode == 0
    for args in (
        ("whatsapp", "+263771234567"),
        ("whatsapp", "263771234567"),
        ("web", "+1 555 0100 99"),
    ):
        r = run("tenant", "approvers", "acme", *args, "--store-url", url)
        assert r.returncode == 2 and "phone number" in r.stderr, r.stderr
    shown = json.loads(run("tenant", "approvers", "acme", "--json", "--store-url", url).stdout)
    assert shown["approvers"] == []
    ok = run("tenant", "approvers", "acme", "whatsapp", "ana", "--store-url", url)
    assert ok.returncode == 0 and ok.stdout.split() == ["engineer:whatsapp:ana"]


def test_simulate_prints_incident_ids_whole_when_piped() -> None:
    scenario = Path(__file__).resolve().parents[2] / "examples" / "scenarios"
    r = run("simulate", str(scenario / "database-errors-nobody-available.toml"), "--no-timeline")
    assert r.returncode == 0, r.stderr
    ids = re.findall(r"inc-orders-db-\d+-[0-9a-f]{6}\b", r.stdout)
    assert len(set(ids)) == 2, r.stdout
    assert "inc-ord…" not in r.stdout
