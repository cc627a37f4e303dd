"""How long "who is on call" and the 14-day view take, by schedule age.

``.venv/bin/python bench/oncall.py``: a tenant schedule with two layers (daily and weekly
hand-offs in Europe/Berlin) and 10 overrides, started 30 days, 1 year or 3 years before the
instant asked about. Medians of 200 ``order()`` calls (what every notification does) and of
20 ``shifts()`` over 14 days (the dashboard view); then ``silencing()`` over 100 silences.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta, timezone

from alertengine.oncall.schedule import order, schedule_from_dict
from alertengine.oncall.silences import Silence, incident_labels, parse_matcher, silencing

AT = datetime(2029, 6, 15, 12, tzinfo=timezone.utc)


def schedule(age_days: int):  # type: ignore[no-untyped-def]
    start = (AT - timedelta(days=age_days)).strftime("%Y-%m-%dT09:00")
    overrides = [
        {"who": "erin", "covers": "alice", "start": (AT + timedelta(days=d)).isoformat(),
         "end": (AT + timedelta(days=d, hours=12)).isoformat()}
        for d in range(10)
    ]  # fmt: skip
    return schedule_from_dict({
        "name": "p", "timezone": "Europe/Berlin",
        "layers": [
            {"name": "a", "people": ["alice", "bob", "carol"], "every": "daily", "start": start},
            {"name": "b", "people": ["dave", "erin"], "every": "weekly", "start": start},
        ],
        "overrides": overrides,
    })  # fmt: skip


def median_ms(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    print("| schedule age | order() median | 14-day shifts() median |")
    print("|---|---|---|")
    for age in (30, 365, 3 * 365):
        s = schedule(age)
        o = median_ms(lambda s=s: order(s, ["alice", "bob", "carol"], AT), 200)
        v = median_ms(lambda s=s: s.shifts(AT, AT + timedelta(days=14)), 20)
        print(f"| {age} days | {o:.3f} ms | {v:.1f} ms |")
    now = AT.timestamp()
    silences = [
        Silence(f"s{i}", "acme", (parse_matcher(f"service=svc{i}"), parse_matcher("env=~prod.*")),
                now - 60, now + 3600, "ops", "bench", now - 60)
        for i in range(100)
    ]  # fmt: skip
    labels = incident_labels("acme", "checkout", [{"labels": {"env": "prod"}}])
    m = median_ms(lambda: silencing(silences, labels, now), 200)
    print(f"\nsilencing() over 100 active silences, none matching: median {m:.3f} ms")


if __name__ == "__main__":
    main()
