"""The acknowledge affordance per channel: a callback button in Telegram, a link button in
Slack without a signing secret (no Request URL to call back; with one, tests/slack covers the
buttons that act in Slack), a line with the link in plain text."""

from __future__ import annotations

from alertengine.notify.render import render
from alertengine.notify.slack import blocks
from tests.notify.messages import incident

ACK = "https://ae.example.com/action/ack?token=t"


def test_slack_gets_an_ack_link_button_and_the_text_the_link() -> None:
    msg = render(incident(approve_url="https://ae.example.com/action/recover?token=t", ack_url=ACK))
    (actions,) = [b for b in blocks(msg) if b["type"] == "actions"]
    assert {"I'm on it" in e["text"]["text"] and e["url"] == ACK for e in actions["elements"]} == {
        True,
        False,
    }
    assert f"I'm on it (acknowledge, approves nothing): {ACK}" in msg.text


def test_telegram_gets_a_callback_not_a_second_link() -> None:
    msg = render(incident(ack_url=ACK, ack_callback="ack:abc"))
    acks = [b for b in msg.buttons if "on it" in b.label]
    assert len(acks) == 1 and acks[0].callback_data == "ack:abc" and not acks[0].url


def test_no_ack_without_a_link() -> None:
    assert not [b for b in render(incident()).buttons if "on it" in b.label]
