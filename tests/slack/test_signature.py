"""Slack's request signature: Slack's own documented example, the five-minute window, and
for any body, timestamp and secret: accepted exactly when it is Slack's signature, in time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alertengine.notify.slack_webhook import MAX_SKEW_S, signature, signature_problem
from tests.support.fakes.slack import slack_signature

# "Verifying requests from Slack" (api.slack.com/authentication/verifying-requests-from-slack):
# the worked example, a slash command's body, byte for byte.
DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TIMESTAMP = "1531420618"
DOC_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
    b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
    b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015."
    b"47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_slacks_documented_example() -> None:
    assert signature(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) == DOC_SIGNATURE
    now = float(DOC_TIMESTAMP) + 30
    assert signature_problem(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY, DOC_SIGNATURE, now) is None
    # The fake's signer (the tests' Slack) agrees with the documentation too.
    assert slack_signature(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) == DOC_SIGNATURE


def test_one_changed_byte_or_a_stale_or_early_timestamp_is_refused() -> None:
    ts = int(DOC_TIMESTAMP)

    def problem(body: bytes = DOC_BODY, given: str = DOC_SIGNATURE, now: float = ts) -> str:
        return signature_problem(DOC_SECRET, DOC_TIMESTAMP, body, given, now) or ""

    assert "invalid" in problem(body=DOC_BODY.replace(b"roadrunner", b"roadrunnes"))
    assert "invalid" in problem(given=DOC_SIGNATURE[:-1] + "4")
    assert "invalid" in problem(given=DOC_SIGNATURE.upper())
    assert "invalid" in problem(given="v1=" + DOC_SIGNATURE[3:])
    assert "missing" in problem(given="")
    assert "300 s" in problem(now=ts + MAX_SKEW_S + 1)
    assert "300 s" in problem(now=ts - MAX_SKEW_S - 1)
    assert problem(now=ts + MAX_SKEW_S) == "" and problem(now=ts - MAX_SKEW_S) == ""
    for bad in ("", "-1531420618", "1531420618.5", "１５３１４２０６１８", "9" * 40):
        assert signature_problem(DOC_SECRET, bad, DOC_BODY, DOC_SIGNATURE, ts)


@given(
    secret=st.text(min_size=1, max_size=64),
    body=st.binary(max_size=512),
    ts=st.integers(0, 10**12 - 1),  # 12 digits: Unix time until the year 33658
    skew=st.floats(-1000, 1000, allow_nan=False),
    given_sig=st.one_of(st.none(), st.text(max_size=80)),
)
def test_accepted_exactly_when_signed_by_the_secret_and_in_time(
    secret: str, body: bytes, ts: int, skew: float, given_sig: str | None
) -> None:
    right = slack_signature(secret, str(ts), body)
    sig = right if given_sig is None else given_sig
    ok = signature_problem(secret, str(ts), body, sig, ts + skew) is None
    assert ok == (sig == right and abs(skew) <= MAX_SKEW_S)
