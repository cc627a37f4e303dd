"""On-call schedules: who is on call at an instant. Pure: no I/O, no clock.

A schedule has layers (primary first, then secondary …). Each layer is a rotation: a list of
person ids handing off daily or weekly at a local wall time in a named IANA timezone. The
hand-off instants come from ``dateutil.rrule`` over local wall times, each made an instant
with ``zoneinfo``, so "09:00 Europe/Berlin" stays 09:00 on both sides of a DST change (a
wall time that does not exist that day, inside a spring-forward gap, hands off at the
instant the clocks jump past it; an ambiguous one, at its first occurrence).

Overrides replace people for a period: "Bob covers Alice Saturday 09:00–21:00" puts Bob
wherever Alice is on call in that period; an override without ``covers`` replaces whoever
is on call in its layer. The last override listed wins where two overlap.

Person ids are plain validated strings, the same slugs as the person registry's
(``person:<id>`` in the ledger); this module does not look people up.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import DAILY, WEEKLY, rrule

#: The person registry's id rule (``alertengine.people``): a slug starting with a letter.
PERSON_ID = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")

Every = Literal["daily", "weekly"]
_FREQ: dict[str, Literal[2, 3]] = {"daily": DAILY, "weekly": WEEKLY}


class ScheduleError(ValueError):
    """A schedule cannot be used; the message names what is wrong."""


def person_id_problem(person_id: str) -> str | None:
    if not isinstance(person_id, str) or not PERSON_ID.match(person_id):
        return (
            f"invalid person id {person_id!r}: use 1-63 of a-z 0-9 . _ - starting with a "
            "letter (e.g. alice)"
        )
    return None


def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name`` (``Europe/Berlin``), or a ScheduleError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown timezone {name!r} (use an IANA name, e.g. Europe/Berlin)"
        ) from None


def aware(value: datetime, tz: ZoneInfo) -> datetime:
    """A naive datetime is a wall time in ``tz``; an aware one is kept as it is."""
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def _instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time (first occurrence; past a gap when in one)."""
    first = wall.replace(tzinfo=tz, fold=0)
    utc = first.astimezone(timezone.utc)
    if utc.astimezone(tz).replace(tzinfo=None) != wall:
        # In a spring-forward gap the wall time never shows: hand off when the jump ends.
        later = wall.replace(tzinfo=tz, fold=1).astimezone(timezone.utc)
        return max(utc, later)
    return utc


