"""The orchestrator's configuration: one TOML file plus environment for secrets.

Secrets never live in the file: it names environment variables (``*_env`` fields) and the
process reads them at start-up. Any error names the field and refuses to start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from alertengine.oncall.schedule import Schedule, ScheduleError, schedule_from_dict
from alertengine.people import (
    Channel,
    LegacyApprover,
    Person,
    PersonError,
    people_from_legacy,
    shared_addresses,
)
from alertengine.policy import Policy, PolicyError, load_policy
from alertengine.stores.factory import check_store_url
from alertengine.tenants import approver_id_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """The configuration cannot be used. The message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelConfig(_Model):
    """One way to reach one approver: the channel kind and that approver's address on it."""

    channel: str = Field(pattern=r"^(telegram|whatsapp|slack|webhook|web|voice)$")
    address: str = Field(min_length=1, description="chat id, phone number, or URL")
    identity: str = Field(
        default="", description="the approver's id on that channel (defaults to the address)"
    )

    @model_validator(mode="after")
    def _no_phone_number_as_identity(self) -> ChannelConfig:
        # The identity is written into the append-only ledger and shown on pages; a WhatsApp
        # address is a phone number, which must appear in neither.
        if self.channel == "whatsapp" and not self.identity:
            raise ValueError(
                'a WhatsApp approver needs an `identity` (e.g. identity = "ana"): it names '
                "them in the ledger, where the phone number must never appear"
            )
        if phone_like_identity(self.channel, self.identity, self.address):
            raise ValueError(
                "`identity` looks like a phone number; it is written into the ledger, so use "
                "a name or a handle"
            )
        return self

    @property
    def approver(self) -> str:
        return f"engineer:{self.channel}:{self.identity or self.address}"

    @model_validator(mode="after")
    def _address(self) -> ChannelConfig:
        Channel(self.channel, self.address)  # the person registry's rules for an address
        return self

    @model_validator(mode="after")
    def _approver_id(self) -> ChannelConfig:
        problem = approver_id_problem(self.identity or self.address)
        if problem and self.identity:
            raise ValueError(f"identity {self.identity!r} {problem}")
        if problem:
            raise ValueError(
                f"the address {self.address!r} {problem}, so it cannot name the approver: "
                'set identity (e.g. identity = "alice")'
            )
        return self


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def phone_like_identity(channel: str, identity: str, address: str = "") -> bool:
    """Would this approver id put a phone number into the ledger? A ``+…`` number anywhere;
    on WhatsApp also the address's digits or any bare run of 7+ digits."""
    if looks_like_phone_number(identity):
        return True
    digits = _digits(identity)
    if channel != "whatsapp" or not digits:
        return False
    return digits == _digits(address) or (identity.strip().isdigit() and len(digits) >= 7)


def looks_like_phone_number(text: str) -> bool:
    """``+263 77 123 4567``, ``whatsapp:+2637…``: a leading ``+`` or ``whatsapp:`` and 7+ digits.

    Telegram user ids are bare digits and stay allowed: they are not phone numbers.
    """
    t = text.strip().lower().removeprefix("whatsapp:").strip()
    digits = sum(c.isdigit() for c in t)
    return t.startswith("+") and digits >= 7 and all(c.isdigit() or c in " -.()+" for c in t)


class PersonChannelConfig(_Model):
    """One channel of a person: ``channel`` kind, ``address`` to send to, and optionally the
    ``user_id`` the channel reports when they act (when it differs from the address)."""

    channel: str = Field(pattern=r"^(telegram|whatsapp|slack|webhook|web|voice)$")
    address: str = Field(min_length=1)
    user_id: str = ""


class PersonConfig(_Model):
    """``[[tenants.people]]``: one human, every channel that reaches them, their GitHub
    logins (the deployer rule maps commit authors to people with them)."""

    id: str
    name: str = ""
    channels: list[PersonChannelConfig] = Field(default_factory=list)
    github: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> PersonConfig:
        self.person()  # raises PersonError (a ValueError) naming what is wrong
        return self

    def person(self) -> Person:
        return Person(
            id=self.id,
            name=self.name,
            channels=tuple(Channel(c.channel, c.address, c.user_id) for c in self.channels),
            github_logins=tuple(self.github),
        )


