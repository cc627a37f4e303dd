"""The People page's pure helpers: masking that never shows a whole number or a webhook's
token, and the callback-reachability fact."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alertengine.people import Channel
from alertengine.people.dashboard import callback_problem, masked_address, phone_facts

e164 = st.builds(
    lambda first, rest: f"+{first}{rest}",
    st.integers(1, 9),
    st.text("0123456789", min_size=6, max_size=14),
)


@given(e164, st.sampled_from(["whatsapp", "voice"]))
def test_a_phone_number_is_never_shown_whole(number: str, kind: str) -> None:
    shown = masked_address(Channel(kind, number))
    head, _, tail = shown.partition("•••")
    assert number.startswith(head) and number.endswith(tail)
    assert len(number) - len(head) - len(tail) >= 3  # at least three digits hidden
    assert number not in shown and number[1:] not in shown


def test_the_example_number_keeps_prefix_and_last_four() -> None:
    assert masked_address(Channel("whatsapp", "+263 77 123 4567")) == "+26377•••4567"
    assert masked_address(Channel("voice", "+1234567")) == "+12•••67"


def test_a_webhook_shows_only_its_origin() -> None:
    hook = Channel("webhook", "https://hooks.example.com/T0/B0/s3cr3t?token=abc")
    assert masked_address(hook) == "https://hooks.example.com/…"
    assert masked_address(Channel("webhook", "https://h.example.com")) == "https://h.example.com"


def test_other_addresses_are_shown_whole() -> None:
    assert masked_address(Channel("telegram", "4242")) == "4242"
    assert masked_address(Channel("web", "bob@example.com")) == "bob@example.com"


def test_callbacks_need_an_address_twilio_can_reach() -> None:
    for url in ("http://127.0.0.1:8700", "http://localhost:8700", "http://10.0.0.5",
                "http://[::1]:8700", "http://192.168.1.2", "http://0.0.0.0:8700",
                "http://app.localhost", "http://100.64.1.1", "http://203.0.113.9"):  # fmt: skip
        assert "Twilio cannot call it back" in callback_problem(url), url
    for url in ("https://alerts.example.com", "http://93.184.216.34:8700"):
        assert callback_problem(url) == "", url


def test_facts_are_ok_only_when_everything_is_there() -> None:
    good = phone_facts(
        whatsapp_why="",
        voice_why="",
        content_sid="HX" + "a" * 32,
        webhooks_mounted=True,
        base_url="https://alerts.example.com",
    )
    assert all(f.ok for f in good) and "HX" + "a" * 32 not in str(good)
    bad = phone_facts(
        whatsapp_why="TWILIO_WHATSAPP_FROM not set",
        voice_why="",
        content_sid="",
        webhooks_mounted=True,
        base_url="https://alerts.example.com",
    )
    assert [f.id for f in bad if not f.ok] == ["wa-channel", "wa-template"]
    assert bad[0].text == "TWILIO_WHATSAPP_FROM not set"
