"""``alertengine person enroll | credentials | revoke-credential`` on a real SQLite store,
and ``--send`` through the real Telegram client to the fake Telegram server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.clock import SystemClock
from alertengine.engine import IncidentEngine
from alertengine.passkeys.service import Passkeys
from alertengine.policy import Policy
from alertengine.stores.factory import open_stores
from alertengine.tenants import TenantRegistry
from tests.authorize.harness import LEDGER_KEY
from tests.passkeys.softkey import SoftAuthenticator
from tests.support.asgi_server import LoopThread
from tests.support.fakes.telegram import FakeTelegram

runner = CliRunner()
ENV = {"ALERTENGINE_LEDGER_KEY": LEDGER_KEY.decode()}
BASE = "http://localhost:8700"


def _setup(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ae.db'}"

    async def go() -> None:
        ledger, store = open_stores(url, ledger_key=LEDGER_KEY)
        try:
            tenants = TenantRegistry(store)
            await tenants.add("acme", "Acme")
            await tenants.set_approvers("acme", "web", ["alice", "bob"])
        finally:
            await store.close()
            await ledger.close()

    asyncio.run(go())
    return url


def _finish(url: str, link: str, auth: SoftAuthenticator) -> None:
    token = parse_qs(urlsplit(link).query)["token"][0]

    async def go() -> None:
        ledger, store = open_stores(url, ledger_key=LEDGER_KEY)
        try:
            policy = Policy()
            engine = IncidentEngine(ledger, SystemClock(), lambda _t: policy)
            pk = Passkeys(engine, store, SystemClock(), BASE)
            await pk.finish_enrollment(token, auth.create(await pk.registration_options(token)))
        finally:
            await store.close()
            await ledger.close()

    asyncio.run(go())


def _ledger(url: str) -> list[dict[str, object]]:
    res = runner.invoke(app, ["ledger", "export", "--tenant", "acme", "--store-url", url])
    assert res.exit_code == 0, res.output
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def test_enroll_list_revoke(tmp_path: Path) -> None:
    url = _setup(tmp_path)
    args = ["--tenant", "acme", "--store-url", url]
    res = runner.invoke(app, ["person", "enroll", "alice", *args, "--base-url", BASE], env=ENV)
    assert res.exit_code == 0, res.output
    link = res.stdout.strip().splitlines()[0]
    assert link.startswith(f"{BASE}/passkeys/enroll?token=")
    token = parse_qs(urlsplit(link).query)["token"][0]
    issued = [e for e in _ledger(url) if e["decision"] == "enrollment_link_issued"]
    assert len(issued) == 1 and token not in json.dumps(issued)  # never the link itself
    _finish(url, link, SoftAuthenticator())

    res = runner.invoke(app, ["person", "credentials", "alice", *args, "--json"])
    assert res.exit_code == 0, res.output
    [cred] = json.loads(res.stdout)
    assert cred["person"] == "alice" and cred["revoked_at"] is None
    assert cred["rp_id"] == "localhost"

    res = runner.invoke(app, ["person", "revoke-credential", cred["credential_id"], *args], env=ENV)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["person", "credentials", *args, "--json"])
    assert json.loads(res.stdout)[0]["revoked_at"] is not None
    decisions = [e["decision"] for e in _ledger(url) if e["kind"] == "passkey"]
    assert decisions == ["enrollment_link_issued", "enrolled", "revoked"]
    # Revoking twice is refused, not silently repeated.
    res = runner.invoke(app, ["person", "revoke-credential", cred["credential_id"], *args], env=ENV)
    assert res.exit_code == 2 and "already revoked" in res.output


def test_unknown_person_and_missing_key_are_refused(tmp_path: Path) -> None:
    url = _setup(tmp_path)
    args = ["--tenant", "acme", "--store-url", url, "--base-url", BASE]
    res = runner.invoke(app, ["person", "enroll", "zoe", *args], env=ENV)
    assert res.exit_code == 2 and "'zoe' is not an approver" in res.output
    res = runner.invoke(
        app, ["person", "enroll", "alice", *args], env={"ALERTENGINE_LEDGER_KEY": ""}
    )
    assert res.exit_code == 2 and "No ledger key" in res.output
    assert not [e for e in _ledger(url) if e["kind"] == "passkey"]


def test_send_delivers_the_link_to_the_persons_telegram(tmp_path: Path) -> None:
    url = _setup(tmp_path)
    tg = FakeTelegram()
    loop = LoopThread()
    try:
        api = loop.serve(tg.app)
        cfg = tmp_path / "ae.toml"
        cfg.write_text(
            f'[orchestrator]\nbase_url = "{BASE}"\nstore_url = "{url}"\n'
            '[[tenants]]\nid = "acme"\n'
            'approvers = [{channel = "telegram", address = "7214596380", identity = "alice"}]\n'
        )
        env = {**ENV, "TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_BASE": api}
        res = runner.invoke(
            app,
            ["person", "enroll", "alice", "--tenant", "acme", "--config", str(cfg), "--send"],
            env=env,
        )
        assert res.exit_code == 0, res.output
        link = res.stdout.strip().splitlines()[0]
        [sent] = tg.sent
        assert str(sent["chat_id"]) == "7214596380"
        buttons = sent["reply_markup"]["inline_keyboard"]
        assert buttons[0][0]["url"] == link
        sent_entries = [e for e in _ledger(url) if e["decision"] == "enrollment_link_sent"]
        assert len(sent_entries) == 1 and "7214596380" not in json.dumps(sent_entries)
    finally:
        loop.stop()