class TenantConfig(_Model):
    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
    name: str = ""
    #: Per-tenant policy overrides (field names of :class:`~alertengine.policy.Policy`).
    policy: dict[str, Any] = Field(default_factory=dict)
    #: The people who approve, in escalation order (channels of one person are fall-overs).
    people: list[PersonConfig] = Field(default_factory=list)
    #: Deprecated flat route (one entry per channel); entries sharing an ``identity`` are one
    #: person, an entry without one is a person of its own. Listed after ``people``.
    approvers: list[ChannelConfig] = Field(default_factory=list)
    github_secret_env: str = ""
    max_channels: int = Field(5, ge=1)
    #: Two-lens council for this tenant. Unset: as the orchestrator's ``diagnoser`` says
    #: (``council`` for every tenant); ``true`` needs an Anthropic key; ``false`` opts out.
    council: bool | None = None
    #: The approved WhatsApp Content API template (``HX…``) with the Approve / Acknowledge /
    #: Details quick replies (docs/notifications.md); empty: free-form text only.
    whatsapp_content_sid: str = Field("", pattern=r"^(HX[0-9a-fA-F]{32})?$")
    #: ``[[tenants.schedules]]``: on-call rotations naming people by id (docs/oncall.md).
    schedules: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("schedules")
    @classmethod
    def _schedules(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [on_call_schedule(d).name for d in v]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate schedule names {sorted(names)}")
        return v

    def on_call(self) -> list[Schedule]:
        return [on_call_schedule(d) for d in self.schedules]

    def persons(self) -> list[Person]:
        """Every approver as a person, in escalation order: ``people``, then the people
        derived from the flat ``approvers`` list."""
        legacy = [LegacyApprover(a.channel, a.address, a.identity) for a in self.approvers]
        return people_from_legacy(legacy, [p.person() for p in self.people])

    @model_validator(mode="after")
    def _people_distinct(self) -> TenantConfig:
        ids = [p.id for p in self.people]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"people: duplicate person id(s) {dupes}")
        try:
            people = self.persons()
        except PersonError as exc:
            raise ValueError(f"approvers: {exc}") from None
        for kind, a, b in shared_addresses(people):
            raise ValueError(
                f"people: {a!r} and {b!r} share a {kind} address; one address may name only "
                "one person (else one human could count as two approvers)"
            )
        return self


def on_call_schedule(data: Mapping[str, Any]) -> Schedule:
    try:
        return schedule_from_dict(data)
    except ScheduleError as exc:
        raise ValueError(f"schedule {data.get('name', '?')!r}: {exc}") from None


class TargetConfig(_Model):
    tenant: str
    service: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
    health_url: str = Field(default="", description="the SDK's /health/alerts URL to poll")
    recovery_webhook: str = Field(default="", description="called only after approval")
    webhook_secret_env: str = Field(default="", description="env var with the HMAC secret")
    action: str = Field(default="restart", min_length=1, max_length=200)
    poll_timeout_s: float = Field(3.0, gt=0, le=60)

    @field_validator("health_url", "recovery_webhook")
    @classmethod
    def _http(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v


#: The council's two lenses by default: a fast model and a strong one, side by side.
DEFAULT_COUNCIL_MODELS = ("claude-haiku-4-5", "claude-sonnet-4-6")


class OrchestratorSection(_Model):
    store_url: str = "sqlite:///var/alertengine.db"
    base_url: str = "http://127.0.0.1:8700"
    host: str = "127.0.0.1"
    port: int = Field(8700, ge=0, le=65535)
    loop_interval_s: float = Field(5.0, gt=0, le=3600)
    demo: bool = False
    diagnoser: str = Field("rules", pattern=r"^(rules|claude|council)$")
    #: The model of ``diagnoser = "claude"`` (empty: ALERTENGINE_CLAUDE_MODEL, then the default).
    claude_model: str = ""
    #: The council's models: lens A (latency & database), lens B (network & dependencies).
    council_models: tuple[str, str] = DEFAULT_COUNCIL_MODELS

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                "must be an absolute http:// or https:// URL (approval links point there), "
                f"got {v!r}"
            )
        return v.rstrip("/")

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, v: str) -> str:
        check_store_url(v)
        return v

    @field_validator("council_models")
    @classmethod
    def _models(cls, v: tuple[str, str]) -> tuple[str, str]:
        if not all(m.strip() for m in v):
            raise ValueError("each lens needs a model name")
        return v


