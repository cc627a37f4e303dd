from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertengine.policy import (
    HealthSnapshot,
    Policy,
    PolicyError,
    degradation,
    is_healthy,
    load_policy,
    should_expire,
    should_open,
    should_recover,
    should_validate,
    webhook_backoff,
)

P = Policy()


def snap(**kw) -> HealthSnapshot:
    base = dict(
        observed_at=0.0, score=95.0, status="ok", p95_ms=120.0, error_rate=0.0, sample_size=500
    )
    base.update(kw)
    return HealthSnapshot(**base)


def test_latency_only_outage_opens():
    # The original needed a low score AND >=10 % errors; a pure latency outage must open too.
    d = should_open(P, snap(score=45.0, status="critical", p95_ms=2800.0, error_rate=0.0))
    assert d.yes and "P95" in d.reason


def test_error_burst_with_normal_latency_opens():
    d = should_open(P, snap(score=80.0, status="warning", p95_ms=90.0, error_rate=0.2))
    assert d.yes and "error rate" in d.reason


def test_unreachable_target_opens_after_streak():
    s = snap(reachable=False, score=None, status="unknown", detail="connection refused")
    assert not should_open(P, s, unreachable_streak=P.unreachable_polls_to_open - 1).yes
    assert should_open(P, s, unreachable_streak=P.unreachable_polls_to_open).yes


def test_healthy_does_not_open_and_open_incident_blocks():
    assert not should_open(P, snap()).yes
    assert not should_open(P, snap(error_rate=0.5), has_open=True).yes


def test_small_sample_is_not_trusted():
    assert not should_open(P, snap(error_rate=1.0, sample_size=3)).yes


@given(
    score=st.floats(0, 100),
    err=st.floats(0, 1),
    p95=st.floats(1, 10_000),
)
def test_open_and_healthy_are_exclusive(score, err, p95):
    s = snap(score=score, error_rate=err, p95_ms=p95, status="ok")
    assert not (degradation(P, s).yes and is_healthy(P, s))


def test_recover_needs_streak():
    assert not should_recover(P, P.recover_polls - 1).yes
    assert should_recover(P, P.recover_polls).yes


def test_validate_on_severity_or_persistence():
    assert should_validate(P, snap(error_rate=0.3), 0).yes
    assert should_validate(P, snap(score=30.0, error_rate=0.0), 0).yes
    assert not should_validate(P, snap(score=65.0, error_rate=0.0), 1).yes
    assert should_validate(P, snap(score=65.0, error_rate=0.0), P.validate_after_polls).yes
    assert not should_validate(P, snap(error_rate=0.9), 5, quota_left=False).yes


def test_expiry():
    assert should_expire(P, token_issued_at=None, now=1e9, reproposals=0) == "wait"
    assert should_expire(P, token_issued_at=0.0, now=P.token_ttl_s - 1, reproposals=0) == "wait"
    assert should_expire(P, token_issued_at=0.0, now=P.token_ttl_s, reproposals=0) == "expire"
    rp = P.with_overrides({"expiry_action": "repropose", "max_reproposals": 1}, source="t")
    assert should_expire(rp, token_issued_at=0.0, now=1e6, reproposals=0) == "repropose"
    assert should_expire(rp, token_issued_at=0.0, now=1e6, reproposals=1) == "expire"


def test_backoff_is_exponential():
    assert [webhook_backoff(P, a) for a in (1, 2)] == [2.0, 4.0]


def test_env_override_changes_value_and_version():
    p = load_policy({"POLICY_MIN_SCORE_TO_ALERT": "60"})
    assert p.min_score_to_alert == 60
    assert p.version != P.version and p.version.startswith("1.0.0+")
    assert load_policy({}).version == P.version


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"POLICY_MIN_SCORE_TO_ALERT": "abc"}, "min_score_to_alert"),
        ({"POLICY_MIN_SCORE_TO_ALERTT": "60"}, "unknown policy field"),
        ({"POLICY_MIN_SCORE_TO_ALERT": "150"}, "min_score_to_alert"),
        ({"POLICY_RECOVER_SCORE": "50"}, "recover_score"),
    ],
)
def test_bad_override_fails_loudly(env, needle):
    with pytest.raises(PolicyError, match=needle):
        load_policy(env)


def test_tenant_override_applies_after_env():
    p = load_policy({"POLICY_MIN_SCORE_TO_ALERT": "60"}, {"min_score_to_alert": 50})
    assert p.min_score_to_alert == 50
