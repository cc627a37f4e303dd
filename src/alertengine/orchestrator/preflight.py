"""Start-up checks: refuse what cannot work before anything starts.

``check-config`` and ``serve`` run :func:`preflight` over the parsed config, the settings and
the environment. Every problem names the field or variable to fix; all problems are reported
at once. Pure: no I/O beyond reading the mapping it is given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from alertengine.authorize.tokens import SecretError, check_secret
from alertengine.execute.signing import MIN_KEY_BYTES
from alertengine.orchestrator.config import Config
from alertengine.orchestrator.settings import SecretSettingError, Settings
from alertengine.people import Channel
from alertengine.stores.factory import check_store_url

#: Telegram's ``secret_token``: 1–256 characters of A-Z a-z 0-9 _ - (setWebhook refuses others).
TELEGRAM_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
#: A Slack app's signing secret (Basic Information → App Credentials): 32 visible characters
#: (hex in every app we know of); anything shorter is not one, and would be guessable.
SLACK_SIGNING_SECRET = re.compile(r"^[\x21-\x7e]{32,256}$")
#: A Slack member id (``U024BE7LH``, ``W…`` in Enterprise Grid): what a button press names.
SLACK_MEMBER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def missing_credentials(settings: Settings) -> dict[str, str]:
    """For each approver channel: "" when it can send, else what is missing."""

    def need(**names: str) -> str:
        unset = [var for var, value in names.items() if not value]
        return f"{', '.join(unset)} not set" if unset else ""

    return {
        "telegram": need(TELEGRAM_BOT_TOKEN=settings.telegram_bot_token),
        "whatsapp": need(
            TWILIO_ACCOUNT_SID=settings.twilio_account_sid,
            TWILIO_AUTH_TOKEN=settings.twilio_auth_token,
            TWILIO_WHATSAPP_FROM=settings.twilio_whatsapp_from,
        ),
        "voice": need(
            TWILIO_ACCOUNT_SID=settings.twilio_account_sid,
            TWILIO_AUTH_TOKEN=settings.twilio_auth_token,
            TWILIO_VOICE_FROM=settings.twilio_voice_from,
        ),
        "slack": need(SLACK_WEBHOOK_URL=settings.slack_webhook_url),
        "webhook": "",
        "web": "the web channel sends nothing (no provider delivers to it)",
    }


@dataclass(frozen=True)
class Reach:
    """One approver entry of a tenant's route and whether its channel can deliver."""

    tenant_id: str
    field: str
    identity: str
    channel: str
    #: Empty when the channel can send; else why not.
    missing: str

    @property
    def ok(self) -> bool:
        return not self.missing


