"""Silences: Alertmanager's matcher semantics, activity window, validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertengine.oncall.silences import (
    Matcher,
    Silence,
    SilenceError,
    incident_labels,
    matcher_from_dict,
    parse_matcher,
    silencing,
)


def sil(*matchers: str, start: float = 100.0, end: float = 200.0) -> Silence:
    return Silence(
        "sil-1",
        "acme",
        tuple(parse_matcher(m) for m in matchers),
        start,
        end,
        "alice",
        "deploy window",
        50.0,
    )


LABELS = {"tenant": "acme", "service": "checkout", "env": "prod", "severity": "critical"}


@pytest.mark.parametrize(
    ("matcher", "hit"),
    [
        ("service=checkout", True),
        ("service=check", False),
        ("service!=checkout", False),
        ("env!=staging", True),
        ("service=~check.*", True),
        ("service=~check", False),  # anchored, as Alertmanager
        ('env!~"stag.*"', True),
        ("missing=", True),  # an absent label is ""
        ("missing!=", False),
        ("tenant=acme", True),
    ],
)
def test_matcher_semantics(matcher: str, hit: bool) -> None:
    assert parse_matcher(matcher).matches(LABELS) is hit


@given(st.text(max_size=20), st.text(alphabet="abc.*", max_size=6))
def test_regex_is_the_negation_of_not_regex(value: str, pattern: str) -> None:
    try:
        pos, neg = Matcher("x", "=~", pattern), Matcher("x", "!~", pattern)
    except SilenceError:
        return  # not an RE2 expression (e.g. "a**"): refused, never matched
    labels = {"x": value}
    assert pos.matches(labels) != neg.matches(labels)
    assert Matcher("x", "=", value).matches(labels)
    assert not Matcher("x", "!=", value).matches(labels)


@pytest.mark.timeout(20)
def test_a_catastrophic_pattern_matches_in_linear_time() -> None:
    # Python's backtracking re needs ~2^n steps here; RE2 (Alertmanager's dialect) is linear.
    m = Matcher("x", "=~", "(a+)+$")
    assert not m.matches({"x": "a" * 40 + "b"})
    assert m.matches({"x": "a" * 100_000})


def test_re2_refuses_what_alertmanager_refuses() -> None:
    with pytest.raises(SilenceError, match="bad regular expression"):
        parse_matcher(r"x=~(a)\1")  # backreferences: not RE2


def test_active_only_inside_its_window_and_all_matchers_must_match() -> None:
    s = sil("service=checkout", "env=prod")
    assert not s.silences(LABELS, 99.9)
    assert s.silences(LABELS, 100.0) and s.silences(LABELS, 199.9)
    assert not s.silences(LABELS, 200.0)
    assert not s.silences({**LABELS, "env": "dev"}, 150.0)
    assert silencing([sil("service=payments"), s], LABELS, 150.0) is s


def test_expiring_ends_it_now_even_in_the_instant_it_started() -> None:
    s = sil("service=checkout").expired_at(150.0)
    assert s.state(150.0) == "expired" and s.state(149.0) == "active"
    assert sil("service=checkout").expired_at(100.0).state(100.0) == "expired"
    pending = sil("service=checkout").expired_at(50.0)
    assert pending.state(50.0) == "expired" and not pending.active(120.0)


def test_labels_of_an_incident_cannot_override_tenant_and_service() -> None:
    labels = incident_labels("acme", "checkout", [{"labels": {"tenant": "evil", "env": "prod"}}])
    assert labels == {"tenant": "acme", "service": "checkout", "env": "prod"}


def test_alertmanager_api_matcher_shape() -> None:
    m = matcher_from_dict({"name": "env", "value": "prod.*", "isRegex": True, "isEqual": False})
    assert (m.op, m.value) == ("!~", "prod.*")


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: parse_matcher("service"), "cannot read matcher"),
        (lambda: parse_matcher("service=~("), "bad regular expression"),
        (lambda: parse_matcher("1abc=x"), "cannot read matcher"),
        (lambda: sil(), "at least one matcher"),
        (lambda: sil("a=b", start=200, end=100), "after starts_at"),
        (lambda: sil("a=b", start=0, end=400 * 86400), "366 days"),
        (lambda: matcher_from_dict({"name": "a", "value": "b", "op": "~"}), "invalid operator"),
    ],
)
def test_bad_silences_say_why(make: object, words: str) -> None:
    with pytest.raises(SilenceError, match=words):
        make()  # type: ignore[operator]
