"""Start-up checks the Slack settings as it checks every secret: ``check-config`` refuses a
signing secret that cannot be Slack's (without echoing it), and warns when buttons could be
pressed by nobody we can name."""

from __future__ import annotations

from pathlib import Path

import pytest

from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.preflight import preflight
from alertengine.orchestrator.settings import Settings
from tests.orchestrator.test_config_startup import SECRETS, base_config, check, refused

HOOK = {"SLACK_WEBHOOK_URL": "https://hooks.slack.test/services/T/B/x"}
GOOD = "8f742231b10e8888abcd99aaabbb85a5"


@pytest.mark.parametrize("secret", ["short", "has spaces in it but is long enough, see", "é" * 40])
def test_a_signing_secret_that_cannot_be_slacks_is_refused(tmp_path: Path, secret: str) -> None:
    env = {**SECRETS, **HOOK, "SLACK_SIGNING_SECRET": secret}
    r = check(tmp_path, base_config(tmp_path / "a.db"), env)
    refused(r, "SLACK_SIGNING_SECRET", "App Credentials")
    assert secret not in r.output  # a secret is never echoed


def test_a_good_signing_secret_passes(tmp_path: Path) -> None:
    env = {**SECRETS, **HOOK, "SLACK_SIGNING_SECRET": GOOD}
    r = check(tmp_path, base_config(tmp_path / "a.db"), env)
    assert r.exit_code == 0 and "config OK" in r.output, r.output


def test_hooks_base_must_be_a_url() -> None:
    env = {**SECRETS, **HOOK, "SLACK_SIGNING_SECRET": GOOD, "SLACK_HOOKS_BASE": "hooks.slack.com"}
    report = preflight(parse_config({}), Settings.from_env(env), {})
    assert any(p.startswith("SLACK_HOOKS_BASE") for p in report.problems)


def _people(*channels: dict[str, str]) -> dict[str, object]:
    return {"tenants": [{"id": "acme", "people": [{"id": "ana", "channels": list(channels)}]}]}


def test_warnings_name_what_makes_a_press_unusable() -> None:
    env = {**SECRETS, "SLACK_SIGNING_SECRET": GOOD}
    member = {"channel": "slack", "address": "U024BE7LH"}
    report = preflight(parse_config(_people(member)), Settings.from_env(env), {})
    assert any("SLACK_WEBHOOK_URL is not" in w for w in report.warnings)
    env |= HOOK
    report = preflight(parse_config(_people(member)), Settings.from_env(env), {})
    assert report.ok and report.warnings == ()
    # A #channel with no member id: Ana's presses cannot be tied to her.
    room = {"channel": "slack", "address": "#oncall"}
    report = preflight(parse_config(_people(room)), Settings.from_env(env), {})
    (warning,) = report.warnings
    assert "person:ana" in warning and "user_id" in warning
    with_id = {**room, "user_id": "U024BE7LH"}
    assert preflight(parse_config(_people(with_id)), Settings.from_env(env), {}).warnings == ()
    # Link-only Slack (no signing secret): nothing to warn about.
    plain = preflight(parse_config(_people(room)), Settings.from_env({**SECRETS, **HOOK}), {})
    assert plain.warnings == ()
