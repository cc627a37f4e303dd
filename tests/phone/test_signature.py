"""The pure parts: Twilio's signature (checked against an independent computation, the one in
the fake, for any parameters) and what a press means."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alertengine.notify.twilio import signature, signature_ok
from alertengine.orchestrator.phone import parse_press
from tests.support.fakes.twilio import FakeTwilio

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
PARAMS = st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,12}", fullmatch=True), TEXT)


@given(PARAMS, TEXT)
def test_signature_is_twilios(params: dict[str, str], path: str) -> None:
    fake = FakeTwilio()
    url = "https://ae.example.com/twilio/whatsapp?x=" + path
    theirs = fake.sign(url, params)
    assert signature(fake.auth_token, url, params.items()) == theirs
    assert signature_ok(fake.auth_token, url, list(params.items()), theirs)
    # Any change to the URL, a value or the token breaks it.
    assert not signature_ok(fake.auth_token, url + "1", params.items(), theirs)
    assert not signature_ok("another-token", url, params.items(), theirs)
    assert not signature_ok(
        fake.auth_token, url, {**params, "Body": "Approve!"}.items(), theirs
    ) or (params.get("Body") == "Approve!")


def test_the_vectors_of_twilios_own_validator() -> None:
    # twilio-python's tests/unit/test_request_validator.py: this URL, these parameters and the
    # auth token 12345 give these signatures (a repeated name: values sorted).
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    assert signature("12345", url, params.items()) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_parse_press() -> None:
    assert parse_press({"ButtonPayload": "approve:abc", "Body": "Approve"}) == ("approve", "abc")
    assert parse_press({"ButtonPayload": "ACK:abc"}) == ("ack", "abc")
    assert parse_press({"ButtonPayload": "rm -rf:abc"}) == ("", "abc")
    assert parse_press({"Body": "  Approve  "}) == ("approve", "")
    assert parse_press({"Body": "on it"}) == ("ack", "")
    assert parse_press({"Body": "approve xyz"}) == ("approve", "xyz")
    assert parse_press({"Body": "hello there"}) == ("", "")
    assert parse_press({}) == ("", "")