class Config(_Model):
    orchestrator: OrchestratorSection = OrchestratorSection()
    tenants: list[TenantConfig] = Field(default_factory=list)
    targets: list[TargetConfig] = Field(default_factory=list)

    def tenant(self, tenant_id: str) -> TenantConfig | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)

    def target(self, tenant_id: str, service: str) -> TargetConfig | None:
        return next(
            (t for t in self.targets if t.tenant == tenant_id and t.service == service), None
        )

    def policy_for(self, tenant_id: str, environ: Mapping[str, str] | None = None) -> Policy:
        t = self.tenant(tenant_id)
        return load_policy(environ, t.policy if t else None)


def parse_config(data: Mapping[str, Any], *, source: str = "config") -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from None
    _check_references(cfg, source)
    return cfg


def _check_references(cfg: Config, source: str) -> None:
    ids = [t.id for t in cfg.tenants]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ConfigError(f"{source}: tenants: duplicate id(s) {sorted(dupes)}")
    seen: set[tuple[str, str]] = set()
    for i, tgt in enumerate(cfg.targets):
        if tgt.tenant not in ids:
            raise ConfigError(f"{source}: targets.{i}.tenant: unknown tenant {tgt.tenant!r}")
        key = (tgt.tenant, tgt.service)
        if key in seen:
            raise ConfigError(f"{source}: targets.{i}: duplicate target {tgt.tenant}/{tgt.service}")
        seen.add(key)
    for t in cfg.tenants:
        kinds = {a.channel for a in t.approvers} | {c.channel for p in t.people for c in p.channels}
        if len(kinds) > t.max_channels:
            raise ConfigError(
                f"{source}: tenants.{t.id}.approvers: more channels than max_channels"
            )
        known = {a.identity or a.address for a in t.approvers}
        known |= {p.id for p in t.persons()}  # the tenant's people, declared or derived
        for sched in t.on_call():
            if unknown := [p for p in sched.people() if p not in known]:
                raise ConfigError(
                    f"{source}: tenants.{t.id}.schedules.{sched.name}: {unknown} not among the "
                    "tenant's approvers (an on-call person must be reachable and able to approve)"
                )
        try:
            policy = cfg.policy_for(t.id)
        except PolicyError as exc:
            raise ConfigError(f"{source}: tenants.{t.id}.policy: {exc}") from None
        problem = (
            passkey_origin_problem(cfg.orchestrator.base_url) if policy.require_passkey else ""
        )
        if problem:
            raise ConfigError(
                f"{source}: orchestrator.base_url: tenant {t.id} requires passkeys, {problem}"
            )


def passkey_origin_problem(base_url: str) -> str:
    """Why browsers would refuse WebAuthn for pages at ``base_url`` ("" when they would not):
    the RP ID is its host, which must be a domain, served over https (or http://localhost)."""
    host = (urlsplit(base_url).hostname or "").lower()
    if not host or host.replace(".", "").isdigit() or ":" in host:
        return f"but a passkey's relying party must be a domain name, not {host or 'nothing'!r}"
    if urlsplit(base_url).scheme != "https" and host != "localhost":
        return "but browsers offer passkeys only on https:// pages (or http://localhost)"
    return ""


def load_config(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(data, source=str(p))
