from __future__ import annotations

import json
import logging

import httpx
import pytest

from alertengine.commits import Commit, flag_risky
from alertengine.execute.signing import WeakKeyError
from alertengine.notify.render import render
from alertengine.notify.slack import SlackWebhookChannel
from alertengine.notify.telegram import TelegramChannel
from alertengine.notify.twilio import TwilioWhatsAppChannel
from alertengine.notify.webhook import SignedWebhookChannel, sign, verify
from tests.notify.messages import COMMIT, DISSENT, incident
from tests.support.fakes.slack import FakeSlack
from tests.support.fakes.telegram import FakeTelegram, too_many_requests
from tests.support.fakes.twilio import FakeTwilio, error
from tests.support.fakes.webhook_receiver import FakeWebhookReceiver

MSG = render(incident(approve_callback="approve:tok-123"))
DISSENT_MSG = render(incident(verdict=DISSENT))


# -- Telegram -----------------------------------------------------------------------------


async def test_telegram_sends_html_with_inline_keyboard_and_no_preview(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient
) -> None:
    fake, url = telegram
    result = await TelegramChannel(fake.token, http, base_url=url).send("42", MSG)
    assert result.ok and result.status == 200 and result.provider_message_id == "100"
    [sent] = fake.sent
    assert sent["chat_id"] == "42" and sent["parse_mode"] == "HTML"
    assert sent["text"].startswith("<b>🚨 Checkout API degraded</b>")
    assert sent["link_preview_options"] == {"is_disabled": True}
    assert sent["reply_markup"]["inline_keyboard"] == [
        [{"text": "✅ Approve fix", "url": MSG.approve_url}],
        [{"text": "✅ Approve here", "callback_data": "approve:tok-123"}],
    ]


async def test_telegram_dissent_has_trust_buttons(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient
) -> None:
    fake, url = telegram
    assert (await TelegramChannel(fake.token, http, base_url=url).send("42", DISSENT_MSG)).ok
    buttons = [row[0] for row in fake.sent[0]["reply_markup"]["inline_keyboard"]]
    assert buttons[0] == {"text": "👉 Trust Theory A", "callback_data": "trust:A:inc-7f3a"}
    assert buttons[1] == {"text": "👉 Trust Theory B", "callback_data": "trust:B:inc-7f3a"}


async def test_telegram_429_reports_retry_after(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient
) -> None:
    fake, url = telegram
    fake.script.append((429, too_many_requests(7)))
    result = await TelegramChannel(fake.token, http, base_url=url).send("42", MSG)
    assert not result.ok and result.status == 429
    assert result.retry_after_s == 7.0 and not result.permanent
    assert "Too Many Requests" in result.error and fake.sent == []


