"""The pure Alertmanager core: fingerprints, parsing, and which alerts still fire."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertengine.alertmanager import (
    Alert,
    PayloadError,
    alerts_ended,
    changes,
    firing,
    label_fingerprint,
    parse_notification,
)

# Known answers, read from Debian's prometheus-alertmanager 0.25 (POST /api/v2/alerts, then
# GET /api/v2/alerts): a sender that leaves out `fingerprint` gets Alertmanager's own.
KNOWN = [
    ({}, "cbf29ce484222325"),
    ({"alertname": "Watchdog"}, "003b0a0f7d3fa569"),
    ({"alertname": "HighErrorRate", "service": "shop", "severity": "page"}, "1419def6dba59057"),
    (
        {
            "alertname": "DiskFull",
            "instance": "10.0.0.7:9100",
            "mountpoint": "/",
            "job": "node",
            "note": "ünïcødé ✓",
        },
        "3b1a11474b3c086c",
    ),
]


def test_fingerprints_are_alertmanagers() -> None:
    for labels, fingerprint in KNOWN:
        assert label_fingerprint(labels) == fingerprint, labels


def test_parsing_keeps_what_alertmanager_said() -> None:
    (a,) = parse_notification(
        {
            "status": "firing",
            "alerts": [
                {
                    "labels": {"alertname": "X", "job": "api"},
                    "annotations": {"summary": "s"},
                    "startsAt": "2026-05-28T20:26:30.123456789+02:00",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prom/graph",
                }
            ],
        }
    )
    assert a.status == "firing"  # from the notification when the alert has none
    assert a.service == "api" and a.name == "X"  # `job` names the target without `service`
    assert a.fingerprint == label_fingerprint({"alertname": "X", "job": "api"})
    assert a.starts_at == pytest.approx(1_780_000_000 - 10 - 7200 + 0.123456)
    assert a.ends_at is None and a.generator_url == "http://prom/graph"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
alert_like = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved", "pending", 1]),
        "labels": st.dictionaries(st.text(), st.text() | st.integers(), max_size=3) | json_values,
        "annotations": json_values,
        "startsAt": st.sampled_from(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "x", 5]),
        "endsAt": json_values,
        "fingerprint": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"alerts": st.lists(alert_like, max_size=4)},
            optional={"status": json_values, "version": json_values},
        ),
    )
)
def test_anything_parses_or_is_refused_with_a_reason(body: Any) -> None:
    try:
        alerts = parse_notification(json.loads(json.dumps(body)))
    except PayloadError as exc:
        assert str(exc)
        return
    for a in alerts:
        assert a.status in ("firing", "resolved") and len(a.fingerprint) >= 1
        json.dumps(a.to_data())  # ledger data is JSON


notifications = st.lists(
    # One notification names each alert once, as Alertmanager's do.
    st.lists(
        st.tuples(st.sampled_from("ABCD"), st.booleans()),
        min_size=1,
        max_size=4,
        unique_by=lambda t: t[0],
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(notifications)
def test_an_incident_ends_only_when_every_alert_it_saw_firing_has_resolved(
    sequence: list[list[tuple[str, bool]]],
) -> None:
    """Fold any sequence of notifications the way the intake does; the incident's alerts fire
    exactly when their last word was "firing", and it ends only when none does."""
    tracked: dict[str, dict[str, Any]] = {}
    last: dict[str, bool] = {}
    for items in sequence:
        alerts = [
            Alert(
                fingerprint=label_fingerprint({"alertname": n}),
                status="firing" if on else "resolved",
                labels={"alertname": n},
            )
            for n, on in items
        ]
        for a in changes(tracked, alerts, now=0.0):
            tracked[a.fingerprint] = a.to_data()
        for n, on in items:
            if on or n in last:  # a resolved alert never seen firing is not the incident's
                last[n] = on
    assert {a["alertname"] for a in firing(tracked, 0.0)} == {n for n, on in last.items() if on}
    assert alerts_ended(tracked, 0.0).yes == (not any(last.values()))


def test_ends_at_is_a_lease() -> None:
    a = Alert("f", "firing", {"alertname": "A"}, ends_at=100.0).to_data()
    assert [x["alertname"] for x in firing({"f": a}, 99.0)] == ["A"]
    assert firing({"f": a}, 100.0) == []
    # A refreshed lease is news (else the old one would end the alert).
    renewed = Alert("f", "firing", {"alertname": "A"}, ends_at=200.0)
    assert changes({"f": a}, [renewed], 50.0) == [renewed]
    assert changes({"f": a}, [Alert("f", "firing", {"alertname": "A"}, ends_at=100.0)], 50.0) == []
