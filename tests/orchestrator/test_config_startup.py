"""Start-up refuses what cannot work, naming the field: through the real CLI.

``check-config`` runs in-process (CliRunner, a clean environment per call); ``serve`` and the
unparsable-environment cases run as real subprocesses, as an operator would see them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.preflight import preflight
from alertengine.orchestrator.settings import Settings
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "alertengine.toml"

SECRETS = {"ALERT_SECRET": "s" * 48, "ALERTENGINE_LEDGER_KEY": "k" * 48}
RECOVERY = {"ACME_RECOVERY": "r" * 40}
#: Every variable the shipped example names, with usable values.
EXAMPLE_ENV = {
    **SECRETS,
    "ACME_RECOVERY_WEBHOOK_SECRET": "r" * 48,
    "ACME_GITHUB_WEBHOOK_SECRET": "g" * 32,
    "TELEGRAM_BOT_TOKEN": "123:abc",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "TWILIO_WHATSAPP_FROM": "+14155238886",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.test/services/T/B/x",
}

WEBHOOK_APPROVER = (
    '{ channel = "webhook", address = "http://127.0.0.1:9/inbox", identity = "alice" }'
)

#: Variables of the real environment that would leak into the checks.
_OURS = (
    "ALERT",
    "ANTHROPIC",
    "COUNCIL",
    "TELEGRAM",
    "TWILIO",
    "SLACK",
    "NOTIFY",
    "GITHUB",
    "REDIS",
    "LOOP_",
    "POLICY_",
    "ACME",
)


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OURS)}
    return {**env, **extra}


def base_config(
    db: Path, *, port: int = 1, target: str = "", tenant: str = "", orch: str = ""
) -> str:
    return f"""