async def test_telegram_bad_token_is_permanent_and_never_leaks_the_token(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = telegram
    caplog.set_level(logging.DEBUG)
    secret = "999:SECRET-bot-token"
    result = await TelegramChannel(secret, http, base_url=url).send("42", MSG)
    assert not result.ok and result.status == 401 and result.permanent
    assert "SECRET" not in result.error
    assert "SECRET" not in caplog.text  # httpx's request log line is scrubbed
    # The request line was logged (scrubbed to /bot<redacted>/, or to the host alone once the
    # orchestrator's host-only filter is installed on httpx's logger), never with the token.
    assert "HTTP Request: POST" in caplog.text


async def test_telegram_unknown_chat_is_permanent(
    telegram: tuple[FakeTelegram, str], http: httpx.AsyncClient
) -> None:
    fake, url = telegram
    fake.chats = {"42"}
    result = await TelegramChannel(fake.token, http, base_url=url).send("7", MSG)
    assert not result.ok and result.permanent and "chat not found" in result.error


async def test_telegram_unreachable_is_transient_and_clean() -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        result = await TelegramChannel("1:TOKEN", client, "http://127.0.0.1:9").send("42", MSG)
    assert not result.ok and not result.permanent and result.status is None
    assert result.error.startswith("transport error") and "TOKEN" not in result.error


# -- Twilio WhatsApp ----------------------------------------------------------------------


async def test_twilio_sends_form_encoded_whatsapp_with_basic_auth(
    twilio: tuple[FakeTwilio, str], http: httpx.AsyncClient
) -> None:
    fake, url = twilio
    channel = TwilioWhatsAppChannel(fake.account_sid, fake.auth_token, "+14155238886", http, url)
    result = await channel.send("+263771234567", MSG)
    assert (
        result.ok and result.status == 201 and (result.provider_message_id or "").startswith("SM")
    )
    [form] = fake.sent
    assert form["To"] == "whatsapp:+263771234567" and form["From"] == "whatsapp:+14155238886"
    assert form["Body"] == MSG.text


async def test_twilio_401_is_permanent_and_never_leaks_the_auth_token(
    twilio: tuple[FakeTwilio, str], http: httpx.AsyncClient
) -> None:
    fake, url = twilio
    channel = TwilioWhatsAppChannel(fake.account_sid, "WRONG-token", "whatsapp:+1415", http, url)
    result = await channel.send("+263771234567", MSG)
    assert not result.ok and result.status == 401 and result.permanent
    assert result.error == "Twilio 401: 20003 Authenticate" and fake.sent == []


async def test_twilio_server_error_is_transient(
    twilio: tuple[FakeTwilio, str], http: httpx.AsyncClient
) -> None:
    fake, url = twilio
    fake.script.append(error(503, 20500, "Service Unavailable"))
    channel = TwilioWhatsAppChannel(fake.account_sid, fake.auth_token, "+14155238886", http, url)
    result = await channel.send("+263771234567", MSG)
    assert not result.ok and not result.permanent and result.status == 503


# -- Slack --------------------------------------------------------------------------------


async def test_slack_posts_blocks_with_a_link_button(
    slack: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    fake, url = slack
    result = await SlackWebhookChannel(url + fake.path, http).send("#oncall", DISSENT_MSG)
    assert result.ok and result.status == 200
    [body] = fake.posted
    assert body["text"] == DISSENT_MSG.text.replace("&", "&amp;")
    header, section, actions = body["blocks"]
    assert header["text"]["text"] == DISSENT_MSG.title
    assert "Theory A (Database)" in section["text"]["text"]
    # Callback buttons cannot work through an incoming webhook: only the link is offered.
    [button] = actions["elements"]
    assert button["url"] == DISSENT_MSG.approve_url and button["type"] == "button"


async def test_slack_never_turns_a_commit_message_into_a_link_or_a_ping(
    slack: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    """Slack parses the top-level ``text`` (the notification fallback) like mrkdwn: a commit
    message must arrive as text in it, exactly as in the blocks."""
    fake, url = slack
    evil = "<https://evil.example/approve|Approve fix> & <!channel>"
    commit = Commit(COMMIT.sha, evil, "mallory", COMMIT.timestamp, COMMIT.files)
    msg = render(incident(commits=tuple(flag_risky([commit]))))
    assert evil in msg.text  # the renderer keeps it; escaping is the channel's job
    result = await SlackWebhookChannel(url + fake.path, http).send("#oncall", msg)
    assert result.ok
    [body] = fake.posted
    sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    mrkdwn = [body["text"], *sections]
    assert len(mrkdwn) == 2
    for field in mrkdwn:
        assert "<https://evil" not in field and "<!channel>" not in field
        assert "&lt;https://evil.example/approve|Approve fix&gt; &amp; &lt;!channel&gt;" in field


async def test_slack_500_is_transient_and_hides_the_webhook_url(
    slack: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    fake, url = slack
    fake.script.append((500, "rollup_error"))
    result = await SlackWebhookChannel(url + fake.path, http).send("#oncall", MSG)
    assert not result.ok and result.status == 500 and not result.permanent
    assert result.error == "Slack 500: rollup_error" and "SECRET" not in result.error


async def test_slack_unknown_hook_is_permanent(
    slack: tuple[FakeSlack, str], http: httpx.AsyncClient
) -> None:
    fake, url = slack
    result = await SlackWebhookChannel(url + "/services/T0/B0/revoked", http).send("#x", MSG)
    assert not result.ok and result.permanent and result.error == "Slack 404: no_service"


# -- Signed webhook -----------------------------------------------------------------------


async def test_signed_webhook_is_verified_by_the_receiver(
    receiver: tuple[FakeWebhookReceiver, str], http: httpx.AsyncClient
) -> None:
    fake, url = receiver
    result = await SignedWebhookChannel(url + "/hook", fake.secret, http).send("pagerduty", MSG)
    assert result.ok
    [body] = fake.received
    assert body["incident_id"] == "inc-7f3a" and body["type"] == "alertengine.incident"
    assert body["approve_url"] == MSG.approve_url and body["recipient"] == "pagerduty"


async def test_signed_webhook_with_wrong_secret_is_refused(
    receiver: tuple[FakeWebhookReceiver, str], http: httpx.AsyncClient
) -> None:
    fake, url = receiver
    result = await SignedWebhookChannel(url + "/hook", b"wrong" * 8, http).send("x", MSG)
    assert not result.ok and result.status == 401 and result.permanent and fake.received == []


def test_webhook_signature_refuses_stale_and_tampered() -> None:
    body = json.dumps({"a": 1}).encode()
    k = b"k" * 32
    headers = sign(k, body, 1000)
    assert verify(k, headers, body, now=1100)
    assert not verify(k, headers, body, now=2000)  # replayed later
    assert not verify(k, headers, body + b" ", now=1100)
    assert not verify(k, {**headers, "X-AlertEngine-Timestamp": "1001"}, body, now=1100)
    assert not verify(
        k, {"X-AlertEngine-Signature": headers["X-AlertEngine-Signature"]}, body, now=1100
    )


@pytest.mark.parametrize("key", [b"", "", b"k", "x" * 31, b"\x00" * 31])
def test_nothing_is_signed_with_an_empty_or_short_key(key: str | bytes) -> None:
    with pytest.raises(WeakKeyError, match="at least 32 bytes"):
        sign(key, b"{}", 1000)
    with pytest.raises(WeakKeyError):
        SignedWebhookChannel("http://127.0.0.1:9/hook", _key(key), client=None)  # type: ignore[arg-type]
    assert sign("x" * 32, b"{}", 1000)["X-AlertEngine-Signature"].startswith("v1=")


def _key(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key
