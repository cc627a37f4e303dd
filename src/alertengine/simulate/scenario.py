"""Scenario files: what happens to which service, who can approve when, what is down.

A scenario is TOML (documented in ``docs/simulator.md``); this module parses and validates
it into frozen values. Pure: :func:`parse_scenario` takes a mapping, :func:`load_scenario`
only reads the file. Every time is seconds from the start of the simulation and may be
written as a number or a duration string (``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"``).
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from alertengine.oncall.schedule import Schedule, schedule_from_dict
from alertengine.oncall.silences import parse_matcher
from alertengine.policy import Policy, PolicyError, load_policy

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


class ScenarioError(ValueError):
    """The scenario cannot be used; the message names the file and the field."""


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``"90s"``, ``"5m"``, ``"1h30m"``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    text = value.strip().replace(" ", "").lower()
    if not text:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        try:
            return parse_duration(float(text))
        except ValueError:
            raise ValueError(
                f"not a duration: {value!r} (use e.g. 30s, 5m, 1h30m or seconds)"
            ) from None
    return total


def format_offset(seconds: float) -> str:
    """``+1h02m05s`` style, for tables and charts."""
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{sec:02d}s"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


#: A float of seconds that may be written as a duration string in TOML.
Duration = Annotated[float, BeforeValidator(parse_duration)]


class Window(_Model):
    """A half-open time window ``[start, end)`` in seconds from the start."""

    start: float
    end: float

    @model_validator(mode="before")
    @classmethod
    def _from_any(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)) and len(v) == 2:
            return {"start": parse_duration(v[0]), "end": parse_duration(v[1])}
        if isinstance(v, Mapping):
            start = parse_duration(v.get("from", v.get("start", 0)))
            if "for" in v:
                end = start + parse_duration(v["for"])
            else:
                end = parse_duration(v.get("to", v.get("end", 10**9)))
            return {"start": start, "end": end}
        return v

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")
        return self

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


EventKind = Literal["error_rate", "p95", "traffic", "score", "unreachable"]


class Event(_Model):
    """From ``at`` for ``for`` seconds (or to the end), one health number takes ``value``."""

    kind: EventKind
    at: Duration
    duration: Duration | None = Field(None, alias="for")
    value: float | None = None
    detail: str = ""

    @model_validator(mode="after")
    def _needs_value(self) -> Event:
        if self.kind != "unreachable" and self.value is None:
            raise ValueError(f"a {self.kind} event needs a value")
        if self.kind == "error_rate" and self.value is not None and not 0 <= self.value <= 1:
            raise ValueError("error_rate is a share between 0 and 1 (20 % is 0.20)")
        return self

    @property
    def end(self) -> float:
        return float("inf") if self.duration is None else self.at + self.duration

    def active(self, t: float) -> bool:
        return self.at <= t < self.end


class Baseline(_Model):
    p95_ms: float = Field(120.0, gt=0)
    error_rate: float = Field(0.002, ge=0, le=1)
    traffic: int = Field(600, ge=0, description="requests per poll window (the sample size)")
    score: float | None = Field(None, ge=0, le=100, description="fixed score instead of scoring")


class Service(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    action: str = "restart"
    baseline: Baseline = Baseline()
    events: tuple[Event, ...] = ()
    #: Once the recovery webhook succeeds, the degradation stops this many seconds later;
    #: ``None`` (``recovery = "none"``) means the action does not help.
    recovery: float | None = 60.0

    @field_validator("recovery", mode="before")
    @classmethod
    def _recovery(cls, v: Any) -> float | None:
        if v is None or (isinstance(v, str) and v.strip().lower() in ("none", "never", "")):
            return None
        return parse_duration(v)


class Approver(_Model):
    """One way to reach one person: entries with the same ``id`` are one person, their
    channels tried in file order. On ``voice``, an available person answers the call and
    presses 1 (acknowledges: a call never approves); an unavailable one does not pick up,
    and after Twilio's ring time the call reports ``no-answer``."""

    id: str = Field(min_length=1, pattern=r"^[^:\s]+$")
    channel: Literal["telegram", "whatsapp", "slack", "webhook", "web", "voice"] = "telegram"
    reaction: Duration = 60.0
    #: Acknowledges ("I'm on it") this long after a message reaches them, when available;
    #: unset: never acknowledges. Acknowledging holds escalation, it never approves.
    ack: Duration | None = None
    available: tuple[Window, ...] = ()
    unavailable: tuple[Window, ...] = ()

    @property
    def identity(self) -> str:
        return f"engineer:{self.channel}:{self.id}"

    @property
    def address(self) -> str:
        """Where the channel reaches them: the ``id``; on voice a made-up E.164 number
        derived from it (a call needs one; the ledger never shows it)."""
        if self.channel != "voice":
            return self.id
        digest = hashlib.sha256(self.id.encode()).digest()
        return "+1555" + str(int.from_bytes(digest[:8], "big") % 10**7).zfill(7)

    def is_available(self, t: float) -> bool:
        if any(w.contains(t) for w in self.unavailable):
            return False
        return not self.available or any(w.contains(t) for w in self.available)

    def next_available(self, t: float, horizon: float) -> float | None:
        """The first moment >= ``t`` (and < ``horizon``) this approver can act."""
        candidates = [t] + [w.end for w in self.unavailable] + [w.start for w in self.available]
        for c in sorted(x for x in candidates if t <= x < horizon):
            if self.is_available(c):
                return c
        return None