[orchestrator]
store_url = "sqlite:///{db}"
port = {port}
loop_interval_s = 0.5
{orch}
[[tenants]]
id = "acme"
approvers = [{WEBHOOK_APPROVER}]
{tenant}
[[targets]]
tenant = "acme"
service = "checkout"
health_url = "http://127.0.0.1:9/health/alerts"
{target}
"""


SIGNED = 'recovery_webhook = "http://127.0.0.1:9/recover"\nwebhook_secret_env = "ACME_RECOVERY"'


def check(tmp_path: Path, text: str, env: dict[str, str], *args: str) -> Any:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    # CliRunner replaces variables given here; unset the rest of ours for a clean start.
    blank: dict[str, str | None] = {k: None for k in os.environ if k.startswith(_OURS)}
    return CliRunner().invoke(
        app, ["check-config", "--config", str(cfg), *args], env={**blank, **env}
    )


def refused(result: Any, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    for n in needles:
        assert n in result.output, (n, result.output)
    assert "config OK" not in result.output


# --- 1. unsigned recovery webhooks --------------------------------------------------------


def test_shipped_example_is_refused_until_its_recovery_secret_is_set(tmp_path):
    env = {k: v for k, v in EXAMPLE_ENV.items() if k != "ACME_RECOVERY_WEBHOOK_SECRET"}
    r = CliRunner().invoke(app, ["check-config", "--config", str(EXAMPLE)], env=env)
    refused(r, "targets.0.webhook_secret_env", "ACME_RECOVERY_WEBHOOK_SECRET")
    r = CliRunner().invoke(app, ["check-config", "--config", str(EXAMPLE)], env=EXAMPLE_ENV)
    assert r.exit_code == 0 and "config OK" in r.output, r.output


def test_a_recovery_webhook_without_a_usable_key_is_refused(tmp_path):
    db = tmp_path / "a.db"
    no_env = 'recovery_webhook = "http://127.0.0.1:9/recover"'
    r = check(tmp_path, base_config(db, target=no_env), SECRETS)
    refused(r, "targets.0.webhook_secret_env", "empty key")
    r = check(tmp_path, base_config(db, target=SIGNED), SECRETS)
    refused(r, "targets.0.webhook_secret_env", "ACME_RECOVERY", "not set")
    r = check(tmp_path, base_config(db, target=SIGNED), {**SECRETS, "ACME_RECOVERY": "x" * 31})
    refused(r, "targets.0.webhook_secret_env", "31 bytes")
    r = check(tmp_path, base_config(db, target=SIGNED), {**SECRETS, **RECOVERY})
    assert r.exit_code == 0 and "config OK" in r.output, r.output


def test_serve_refuses_an_unsigned_webhook_before_starting(tmp_path):
    port = free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(base_config(tmp_path / "a.db", port=port, target=SIGNED))
    proc = subprocess.run(
        [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg)],
        env=clean_env(SECRETS),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "targets.0.webhook_secret_env" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


# --- 3. everything else that cannot work ---------------------------------------------------


def test_alert_secret_equal_to_the_ledger_key_is_refused(tmp_path):
    same = {"ALERT_SECRET": "z" * 48, "ALERTENGINE_LEDGER_KEY": "z" * 48}
    r = check(tmp_path, base_config(tmp_path / "a.db"), same)
    refused(r, "ALERTENGINE_LEDGER_KEY", "ALERT_SECRET", "must differ")


@pytest.mark.parametrize("url", ["alertengine.example.com", "//host:8700", "ftp://host/x"])
def test_base_url_without_an_http_scheme_is_refused(tmp_path, url):
    orch = f'base_url = "{url}"'
    r = check(tmp_path, base_config(tmp_path / "a.db", orch=orch), SECRETS)
    refused(r, "orchestrator.base_url")


def test_unknown_store_url_scheme_is_refused_from_the_file_and_the_environment(tmp_path):
    text = base_config(tmp_path / "a.db").replace("sqlite:///", "postgres:///")
    refused(check(tmp_path, text, SECRETS), "orchestrator.store_url", "postgres")
    env = {**SECRETS, "ALERTENGINE_STORE_URL": "mysql://db/x"}
    refused(check(tmp_path, base_config(tmp_path / "a.db"), env), "ALERTENGINE_STORE_URL")


@pytest.mark.parametrize("diagnoser", ["claude", "council"])
def test_claude_or_council_without_an_api_key_is_refused_not_silently_rules(tmp_path, diagnoser):
    orch = f'diagnoser = "{diagnoser}"'
    r = check(tmp_path, base_config(tmp_path / "a.db", orch=orch), SECRETS)
    refused(r, "orchestrator.diagnoser", "ANTHROPIC_API_KEY")
    r = check(
        tmp_path,
        base_config(tmp_path / "a.db", orch=orch),
        {**SECRETS, "ANTHROPIC_API_KEY": "sk-ant-test"},
    )
    assert r.exit_code == 0, r.output


def test_a_tenant_council_without_an_api_key_is_refused(tmp_path):
    r = check(tmp_path, base_config(tmp_path / "a.db", tenant="council = true"), SECRETS)
    refused(r, "tenants.0.council", "ANTHROPIC_API_KEY")


@pytest.mark.parametrize("secret", ["has spaces in it", "a/b+c=", "x" * 257, "héllo"])
def test_a_telegram_webhook_secret_telegram_would_reject_is_refused(tmp_path, secret):
    r = check(
        tmp_path, base_config(tmp_path / "a.db"), {**SECRETS, "TELEGRAM_WEBHOOK_SECRET": secret}
    )
    refused(r, "TELEGRAM_WEBHOOK_SECRET", "A-Z a-z 0-9 _ -")
    assert secret not in r.output  # a secret is never echoed


ALLOWED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@given(st.text(min_size=1, max_size=300) | st.text(alphabet="".join(ALLOWED), max_size=300))
def test_telegram_secret_rule_matches_telegrams_own(secret: str) -> None:
    settings = Settings.from_env({**SECRETS, "TELEGRAM_WEBHOOK_SECRET": secret})
    report = preflight(parse_config({}), settings, {})
    flagged = any(p.startswith("TELEGRAM_WEBHOOK_SECRET") for p in report.problems)
    telegram_accepts = 1 <= len(secret) <= 256 and set(secret) <= ALLOWED
    assert flagged == (bool(secret) and not telegram_accepts)


def test_a_valid_telegram_webhook_secret_passes(tmp_path):
    ok = "Abc_-09" * 10
    r = check(tmp_path, base_config(tmp_path / "a.db"), {**SECRETS, "TELEGRAM_WEBHOOK_SECRET": ok})
    assert r.exit_code == 0, r.output


def test_any_env_field_naming_an_unset_variable_is_refused(tmp_path):
    tenant = 'github_secret_env = "ACME_GITHUB"'
    r = check(tmp_path, base_config(tmp_path / "a.db", tenant=tenant), SECRETS)
    refused(r, "tenants.0.github_secret_env", "ACME_GITHUB")
    target = 'webhook_secret_env = "ACME_NOWHERE"'  # no webhook, but still a dangling name
    r = check(tmp_path, base_config(tmp_path / "a.db", target=target), SECRETS)
    refused(r, "targets.0.webhook_secret_env", "ACME_NOWHERE")


def test_all_problems_are_reported_at_once(tmp_path):
    orch = 'diagnoser = "claude"'
    r = check(tmp_path, base_config(tmp_path / "a.db", orch=orch, target=SIGNED), SECRETS)
    refused(r, "orchestrator.diagnoser", "targets.0.webhook_secret_env", "2 problems")


@pytest.mark.parametrize("command", ["check-config", "serve"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOOP_INTERVAL_S", "abc"),
        ("LOOP_INTERVAL_S", "0"),
        ("COUNCIL_ENABLED", "maybe"),
        ("ALERTENGINE_LEASE_TTL_S", "soon"),
    ],
)
def test_unparsable_environment_gets_one_line_naming_the_variable(tmp_path, command, name, value):
    cfg = tmp_path / "c.toml"
    cfg.write_text(base_config(tmp_path / "a.db", port=free_port()))
    proc = subprocess.run(
        [sys.executable, "-m", "alertengine", command, "--config", str(cfg)],
        env=clean_env({**SECRETS, name: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and name in lines[0], proc.stderr


# --- 2. approvers nobody can reach ---------------------------------------------------------


def two_channel_config(db: Path, port: int = 1) -> str:
    return base_config(db, port=port).replace(
        f"approvers = [{WEBHOOK_APPROVER}]",
        'approvers = [\n  { channel = "telegram", address = "4242" },\n'
        f"  {WEBHOOK_APPROVER},\n"
        '  { channel = "web", address = "carol" },\n]',
    )


def test_an_approver_without_channel_credentials_is_a_start_up_error(tmp_path):
    r = check(tmp_path, two_channel_config(tmp_path / "a.db"), SECRETS)
    refused(
        r,
        "tenants.0.approvers.0.channel",
        "person:telegram-4242",
        "TELEGRAM_BOT_TOKEN not set",
        "tenants.0.approvers.2.channel",
        "--allow-unreachable-approvers",
    )


def test_check_config_prints_which_channels_reach_each_approver(tmp_path):
    env = {**SECRETS, "TELEGRAM_BOT_TOKEN": "1:x"}
    r = check(tmp_path, two_channel_config(tmp_path / "a.db"), env, "--allow-unreachable-approvers")
    assert r.exit_code == 0, r.output
    assert "approver person:telegram-4242: reachable via telegram" in r.output
    assert "approver person:alice: reachable via webhook" in r.output
    assert "approver person:web-carol: reachable via NOTHING" in r.output
    assert "warning:" in r.output and "config OK, with warnings" in r.output


def test_serve_with_the_flag_warns_and_lists_unreachable_approvers_in_status(tmp_path):
    port = free_port()
    cfg = tmp_path / "c.toml"
    cfg.write_text(two_channel_config(tmp_path / "a.db", port=port))
    admin = "a" * 40
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alertengine",
            "serve",
            "--config",
            str(cfg),
            "--allow-unreachable-approvers",
        ],
        env=clean_env({**SECRETS, "ALERTENGINE_ADMIN_KEY": admin}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        status: dict[str, Any] | None = None
        while time.monotonic() < deadline and status is None:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/__alertengine/status",
                    headers={"Authorization": f"Bearer {admin}"},
                )
                status = r.json()
            except httpx.HTTPError:
                time.sleep(0.2)
        assert status is not None
        gaps = status["notifications"]["unreachable_approvers"]
        assert {(g["approver"], g["channel"]) for g in gaps} == {
            ("person:telegram-4242", "telegram"),
            ("person:web-carol", "web"),
        }
        assert "TELEGRAM_BOT_TOKEN" in next(g["why"] for g in gaps if g["channel"] == "telegram")
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert "warning" in out.lower() and "person:telegram-4242" in out
    assert "Traceback" not in out, out


@pytest.mark.parametrize(
    ("approver", "needle"),
    [
        ('{ channel = "webhook", address = "http://127.0.0.1:9/inbox" }', "set identity"),
        ('{ channel = "slack", address = "#oncall", identity = "ops:bob" }', "contains ':'"),
        ('{ channel = "webhook", address = "inbox", identity = "alice" }', "the URL to POST to"),
    ],
)
def test_an_approver_the_tenant_registry_would_refuse_is_refused_at_start_up(
    tmp_path, approver, needle
):
    text = base_config(tmp_path / "a.db").replace(WEBHOOK_APPROVER, approver)
    refused(check(tmp_path, text, SECRETS), "tenants.0.approvers.0", needle)