@dataclass(frozen=True)
class Preflight:
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    reach: tuple[Reach, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def unreachable(self) -> tuple[Reach, ...]:
        return tuple(r for r in self.reach if not r.ok)

    def by_approver(self) -> dict[tuple[str, str], list[Reach]]:
        """(tenant, identity) -> that person's channels, in route order."""
        out: dict[tuple[str, str], list[Reach]] = {}
        for r in self.reach:
            out.setdefault((r.tenant_id, r.identity), []).append(r)
        return out


def _key_problem(name: str, value: str) -> str:
    """Why ``value`` (from variable ``name``) cannot sign; "" when it can."""
    if not value:
        return f"names {name}, which is not set"
    n = len(value.encode())
    if n < MIN_KEY_BYTES:
        return f"names {name}, which holds only {n} bytes; {MIN_KEY_BYTES}+ random bytes needed"
    return ""


def _slack_problems(settings: Settings) -> list[str]:
    out: list[str] = []
    if settings.slack_signing_secret and not SLACK_SIGNING_SECRET.match(
        settings.slack_signing_secret
    ):
        out.append(
            "SLACK_SIGNING_SECRET: not a Slack signing secret (32+ visible characters, no "
            "spaces); copy it from the Slack app's Basic Information → App Credentials"
        )
    if not settings.slack_hooks_base.startswith(("https://", "http://")):
        out.append("SLACK_HOOKS_BASE: must be an http(s) URL (default https://hooks.slack.com)")
    return out


def _slack_warnings(config: Config, settings: Settings) -> list[str]:
    """Buttons that act in Slack need the webhook to post them and a member id per person."""
    if not settings.slack_signing_secret:
        return []
    if not settings.slack_webhook_url:
        return [
            "SLACK_SIGNING_SECRET is set but SLACK_WEBHOOK_URL is not: no Slack message is "
            "sent, so no Slack button can be pressed"
        ]
    return [
        f"tenants.{i}: {p.actor}'s Slack channel {c.address!r} names no member id, so their "
        "presses of Slack buttons cannot be tied to them (refused); add user_id = their "
        "Slack member id (U…)"
        for i, t in enumerate(config.tenants)
        for p in t.persons()
        for c in p.channels
        if c.kind == "slack"
        and not SLACK_MEMBER_ID.match(c.address)
        and not SLACK_MEMBER_ID.match(c.user_id)
    ]


def reachability(config: Config, settings: Settings) -> tuple[Reach, ...]:
    missing = missing_credentials(settings)
    out: list[Reach] = []
    for i, t in enumerate(config.tenants):
        explicit = {p.id: k for k, p in enumerate(t.people)}
        legacy = list(enumerate(t.approvers))
        for p in t.persons():
            for c in p.channels:
                if p.id in explicit and any(
                    x.channel == c.kind for x in t.people[explicit[p.id]].channels
                ):
                    where = f"tenants.{i}.people.{explicit[p.id]}"
                else:
                    j = next(
                        (j for j, a in legacy if Channel(a.channel, a.address).same_address(c)), 0
                    )
                    where = f"tenants.{i}.approvers.{j}"
                out.append(Reach(t.id, where, p.actor, c.kind, missing[c.kind]))
    return tuple(out)


def preflight(
    config: Config,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    store_url: tuple[str, str] | None = None,
    allow_unreachable_approvers: bool = False,
) -> Preflight:
    """Everything that would make the orchestrator unsafe or silently useless.

    ``store_url`` is (where it came from, the URL) when it does not come from the file.
    """
    problems: list[str] = []
    warnings: list[str] = []
    demo = config.orchestrator.demo

    # Secrets of the orchestrator itself.
    try:
        check_secret(settings.alert_secret or None, demo=demo)
    except SecretError as exc:
        problems.append(str(exc))
    try:
        settings.ledger_key_bytes(demo=demo)
    except SecretSettingError as exc:
        problems.append(str(exc))
    if settings.alert_secret and settings.alert_secret == settings.ledger_key:
        problems.append(
            "ALERTENGINE_LEDGER_KEY: the same value as ALERT_SECRET; they must differ (one "
            "leaked key must not both mint approval links and re-sign a rewritten ledger)"
        )
    if settings.notify_webhook_secret and len(settings.notify_webhook_secret.encode()) < (
        MIN_KEY_BYTES
    ):
        problems.append(
            f"NOTIFY_WEBHOOK_SECRET: shorter than {MIN_KEY_BYTES} bytes; it signs notifications"
        )
    if settings.telegram_webhook_secret and not TELEGRAM_SECRET.match(
        settings.telegram_webhook_secret
    ):
        problems.append(
            "TELEGRAM_WEBHOOK_SECRET: Telegram accepts only 1-256 characters of "
            "A-Z a-z 0-9 _ - as a webhook secret_token; generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
    problems += _slack_problems(settings)
    warnings += _slack_warnings(config, settings)
    lease_ttl = environ.get("ALERTENGINE_LEASE_TTL_S", "")
    if lease_ttl:
        try:
            ttl_ok = math.isfinite(float(lease_ttl)) and float(lease_ttl) > 0
        except ValueError:
            ttl_ok = False
        if not ttl_ok:
            problems.append(
                f"ALERTENGINE_LEASE_TTL_S: must be a number of seconds > 0 (got {lease_ttl!r})"
            )

    if store_url is not None:
        origin, url = store_url
        try:
            check_store_url(url)
        except ValueError as exc:
            problems.append(f"{origin}: {exc}")

    # Diagnosis: refuse rather than silently fall back to the rules.
    key = settings.anthropic_api_key
    diagnoser = config.orchestrator.diagnoser
    if diagnoser in ("claude", "council") and not key:
        problems.append(
            f'orchestrator.diagnoser: "{diagnoser}" needs ANTHROPIC_API_KEY, which is not set '
            '(set it, or use diagnoser = "rules")'
        )
    for i, t in enumerate(config.tenants):
        if t.council and not key:
            problems.append(f"tenants.{i}.council: the council needs ANTHROPIC_API_KEY, not set")
    if settings.council_enabled and not key:
        problems.append("COUNCIL_ENABLED: the council needs ANTHROPIC_API_KEY, which is not set")

    # Secrets named by the file.
    for i, t in enumerate(config.tenants):
        if t.github_secret_env and not environ.get(t.github_secret_env):
            problems.append(
                f"tenants.{i}.github_secret_env: names {t.github_secret_env}, which is not set"
            )
    for i, tgt in enumerate(config.targets):
        where = f"targets.{i}.webhook_secret_env"
        if tgt.recovery_webhook and not tgt.webhook_secret_env:
            problems.append(
                f"{where}: not set, so the recovery webhook of {tgt.tenant}/{tgt.service} "
                "would be signed with an empty key and anyone could forge an approved "
                f"recovery; name a variable holding {MIN_KEY_BYTES}+ random bytes"
            )
        elif tgt.webhook_secret_env:
            why = _key_problem(tgt.webhook_secret_env, environ.get(tgt.webhook_secret_env, ""))
            if why:
                problems.append(f"{where}: {why}")

    # Approvers: each route entry must be able to reach its person.
    reach = reachability(config, settings)
    for i, t in enumerate(config.tenants):
        for j, a in enumerate(t.approvers):
            if a.channel == "webhook" and not a.address.startswith(("http://", "https://")):
                problems.append(
                    f"tenants.{i}.approvers.{j}.address: a webhook approver's address is the "
                    "URL to POST to (http:// or https://)"
                )
    lines = [
        f"{r.field}.channel: {r.identity} cannot be reached on {r.channel}: {r.missing}"
        for r in reach
        if not r.ok
    ]
    watched = {tgt.tenant for tgt in config.targets}
    lines += [
        f"tenants.{i}.approvers: tenant {t.id} has targets but no approver to ask"
        for i, t in enumerate(config.tenants)
        if t.id in watched and not t.persons()
    ]
    for line in lines:
        if allow_unreachable_approvers:
            warnings.append(line)
        else:
            problems.append(
                line + " (fix the credentials, or start with --allow-unreachable-approvers)"
            )
    return Preflight(tuple(problems), tuple(warnings), reach)