class ChannelFailure(_Model):
    channel: str
    window: Window

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, v: Any) -> Any:
        if isinstance(v, Mapping) and "window" not in v:
            rest = {k: x for k, x in v.items() if k not in ("channel",)}
            return {"channel": v.get("channel"), "window": rest or {"from": 0}}
        return v


WebhookMode = Literal["http_503", "http_500", "timeout", "connect"]


class WebhookFailure(_Model):
    """The tenant's recovery webhook fails: within a window, and/or the first N attempts."""

    service: str | None = None
    window: Window = Window(start=0, end=10**9)
    attempts: int | None = Field(None, ge=1, description="fail only the first N attempts")
    mode: WebhookMode = "http_503"

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, v: Any) -> Any:
        if isinstance(v, Mapping) and "window" not in v and ("from" in v or "to" in v):
            w = {k: v[k] for k in ("from", "to", "for") if k in v}
            return {**{k: x for k, x in v.items() if k not in w}, "window": w}
        return v


def _epoch(value: Any) -> Any:
    """``start`` as epoch seconds or an ISO 8601 date-time (UTC without an offset), so a
    scenario can begin on a Saturday night for its schedules."""
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"start: epoch seconds or ISO 8601, got {value!r}") from None
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    return value


class SimSilence(_Model):
    """A silence during ``[from, to)`` (seconds from the start) with Alertmanager matchers."""

    matchers: tuple[str, ...] = Field(min_length=1)
    window: Window
    comment: str = "maintenance"

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, v: Any) -> Any:
        if isinstance(v, Mapping) and "window" not in v:
            w = {k: v[k] for k in ("from", "to", "for") if k in v}
            return {**{k: x for k, x in v.items() if k not in w}, "window": w or {"from": 0}}
        return v

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for m in v:
            parse_matcher(m)  # SilenceError is a ValueError: reported with the field
        return v


class Scenario(_Model):
    name: str
    description: str = ""
    duration: Duration = 3600.0
    step: Duration = 5.0
    start: Annotated[float, BeforeValidator(_epoch)] = 1_700_000_000.0
    seed: int = 1
    tenant: str = Field("sim", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    policy: Mapping[str, Any] = Field(default_factory=dict)
    services: tuple[Service, ...] = Field(min_length=1)
    approvers: tuple[Approver, ...] = ()
    channel_failures: tuple[ChannelFailure, ...] = ()
    webhook_failures: tuple[WebhookFailure, ...] = ()
    #: On-call schedules (as ``[[tenants.schedules]]``), naming approvers by ``id``.
    schedules: tuple[dict[str, Any], ...] = ()
    silences: tuple[SimSilence, ...] = ()

    @field_validator("schedules")
    @classmethod
    def _schedules(cls, v: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        for d in v:
            schedule_from_dict(d)  # ScheduleError is a ValueError: reported with the field
        return v

    def on_call(self) -> list[Schedule]:
        return [schedule_from_dict(d) for d in self.schedules]

    @model_validator(mode="after")
    def _coherent(self) -> Scenario:
        if self.step <= 0:
            raise ValueError("step must be positive")
        if self.duration < self.step:
            raise ValueError("duration must be at least one step")
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        ids = [a.identity for a in self.approvers]
        if len(set(ids)) != len(ids):
            raise ValueError("approver identities (channel:id) must be unique")
        known = {a.id for a in self.approvers}
        for sched in self.on_call():
            if unknown := [p for p in sched.people() if p not in known]:
                raise ValueError(f"schedule {sched.name!r} names unknown approver(s) {unknown}")
        for f in self.webhook_failures:
            if f.service is not None and f.service not in names:
                raise ValueError(f"webhook failure names unknown service {f.service!r}")
        return self

    def effective_policy(self, extra: Mapping[str, Any] | None = None) -> Policy:
        """Defaults, the scenario's ``[policy]`` table, then ``extra`` (a what-if file).

        The process environment is ignored: a scenario means the same thing everywhere.
        """
        policy = load_policy(environ={}, tenant_overrides=dict(self.policy) or None)
        if extra:
            policy = policy.with_overrides(extra, source="policy file")
        return policy


def _flatten(raw: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(raw)
    head = data.pop("scenario", None)
    if isinstance(head, Mapping):
        data = {**head, **data}
    return data


def parse_scenario(raw: Mapping[str, Any], *, source: str = "scenario") -> Scenario:
    try:
        scenario = Scenario.model_validate(_flatten(raw))
        scenario.effective_policy()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'scenario'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ScenarioError(f"{source}: {problems}") from None
    except PolicyError as exc:
        raise ScenarioError(f"{source}: [policy] {exc}") from None
    return scenario


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
            return data
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p}: not valid TOML: {exc}") from None


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(read_toml(path), source=str(path))


def load_policy_file(path: str | Path) -> dict[str, Any]:
    """A what-if policy: a TOML file whose top level (or ``[policy]`` table) are overrides."""
    raw = read_toml(path)
    table = raw.get("policy", raw)
    if not isinstance(table, Mapping):
        raise ScenarioError(f"{path}: [policy] must be a table")
    try:
        Policy().with_overrides(dict(table), source=str(path))
    except PolicyError as exc:
        raise ScenarioError(str(exc)) from None
    return dict(table)
