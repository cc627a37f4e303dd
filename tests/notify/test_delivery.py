from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from alertengine.clock import VirtualClock
from alertengine.notify.delivery import DeliveryEvent, Dispatcher, Recipient
from alertengine.notify.escalation import escalation_levels, escalations_due, next_route
from alertengine.notify.render import render
from alertengine.notify.slack import SlackWebhookChannel
from alertengine.notify.telegram import TelegramChannel
from alertengine.notify.twilio import TwilioWhatsAppChannel
from tests.notify.messages import incident
from tests.support.fakes.slack import FakeSlack
from tests.support.fakes.telegram import FakeTelegram, fail, too_many_requests
from tests.support.fakes.twilio import FakeTwilio, error

T = TypeVar("T")
MSG = render(incident())
ANA_TG = Recipient("telegram", "42", "engineer:telegram:42")
ANA_WA = Recipient("whatsapp", "+263771234567", "engineer:whatsapp:+263771234567")
BOB_SLACK = Recipient("slack", "#oncall", "engineer:slack:bob")


async def drive(clock: VirtualClock, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` while moving virtual time to each sleeper's deadline."""
    task = asyncio.ensure_future(coro)
    while not task.done():
        await asyncio.sleep(0.005)
        if clock.next_deadline is not None:
            await clock.advance(clock.next_deadline - clock.now())
    return task.result()


class Setup:
    def __init__(
        self,
        http: httpx.AsyncClient,
        telegram: tuple[FakeTelegram, str],
        twilio: tuple[FakeTwilio, str],
        slack: tuple[FakeSlack, str],
        **kw: Any,
    ) -> None:
        self.tg, tg_url = telegram
        self.wa, wa_url = twilio
        self.slack, slack_url = slack
        self.clock = VirtualClock()
        self.events: list[DeliveryEvent] = []
        channels = {
            "telegram": TelegramChannel(self.tg.token, http, base_url=tg_url),
            "whatsapp": TwilioWhatsAppChannel(
                self.wa.account_sid, self.wa.auth_token, "+14155238886", http, wa_url
            ),
            "slack": SlackWebhookChannel(slack_url + self.slack.path, http),
        }

        async def record(e: DeliveryEvent) -> None:
            self.events.append(e)

        self.dispatcher = Dispatcher(channels, record, self.clock, **kw)


@pytest.fixture
def env(
    http: httpx.AsyncClient,
    telegram: tuple[FakeTelegram, str],
    twilio: tuple[FakeTwilio, str],
    slack: tuple[FakeSlack, str],
) -> Setup:
    return Setup(http, telegram, twilio, slack, retries=2, backoff_s=1.0, breaker_threshold=3)


async def test_first_channel_delivers(env: Setup) -> None:
    out = await env.dispatcher.deliver("t1", "inc-1", [ANA_TG, ANA_WA], MSG)
    assert out.delivered and out.recipient == ANA_TG and out.attempts == 1
    assert len(env.tg.sent) == 1 and env.wa.sent == []
    [e] = env.events
    assert (e.tenant_id, e.incident_id, e.channel, e.ok, e.attempt) == (
        "t1",
        "inc-1",
        "telegram",
        True,
        1,
    )
    assert e.provider_message_id == "100" and e.identity == "engineer:telegram:42"
    assert "address" not in e.to_dict()  # phone numbers / chat ids stay out of the ledger


async def test_retry_honours_retry_after_on_the_clock(env: Setup) -> None:
    env.tg.script.append((429, too_many_requests(7)))
    start = env.clock.now()
    out = await drive(env.clock, env.dispatcher.deliver("t1", "inc-1", [ANA_TG], MSG))
    assert out.delivered and out.attempts == 2
    assert env.clock.now() - start == 7.0  # waited exactly what Telegram asked
    assert [(e.ok, e.status, e.retry_after_s) for e in env.events] == [
        (False, 429, 7.0),
        (True, 200, None),
    ]
    assert env.events[1].at - env.events[0].at == 7.0


async def test_falls_over_to_the_next_channel_when_a_provider_fails(env: Setup) -> None:
    env.tg.script.extend([(500, fail(500, "Internal Server Error"))] * 3)
    out = await drive(env.clock, env.dispatcher.deliver("t1", "inc-1", [ANA_TG, ANA_WA], MSG))
    assert out.delivered and out.recipient == ANA_WA
    assert [(e.channel, e.attempt, e.ok) for e in env.events] == [
        ("telegram", 1, False),
        ("telegram", 2, False),
        ("telegram", 3, False),
        ("whatsapp", 1, True),
    ]
    assert env.wa.sent[0]["To"] == "whatsapp:+263771234567"


async def test_permanent_failure_falls_over_without_retrying(env: Setup) -> None:
    env.wa.script.append(error(401, 20003, "Authenticate"))
    out = await drive(env.clock, env.dispatcher.deliver("t1", "inc-1", [ANA_WA, BOB_SLACK], MSG))
    assert out.delivered and out.recipient == BOB_SLACK
    assert [(e.channel, e.status, e.permanent) for e in env.events] == [
        ("whatsapp", 401, True),
        ("slack", 200, False),
    ]


async def test_breaker_opens_after_repeated_failures_and_skips_the_provider(
    env: Setup,
) -> None:
    env.slack.script.extend([(500, "rollup_error")] * 3)
    out = await drive(env.clock, env.dispatcher.deliver("t1", "inc-1", [BOB_SLACK, ANA_TG], MSG))
    assert out.delivered and out.recipient == ANA_TG
    assert env.dispatcher.breaker("t1", "slack").state(env.clock.now()) == "open"

    env.events.clear()
    out = await env.dispatcher.deliver("t1", "inc-2", [BOB_SLACK, ANA_TG], MSG)
    assert out.delivered and out.recipient == ANA_TG
    skipped = env.events[0]
    assert (skipped.channel, skipped.skipped, skipped.ok) == ("slack", "breaker_open", False)
    assert env.slack.posted == []  # no request was made while open

    # Per tenant: another tenant's Slack is not affected.
    out = await env.dispatcher.deliver("t2", "inc-3", [BOB_SLACK], MSG)
    assert out.delivered and len(env.slack.posted) == 1

    # After the reset period one probe goes through and closes the breaker.
    await env.clock.advance(61)
    out = await env.dispatcher.deliver("t1", "inc-4", [BOB_SLACK], MSG)
    assert out.delivered
    assert env.dispatcher.breaker("t1", "slack").state(env.clock.now()) == "closed"


async def test_nobody_reachable_is_reported_with_every_attempt(env: Setup) -> None:
    env.tg.chats = {"nobody"}
    route = [ANA_TG, Recipient("pager", "x", "engineer:pager:x")]
    out = await drive(env.clock, env.dispatcher.deliver("t1", "inc-1", route, MSG))
    assert not out.delivered and out.recipient is None
    assert [(e.channel, e.skipped or e.error) for e in out.events] == [
        ("telegram", "Telegram 400: Bad Request: chat not found"),
        ("pager", "unknown_channel"),
    ]
    assert list(out.events) == env.events


async def test_long_retry_after_falls_over_instead_of_waiting(
    http: httpx.AsyncClient,
    telegram: tuple[FakeTelegram, str],
    twilio: tuple[FakeTwilio, str],
    slack: tuple[FakeSlack, str],
) -> None:
    s = Setup(http, telegram, twilio, slack, max_wait_s=10)
    s.tg.script.append((429, too_many_requests(600)))
    out = await s.dispatcher.deliver("t1", "inc-1", [ANA_TG, ANA_WA], MSG)
    assert out.recipient == ANA_WA and s.clock.now() == VirtualClock().now()


def test_escalation_goes_person_by_person() -> None:
    route = [ANA_TG, Recipient("whatsapp", "+1", "engineer:telegram:42"), BOB_SLACK]
    assert [len(level) for level in escalation_levels(route)] == [2, 1]
    assert next_route(route, 0) == route[:2]
    assert next_route(route, 1) == [BOB_SLACK]
    assert next_route(route, 2) == []
    with pytest.raises(ValueError):
        next_route(route, -1)


def test_escalations_due() -> None:
    assert escalations_due(1000, 1179, 180) == 0
    assert escalations_due(1000, 1180, 180) == 1
    assert escalations_due(1000, 1000 + 3 * 180, 180) == 3
    assert escalations_due(1000, 900, 180) == 0
