"""``alertengine person login/whoami/logout/ack``: the errors a person meets, said clearly,
with the documented exit codes (the happy path runs on real processes in
test_signin_process.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.people.signin_cli import credentials_path, save_credentials
from tests.support.redis_server import free_port

runner = CliRunner()


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("ALERTENGINE_SERVER", raising=False)
    monkeypatch.delenv("ALERTENGINE_API_KEY", raising=False)
    return tmp_path


def saved(server: str, person: str = "alice", tenant: str = "acme") -> dict[str, object]:
    return {
        "server": server,
        "tenant": tenant,
        "person": person,
        "token": "aep_" + "x" * 43,
        "expires_at": 0,
    }


def test_not_signed_in_says_how_to_sign_in() -> None:
    r = runner.invoke(app, ["person", "ack", "inc-1", "--server", "http://h:1", "--tenant", "t"])
    assert r.exit_code == 2
    assert "alertengine person login --server http://h:1 --tenant t" in r.output


def test_login_needs_the_tenant_key() -> None:
    r = runner.invoke(app, ["person", "login", "alice", "--server", "http://h", "--tenant", "t"])
    assert r.exit_code == 2 and "ALERTENGINE_API_KEY is not set" in r.output


def test_an_unreachable_server_is_named_with_exit_2() -> None:
    server = f"http://127.0.0.1:{free_port()}"
    save_credentials({"k": saved(server)})
    r = runner.invoke(app, ["person", "ack", "inc-1"])
    assert r.exit_code == 2 and f"cannot reach {server}" in r.output
    r = runner.invoke(
        app,
        ["person", "login", "alice", "--server", server, "--tenant", "acme"],
        env={"ALERTENGINE_API_KEY": "ae_x"},
    )
    assert r.exit_code == 2 and "cannot reach" in r.output


def test_several_sign_ins_must_be_told_apart() -> None:
    save_credentials({"a": saved("http://h:1", "alice"), "b": saved("http://h:1", "bob")})
    r = runner.invoke(app, ["person", "whoami"])
    assert r.exit_code == 2 and "several sign-ins match" in r.output


def test_credentials_are_private_to_the_user() -> None:
    save_credentials({"a": saved("http://h:1")})
    path = credentials_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert json.loads(path.read_text())["a"]["person"] == "alice"


def test_logout_all_for_needs_the_server_the_tenant_and_the_key() -> None:
    r = runner.invoke(app, ["person", "logout", "--all-for", "alice"])
    assert r.exit_code == 2 and "--all-for needs --server and --tenant" in r.output
    r = runner.invoke(
        app, ["person", "logout", "--all-for", "alice", "--server", "http://h", "--tenant", "t"]
    )
    assert r.exit_code == 2 and "ALERTENGINE_API_KEY is not set" in r.output
    server = f"http://127.0.0.1:{free_port()}"
    r = runner.invoke(
        app,
        ["person", "logout", "--all-for", "alice", "--server", server, "--tenant", "acme"],
        env={"ALERTENGINE_API_KEY": "ae_x"},
    )
    assert r.exit_code == 2 and "cannot reach" in r.output
