"""Silences: Alertmanager-style matchers over an incident's labels, for a time. Pure.

A silence belongs to one tenant and has matchers (``name``, operator, value) with
Alertmanager's operators: ``=`` and ``!=`` compare strings, ``=~`` and ``!~`` match a regular
expression against the whole value (anchored, as Alertmanager does). Expressions are RE2
(``google-re2``), the dialect Alertmanager's Go ``regexp`` speaks, and match in linear time:
a tenant's pattern cannot stall the orchestrator's loop (Python's backtracking ``re`` could
take exponential time on ``(a+)+$``). A label the incident
lacks has the value ``""``. The labels of an incident are ``tenant``, ``service`` and the
labels of the Alertmanager alerts it tracks. A silence silences while
``starts_at <= now < ends_at``; expiring it sets ``ends_at`` to now (as Alertmanager does).

While a matching silence is active the incident is still detected and ledgered, but nobody
is paged and nothing is proposed for execution.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

import re2  # type: ignore[import-untyped]

Op = Literal["=", "!=", "=~", "!~"]
OPS: tuple[Op, ...] = ("=~", "!~", "!=", "=")  # longest first, for parsing
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_MATCHERS = 32
MAX_VALUE = 1_000
MAX_COMMENT = 1_000
MAX_CREATOR = 200
#: A silence may not last longer than a year (a forgotten one would mute a tenant forever).
MAX_DURATION_S = 366 * 86400.0


class SilenceError(ValueError):
    """A silence or matcher is invalid; the message says which field and why."""


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    """The RE2 program of ``pattern`` (cached: silences are re-read every tick)."""
    options = re2.Options()
    options.log_errors = False  # a bad pattern is the caller's 400, not a log line
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise SilenceError(f"bad regular expression {pattern!r}: {detail}") from None


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: Op
    value: str

    def __post_init__(self) -> None:
        if not _LABEL.match(self.name):
            raise SilenceError(f"invalid label name {self.name!r}")
        if self.op not in OPS:
            raise SilenceError(f"invalid operator {self.op!r} (one of = != =~ !~)")
        if len(self.value) > MAX_VALUE:
            raise SilenceError(f"matcher {self.name}: value longer than {MAX_VALUE}")
        if self.op in ("=~", "!~"):
            try:
                _compiled(self.value)
            except SilenceError as exc:
                raise SilenceError(f"matcher {self.name}: {exc}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = _compiled(self.value).fullmatch(v) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value!r}".replace("'", '"')

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matcher(text: str) -> Matcher:
    """``service=checkout``, ``env!~"stag.*"``: name, operator, value (quotes optional)."""
    m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", text)
    if m is None:
        raise SilenceError(f"cannot read matcher {text!r} (e.g. service=checkout, env=~prod.*)")
    name, op, value = m.group(1), m.group(2), m.group(3)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return Matcher(name, op, value)  # type: ignore[arg-type]


def matcher_from_dict(d: Any) -> Matcher:
    if isinstance(d, str):
        return parse_matcher(d)
    if not isinstance(d, Mapping):
        raise SilenceError("a matcher is an object {name, op, value} or a string 'name=value'")
    extra = sorted(set(d) - {"name", "op", "value", "isRegex", "isEqual"})
    if extra:
        raise SilenceError(f"matcher: unknown field(s) {extra}")
    name, value = d.get("name"), d.get("value")
    if not isinstance(name, str) or not isinstance(value, str):
        raise SilenceError("matcher: name and value are strings")
    op = d.get("op")
    if op is None:  # Alertmanager's API shape
        regex, equal = bool(d.get("isRegex", False)), bool(d.get("isEqual", True))
        op = ("=~" if equal else "!~") if regex else ("=" if equal else "!=")
    if op not in OPS:
        raise SilenceError(f"matcher {name}: invalid operator {op!r} (one of = != =~ !~)")
    return Matcher(name, op, value)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    tenant_id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float

    def __post_init__(self) -> None:
        if not self.matchers:
            raise SilenceError("a silence needs at least one matcher")
        if len(self.matchers) > MAX_MATCHERS:
            raise SilenceError(f"at most {MAX_MATCHERS} matchers")
        if not self.created_by.strip() or len(self.created_by) > MAX_CREATOR:
            raise SilenceError("created_by: name who creates the silence")
        if not self.comment.strip() or len(self.comment) > MAX_COMMENT:
            raise SilenceError(f"comment: say why (1-{MAX_COMMENT} characters)")
        if self.ends_at < self.starts_at:
            raise SilenceError("ends_at must be after starts_at")
        if self.ends_at - self.starts_at > MAX_DURATION_S:
            raise SilenceError("a silence may last at most 366 days")

    def active(self, at: float) -> bool:
        return self.starts_at <= at < self.ends_at

    def state(self, at: float) -> str:
        """``pending``, ``active`` or ``expired`` (Alertmanager's words)."""
        if at < self.starts_at:
            return "pending"
        return "active" if at < self.ends_at else "expired"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def silences(self, labels: Mapping[str, str], at: float) -> bool:
        return self.active(at) and self.matches(labels)

    def expired_at(self, at: float) -> Silence:
        """This silence ended at ``at`` (kept for the record; no-op once it has ended). A
        pending one ends before it starts, as Alertmanager does (start = end = ``at``)."""
        if at >= self.ends_at:
            return self
        return replace(self, starts_at=min(self.starts_at, at), ends_at=at)

    def to_dict(self, at: float | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "matchers": [m.to_dict() for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
            "created_at": self.created_at,
        }
        if at is not None:
            d["state"] = self.state(at)
        return d


def silence_from_dict(d: Mapping[str, Any]) -> Silence:
    """A stored silence back (trusted shape, still validated)."""
    return Silence(
        id=str(d["id"]),
        tenant_id=str(d["tenant_id"]),
        matchers=tuple(matcher_from_dict(m) for m in d.get("matchers") or ()),
        starts_at=float(d["starts_at"]),
        ends_at=float(d["ends_at"]),
        created_by=str(d.get("created_by", "")),
        comment=str(d.get("comment", "")),
        created_at=float(d.get("created_at", 0.0)),
    )


def incident_labels(
    tenant_id: str, service: str, alerts: Iterable[Mapping[str, Any]] = ()
) -> dict[str, str]:
    """The labels silences match against: every tracked alert's labels, then ``tenant`` and
    ``service`` (which an alert's labels cannot override)."""
    labels: dict[str, str] = {}
    for a in alerts:
        raw = a.get("labels")
        if isinstance(raw, Mapping):
            labels.update({str(k): str(v) for k, v in raw.items()})
    labels["tenant"] = tenant_id
    labels["service"] = service
    return labels


def silencing(silences: Iterable[Silence], labels: Mapping[str, str], at: float) -> Silence | None:
    """The first silence that silences ``labels`` at ``at`` (None: page as usual)."""
    return next((s for s in silences if s.silences(labels, at)), None)
