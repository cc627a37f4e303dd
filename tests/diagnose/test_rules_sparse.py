"""Issue 10: the rules diagnoser never raises, whatever the observation holds or lacks.

Observations during an outage are sparse (a blind target's report has no numbers at all),
and a poll answer is untrusted input: missing keys, nulls, wrong types, NaN, infinities,
integers too large for a float. ``explain`` — the pure rule table, not only its guarded
wrapper — must give a well-formed diagnosis for every one of them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertengine.diagnose.base import CATEGORIES, DiagnosisContext
from alertengine.diagnose.rules import RulesDiagnoser
from alertengine.orchestrator.poller import snapshot_from_health
from alertengine.sdk.health_alerts import unavailable_report

KEYS = [
    "p95_ms", "overall_p95_ms", "baseline_p95_ms", "error_rate", "client_error_rate",
    "error_rate_4xx", "sample_size", "count", "requests", "route", "path", "method", "name",
    "type", "reachable", "score", "status",
]  # fmt: skip

numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
)
leaf = st.one_of(numbers, st.text(max_size=8))
json_like = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=25,
)
snapshots = st.dictionaries(
    st.sampled_from([*KEYS, "metrics", "routes", "alerts", "baseline", "deviation"]),
    json_like,
    max_size=10,
)


def _well_formed(snapshot: dict[str, Any]) -> None:
    d = RulesDiagnoser().explain(DiagnosisContext("t", "svc", "inc-1", snapshot, opened_at=1.0))
    assert d.category in CATEGORIES and 0.0 <= d.confidence <= 1.0
    assert all(isinstance(e, str) for e in d.evidence)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots)
def test_explain_never_raises_on_any_observation(snapshot: dict[str, Any]) -> None:
    _well_formed(snapshot)


@given(st.sampled_from(["p95_ms", "sample_size", "error_rate"]), numbers)
def test_non_finite_and_huge_numbers_are_ignored_not_fatal(key: str, value: Any) -> None:
    _well_formed({key: value, "metrics": {key: value}, "routes": [{"count": value}]})


def test_a_blind_targets_report_is_diagnosed_as_unknown() -> None:
    body = unavailable_report(now=1.0, service="svc", window_s=60, reason="ConnectionError")
    snap = snapshot_from_health(body, observed_at=1.0)
    ctx = {**snap.summary(), **{k: body[k] for k in ("metrics", "routes", "alerts")}}
    d = RulesDiagnoser().explain(DiagnosisContext("t", "svc", "inc-1", ctx))
    assert d.category == "unknown"


def test_an_empty_observation_is_diagnosed_as_unknown() -> None:
    _well_formed({})
