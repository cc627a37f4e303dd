"""Secrets and process settings, from the environment (never from the config file)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class SecretSettingError(ValueError):
    """A required secret is missing or too weak; the message says how to set it."""


class EnvSettingError(ValueError):
    """An environment variable's value cannot be used; one line per variable, naming it."""


def _env_problems(exc: ValidationError, secret_names: set[str]) -> str:
    lines = []
    for e in exc.errors():
        name = ".".join(str(p) for p in e["loc"]) or "environment"
        got = e.get("input")
        # Never echo a secret's value; numbers and flags help the reader.
        shown = f" (got {got!r})" if name not in secret_names and isinstance(got, str) else ""
        lines.append(f"{name}: {e['msg'].lower()}{shown}")
    return "; ".join(lines)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    alert_secret: str = Field("", alias="ALERT_SECRET")
    ledger_key: str = Field("", alias="ALERTENGINE_LEDGER_KEY")
    admin_key: str = Field("", alias="ALERTENGINE_ADMIN_KEY")
    store_url: str = Field("", alias="ALERTENGINE_STORE_URL")
    redis_url: str = Field("", alias="REDIS_URL")
    loop_interval_s: float | None = Field(None, alias="LOOP_INTERVAL_S", gt=0)
    anthropic_api_key: str = Field("", alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str = Field("", alias="ANTHROPIC_BASE_URL")
    council_enabled: bool = Field(False, alias="COUNCIL_ENABLED")
    telegram_bot_token: str = Field("", alias="TELEGRAM_BOT_TOKEN")
    telegram_webhook_secret: str = Field("", alias="TELEGRAM_WEBHOOK_SECRET")
    telegram_api_base: str = Field("https://api.telegram.org", alias="TELEGRAM_API_BASE")
    twilio_account_sid: str = Field("", alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str = Field("", alias="TWILIO_AUTH_TOKEN")
    twilio_whatsapp_from: str = Field("", alias="TWILIO_WHATSAPP_FROM")
    twilio_voice_from: str = Field("", alias="TWILIO_VOICE_FROM")
    twilio_api_base: str = Field("https://api.twilio.com", alias="TWILIO_API_BASE")
    slack_webhook_url: str = Field("", alias="SLACK_WEBHOOK_URL")
    #: The Slack app's signing secret: Approve / I'm on it act in Slack (/slack/interactions).
    slack_signing_secret: str = Field("", alias="SLACK_SIGNING_SECRET")
    #: Where a press's ``response_url`` must point (tests: a local fake).
    slack_hooks_base: str = Field("https://hooks.slack.com", alias="SLACK_HOOKS_BASE")
    github_token: str = Field("", alias="GITHUB_TOKEN")
    notify_webhook_secret: str = Field("", alias="NOTIFY_WEBHOOK_SECRET")
    claude_model: str = Field("", alias="ALERTENGINE_CLAUDE_MODEL")
    #: Anonymous refusals ledgered one by one per route, reason and window; the rest are
    #: counted into one summary entry per window (docs/ledger.md, "Refusals under attack").
    refusals_per_window: int = Field(10, alias="ALERTENGINE_REFUSALS_PER_WINDOW", ge=0)
    refusals_window_s: float = Field(60.0, alias="ALERTENGINE_REFUSALS_WINDOW_S", gt=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings, or :class:`EnvSettingError` naming each variable that does not parse."""
        try:
            if environ is None:
                return cls()
            known = {f.alias for f in cls.model_fields.values() if f.alias}
            return cls.model_validate({k: v for k, v in environ.items() if k in known})
        except ValidationError as exc:
            text = {f.alias or n for n, f in cls.model_fields.items() if f.annotation is str}
            raise EnvSettingError(_env_problems(exc, text)) from None

    def ledger_key_bytes(self, *, demo: bool) -> bytes:
        """The ledger checkpoint HMAC key; a throw-away one in demo mode only."""
        raw = self.ledger_key.encode()
        if len(raw) >= 32:
            return raw
        if demo:
            return secrets.token_bytes(32)
        what = "not set" if not raw else f"only {len(raw)} bytes long"
        raise SecretSettingError(
            f"ALERTENGINE_LEDGER_KEY is {what}: it signs the ledger's head checkpoints (so a "
            "cut-off tail is detectable) and must be 32+ bytes, not the same as ALERT_SECRET. "
            "Generate one with `python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
        )