@dataclass(frozen=True, slots=True)
class Layer:
    """One rotation: ``people`` take turns, handing off every ``interval`` days or weeks at
    ``start``'s wall time (weekly: on ``start``'s weekday), ``people[0]`` from ``start``."""

    name: str
    people: tuple[str, ...]
    every: Every
    start: datetime  # naive: a wall time in ``timezone``
    timezone: str
    interval: int = 1

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ScheduleError(f"invalid layer name {self.name!r}")
        if not self.people:
            raise ScheduleError(f"layer {self.name!r}: needs at least one person")
        for p in self.people:
            if problem := person_id_problem(p):
                raise ScheduleError(f"layer {self.name!r}: {problem}")
        if self.every not in _FREQ:
            raise ScheduleError(f"layer {self.name!r}: every must be 'daily' or 'weekly'")
        if not 1 <= self.interval <= 52:
            raise ScheduleError(f"layer {self.name!r}: interval must be 1-52")
        if self.start.tzinfo is not None:
            raise ScheduleError(f"layer {self.name!r}: start is a local wall time (no offset)")
        zone(self.timezone)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    @property
    def period_days(self) -> int:
        return self.interval * (7 if self.every == "weekly" else 1)

    def _rule(self, near: datetime | None = None) -> tuple[int, datetime, rrule]:
        """(turns skipped, first hand-off, the rule from it), starting a few periods before
        the wall time ``near``: rrule walks from its start, so a years-old rotation would
        cost thousands of steps per question. Hand-offs are whole periods of days apart in
        wall time, so the skipped turns are counted by a division, not walked."""
        skipped = 0
        if near is not None and near > self.start:
            skipped = max(0, (near - self.start).days // self.period_days - 2)
        first = self.start + timedelta(days=skipped * self.period_days)
        return skipped, first, rrule(_FREQ[self.every], dtstart=first, interval=self.interval)

    def starts_at(self) -> datetime:
        return _instant(self.start, self.tz)

    def handoffs(self, since: datetime, until: datetime) -> list[datetime]:
        """Hand-off instants (UTC) in ``[since, until)``."""
        tz = self.tz
        # A day of slack each side: the wall-time window and the instant window differ by
        # at most the zone's offset change.
        lo = since.astimezone(tz).replace(tzinfo=None) - timedelta(days=1)
        hi = until.astimezone(tz).replace(tzinfo=None) + timedelta(days=1)
        _, _, rule = self._rule(lo)
        out = [_instant(w, tz) for w in rule.between(lo, hi, inc=True)]
        return [h for h in out if since <= h < until]

    def on_call(self, at: datetime) -> str | None:
        """Who this rotation has on call at ``at`` (None before its first hand-off)."""
        tz = self.tz
        if at < self.starts_at():
            return None
        wall = at.astimezone(tz).replace(tzinfo=None)
        skipped, first, rule = self._rule(wall)
        # The last hand-off at or before ``at``: search a little past the wall time, then
        # compare instants (wall times repeat in the autumn hour).
        candidates = rule.between(first, wall + timedelta(days=1), inc=True)
        turns = skipped + len([w for w in candidates if _instant(w, tz) <= at])
        return self.people[(turns - 1) % len(self.people)]


@dataclass(frozen=True, slots=True)
class Override:
    """``who`` is on call instead of ``covers`` (or instead of whoever is on call in
    ``layer``, when ``covers`` is empty) during ``[start, end)``."""

    who: str
    start: datetime  # aware
    end: datetime  # aware
    covers: str = ""
    layer: str = ""

    def __post_init__(self) -> None:
        if problem := person_id_problem(self.who):
            raise ScheduleError(f"override: {problem}")
        if self.covers and (problem := person_id_problem(self.covers)):
            raise ScheduleError(f"override covers: {problem}")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ScheduleError("override start and end need a timezone")
        if self.end <= self.start:
            raise ScheduleError("override must end after it starts")

    def active(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ScheduleError(f"invalid schedule name {self.name!r}")
        if not self.layers:
            raise ScheduleError(f"schedule {self.name!r}: needs at least one layer")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ScheduleError(f"schedule {self.name!r}: duplicate layer names")
        for o in self.overrides:
            if o.layer and o.layer not in names:
                raise ScheduleError(f"override names unknown layer {o.layer!r}")

    def people(self) -> list[str]:
        seen: dict[str, None] = {}
        for layer in self.layers:
            seen.update(dict.fromkeys(layer.people))
        for o in self.overrides:
            seen.update(dict.fromkeys([o.who]))
        return list(seen)

    def layer_on_call(self, layer: Layer, at: datetime) -> str | None:
        """Who is on call in ``layer`` at ``at``, overrides applied."""
        who = layer.on_call(at)
        for o in self.overrides:
            if who is None or not o.active(at):
                continue
            if o.covers:
                hit = o.covers == who and o.layer in ("", layer.name)
            else:
                hit = (o.layer or self.layers[0].name) == layer.name
            if hit:
                who = o.who
        return who

    def on_call(self, at: datetime) -> list[str]:
        """Who is on call at ``at``, primary layer first, each person once."""
        out: list[str] = []
        for layer in self.layers:
            who = self.layer_on_call(layer, at)
            if who is not None and who not in out:
                out.append(who)
        return out

    def shifts(self, since: datetime, until: datetime) -> list[Shift]:
        """Every layer's shifts overlapping ``[since, until)``, overrides applied, in order."""
        out: list[Shift] = []
        edges = {o.start.astimezone(timezone.utc) for o in self.overrides}
        edges |= {o.end.astimezone(timezone.utc) for o in self.overrides}
        since, until = since.astimezone(timezone.utc), until.astimezone(timezone.utc)
        for layer in self.layers:
            cuts = sorted(
                {
                    since,
                    until,
                    *layer.handoffs(since, until),
                    *(e for e in edges if since < e < until),
                }
            )
            for a, b in itertools.pairwise(cuts):
                who = self.layer_on_call(layer, a)
                if who is None:
                    continue
                covered = who != layer.on_call(a)
                last = out[-1] if out else None
                if (
                    last
                    and last.layer == layer.name
                    and last.who == who
                    and last.end == a
                    and (last.override == covered)
                ):
                    out[-1] = Shift(layer.name, who, last.start, b, covered)
                else:
                    out.append(Shift(layer.name, who, a, b, covered))
        return out


@dataclass(frozen=True, slots=True)
class Shift:
    layer: str
    who: str
    start: datetime
    end: datetime
    override: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "who": self.who,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "override": self.override,
        }


def order(
    schedules: Schedule | Iterable[Schedule], people_ids: Sequence[str], at: datetime
) -> list[str]:
    """The notification order at ``at``: who is on call now (each schedule's layers in order,
    schedules in order), then the rest of the escalation chain ``people_ids`` in its order.
    Each person once."""
    first: list[str] = []
    for s in [schedules] if isinstance(schedules, Schedule) else schedules:
        for who in s.on_call(at):
            if who not in first:
                first.append(who)
    return first + [p for p in people_ids if p not in first]


# --- plain data <-> schedules (config, store, API share one shape) --------------------------


def _datetime(value: Any, what: str) -> datetime:
    parsed: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
    if parsed is None:
        raise ScheduleError(f"{what}: expected an ISO 8601 date-time, got {value!r}")
    if not 1970 <= parsed.year <= 2200:  # far outside, zone arithmetic would overflow
        raise ScheduleError(f"{what}: a year between 1970 and 2200, got {parsed.year}")
    return parsed


def _field(data: Mapping[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = data.get(key, default)
    if value is None or not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ScheduleError(f"{key}: expected {kind.__name__}, got {value!r}")
    return value


_LAYER_KEYS = {"name", "people", "every", "start", "timezone", "interval"}
_OVERRIDE_KEYS = {"who", "covers", "start", "end", "layer"}
_SCHEDULE_KEYS = {"name", "timezone", "layers", "overrides"}


def _unknown(data: Mapping[str, Any], allowed: set[str], what: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ScheduleError(f"{what}: unknown field(s) {extra}")


def schedule_from_dict(data: Mapping[str, Any]) -> Schedule:
    """A schedule from plain data (TOML table, JSON body, stored document)::

        {"name": "primary", "timezone": "Europe/Berlin",
         "layers": [{"name": "week", "people": ["alice", "bob"], "every": "weekly",
                     "start": "2026-12-07T09:00"}],
         "overrides": [{"who": "bob", "covers": "alice",
                        "start": "2026-12-12T09:00", "end": "2026-12-12T21:00"}]}

    Layer ``timezone`` defaults to the schedule's; override times without an offset are wall
    times in the schedule's timezone.
    """
    if not isinstance(data, Mapping):
        raise ScheduleError("a schedule is an object")
    _unknown(data, _SCHEDULE_KEYS, "schedule")
    name = _field(data, "name", str)
    tz_name = _field(data, "timezone", str, "UTC")
    tz = zone(tz_name)
    raw_layers = _field(data, "layers", list)
    layers: list[Layer] = []
    for i, ld in enumerate(raw_layers):
        if not isinstance(ld, Mapping):
            raise ScheduleError(f"layers.{i}: a layer is an object")
        _unknown(ld, _LAYER_KEYS, f"layers.{i}")
        people = _field(ld, "people", list)
        if not all(isinstance(p, str) for p in people):
            raise ScheduleError(f"layers.{i}.people: a list of person ids")
        start = _datetime(ld.get("start"), f"layers.{i}.start")
        layer_tz = _field(ld, "timezone", str, tz_name)
        if start.tzinfo is not None:
            start = start.astimezone(zone(layer_tz)).replace(tzinfo=None)
        try:
            layers.append(
                Layer(
                    name=_field(ld, "name", str, f"layer-{i + 1}"),
                    people=tuple(people),
                    every=_field(ld, "every", str, "weekly"),
                    start=start,
                    timezone=layer_tz,
                    interval=_field(ld, "interval", int, 1),
                )
            )
        except ScheduleError as exc:
            raise ScheduleError(f"layers.{i}: {exc}") from None
    overrides: list[Override] = []
    for i, od in enumerate(_field(data, "overrides", list, [])):
        if not isinstance(od, Mapping):
            raise ScheduleError(f"overrides.{i}: an override is an object")
        _unknown(od, _OVERRIDE_KEYS, f"overrides.{i}")
        try:
            overrides.append(
                Override(
                    who=_field(od, "who", str),
                    covers=_field(od, "covers", str, ""),
                    layer=_field(od, "layer", str, ""),
                    start=aware(_datetime(od.get("start"), "start"), tz).astimezone(timezone.utc),
                    end=aware(_datetime(od.get("end"), "end"), tz).astimezone(timezone.utc),
                )
            )
        except ScheduleError as exc:
            raise ScheduleError(f"overrides.{i}: {exc}") from None
    return Schedule(name=name, layers=tuple(layers), overrides=tuple(overrides))


def schedule_to_dict(s: Schedule) -> dict[str, Any]:
    tz = s.layers[0].timezone
    return {
        "name": s.name,
        "timezone": tz,
        "layers": [
            {
                "name": layer.name,
                "people": list(layer.people),
                "every": layer.every,
                "start": layer.start.isoformat(),
                "timezone": layer.timezone,
                "interval": layer.interval,
            }
            for layer in s.layers
        ],
        "overrides": [
            {
                "who": o.who,
                "covers": o.covers,
                "layer": o.layer,
                "start": o.start.isoformat(),
                "end": o.end.isoformat(),
            }
            for o in s.overrides
        ],
    }


def utc_at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


__all__ = [
    "Layer",
    "Override",
    "Schedule",
    "ScheduleError",
    "Shift",
    "order",
    "schedule_from_dict",
    "schedule_to_dict",
]
