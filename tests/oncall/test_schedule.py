"""Schedules: rotations hand off at the local wall time across DST; overrides; order."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertengine.oncall.schedule import (
    Layer,
    Schedule,
    ScheduleError,
    order,
    schedule_from_dict,
    schedule_to_dict,
)

UTC = timezone.utc
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]


def sched(**layer: object) -> Schedule:
    base = {
        "name": "l1",
        "people": ["alice", "bob", "carol"],
        "every": "daily",
        "start": "2027-01-04T09:00",
    }
    return schedule_from_dict(
        {
            "name": "primary",
            "timezone": layer.pop("tz", "Europe/Berlin"),
            "layers": [{**base, **layer}],
        }
    )


def test_daily_handoff_at_the_wall_time_on_both_sides_of_spring_forward() -> None:
    s = sched()
    berlin = ZoneInfo("Europe/Berlin")
    # 2027-03-28 02:00 CET -> 03:00 CEST. Hand-off stays 09:00 local: 08:00 UTC, then 07:00.
    before = datetime(2027, 3, 27, 9, 0, tzinfo=berlin)
    after = datetime(2027, 3, 28, 9, 0, tzinfo=berlin)
    assert before.astimezone(UTC).hour == 8 and after.astimezone(UTC).hour == 7
    for h in (before, after):
        assert s.on_call(h - timedelta(seconds=1)) != s.on_call(h)
        assert s.on_call(h) == s.on_call(h + timedelta(hours=23, minutes=59))


@settings(max_examples=150, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    every=st.sampled_from(["daily", "weekly"]),
    n=st.integers(1, 5),
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 45]),
    offset_s=st.integers(0, 400 * 86400),
)
def test_exactly_one_person_per_layer_and_handoffs_at_local_wall_time(
    tz: str, every: str, n: int, hour: int, minute: int, offset_s: int
) -> None:
    people = [f"p{i}" for i in range(n)]
    layer = Layer("l", tuple(people), every, datetime(2027, 1, 4, hour, minute), tz)  # type: ignore[arg-type]
    s = Schedule("s", (layer,))
    at = layer.starts_at() + timedelta(seconds=offset_s)
    on = s.on_call(at)
    assert len(on) == 1 and on[0] in people
    # The hand-offs around ``at`` fall on the configured local wall time (or just past a gap).
    zone = ZoneInfo(tz)
    for h in layer.handoffs(at - timedelta(days=8), at + timedelta(days=8)):
        wall = h.astimezone(zone)
        if (wall.hour, wall.minute) != (hour, minute):
            # Only inside a spring-forward gap: the clocks jumped past the wall time.
            gap_start = (h - timedelta(hours=1)).astimezone(zone)
            assert wall.utcoffset() != gap_start.utcoffset()
        # the person changes exactly at each hand-off (when there are two or more people)
        if n > 1:
            assert s.on_call(h - timedelta(seconds=1)) != s.on_call(h)
    # never two hand-offs closer than a day minus the largest DST shift
    hs = layer.handoffs(at - timedelta(days=20), at + timedelta(days=20))
    assert all(b - a >= timedelta(hours=22) for a, b in itertools.pairwise(hs))


@settings(max_examples=60, deadline=None)
@given(offset_h=st.integers(0, 24 * 60))
def test_shifts_tile_the_window_one_person_at_a_time(offset_h: int) -> None:
    s = schedule_from_dict(
        {
            "name": "p",
            "timezone": "America/New_York",
            "layers": [
                {
                    "name": "a",
                    "people": ["alice", "bob"],
                    "every": "daily",
                    "start": "2027-03-01T09:00",
                },
                {
                    "name": "b",
                    "people": ["carol", "dave"],
                    "every": "weekly",
                    "start": "2027-03-01T00:00",
                },
            ],
            "overrides": [
                {
                    "who": "erin",
                    "covers": "alice",
                    "start": "2027-03-13T20:00",
                    "end": "2027-03-14T12:00",
                }
            ],
        }
    )
    since = datetime(2027, 3, 2, tzinfo=UTC) + timedelta(hours=offset_h)
    until = since + timedelta(days=14)
    for layer in ("a", "b"):
        shifts = [x for x in s.shifts(since, until) if x.layer == layer]
        assert shifts[0].start == since and shifts[-1].end == until
        for x, y in itertools.pairwise(shifts):
            assert x.end == y.start
        for x in shifts:
            mid = x.start + (x.end - x.start) / 2
            layer_obj = next(lv for lv in s.layers if lv.name == layer)
            assert s.layer_on_call(layer_obj, mid) == x.who


def test_override_bob_covers_alice_saturday_9_to_21() -> None:
    s = schedule_from_dict(
        {
            "name": "p",
            "timezone": "Europe/Berlin",
            "layers": [
                {
                    "name": "w",
                    "people": ["alice", "bob"],
                    "every": "weekly",
                    "start": "2027-06-07T09:00",
                }
            ],
            "overrides": [
                {
                    "who": "bob",
                    "covers": "alice",
                    "start": "2027-06-12T09:00",
                    "end": "2027-06-12T21:00",
                }
            ],
        }
    )
    berlin = ZoneInfo("Europe/Berlin")
    assert s.on_call(datetime(2027, 6, 12, 8, 59, tzinfo=berlin)) == ["alice"]
    assert s.on_call(datetime(2027, 6, 12, 9, 0, tzinfo=berlin)) == ["bob"]
    assert s.on_call(datetime(2027, 6, 12, 20, 59, tzinfo=berlin)) == ["bob"]
    assert s.on_call(datetime(2027, 6, 12, 21, 0, tzinfo=berlin)) == ["alice"]
    # the following week bob is on call anyway; the override covers only alice
    assert s.on_call(datetime(2027, 6, 19, 10, 0, tzinfo=berlin)) == ["bob"]


def test_order_is_on_call_first_then_the_rest_of_the_chain() -> None:
    s = sched()
    at = datetime(2027, 1, 5, 12, tzinfo=UTC)  # day 2: bob
    assert s.on_call(at) == ["bob"]
    assert order(s, ["alice", "bob", "carol"], at) == ["bob", "alice", "carol"]
    assert order([], ["alice", "bob"], at) == ["alice", "bob"]


def test_before_the_first_handoff_nobody_in_that_layer() -> None:
    assert sched().on_call(datetime(2027, 1, 1, tzinfo=UTC)) == []


def test_round_trip_through_plain_data() -> None:
    s = sched()
    assert schedule_from_dict(schedule_to_dict(s)) == s


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ({"tz": "Mars/Olympus"}, "unknown timezone"),
        ({"people": ["Alice Smith"]}, "invalid person id"),
        ({"people": []}, "at least one person"),
        ({"every": "monthly"}, "daily' or 'weekly"),
        ({"start": "tomorrow"}, "ISO 8601"),
        ({"interval": 0}, "interval"),
        ({"shift": 3}, "unknown field"),
    ],
)
def test_bad_schedules_say_why(patch: dict[str, object], words: str) -> None:
    with pytest.raises(ScheduleError, match=words):
        sched(**patch)


def _walked(layer: Layer, at: datetime) -> str | None:
    """The reference: walk every hand-off from the start with rrule (no skipping)."""
    from dateutil.rrule import DAILY, WEEKLY, rrule

    from alertengine.oncall.schedule import _instant

    if at < layer.starts_at():
        return None
    freq = DAILY if layer.every == "daily" else WEEKLY
    wall = at.astimezone(layer.tz).replace(tzinfo=None) + timedelta(days=1)
    rule = rrule(freq, dtstart=layer.start, interval=layer.interval)
    turns = [w for w in rule.between(layer.start, wall, inc=True) if _instant(w, layer.tz) <= at]
    return layer.people[(len(turns) - 1) % len(layer.people)]


@settings(max_examples=200, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    every=st.sampled_from(["daily", "weekly"]),
    interval=st.integers(1, 3),
    n=st.integers(1, 4),
    hour=st.integers(0, 23),
    offset_s=st.integers(-86400, 3 * 366 * 86400),
)
def test_skipping_ahead_gives_what_walking_every_handoff_gives(
    tz: str, every: str, interval: int, n: int, hour: int, offset_s: int
) -> None:
    layer = Layer("l", tuple(f"p{i}" for i in range(n)), every, datetime(2026, 1, 5, hour, 30),  # type: ignore[arg-type]
                  tz, interval)  # fmt: skip
    at = layer.starts_at() + timedelta(seconds=offset_s)
    assert layer.on_call(at) == _walked(layer, at)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["2027-01-01T09:00", "0001-01-01T00:00", "9999-12-31T23:59+14:00",
                       "Europe/Berlin", "daily", "weekly", "alice"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "timezone", "layers", "overrides", "people", "every", "start",
                         "end", "who", "covers", "layer", "interval"]), inner, max_size=6),
    max_leaves=25,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(JSONISH)
def test_any_json_is_a_schedule_or_a_schedule_error(data: object) -> None:
    try:
        s = schedule_from_dict(data)  # type: ignore[arg-type]
    except ScheduleError:
        return
    at = datetime(2027, 6, 1, tzinfo=UTC)
    s.on_call(at)
    s.shifts(at, at + timedelta(days=14))


@pytest.mark.parametrize("when", ["0001-01-01T00:00", "9999-12-31T23:59"])
def test_far_dates_are_refused_not_overflowed(when: str) -> None:
    with pytest.raises(ScheduleError, match="between 1970 and 2200"):
        sched(start=when)
