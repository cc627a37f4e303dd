"""The Slack channel's buttons, and the route's promises that need no orchestrator: the answer
goes out within Slack's 3 seconds however slow the decision, and replies go only to Slack."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette

from alertengine.clock import SystemClock
from alertengine.notify.render import render
from alertengine.notify.slack import SlackWebhookChannel, blocks
from alertengine.notify.slack_webhook import Interaction, Reply, Responder, SlackInteractions
from tests.notify.messages import DISSENT, incident
from tests.support.fakes.slack import FakeSlack
from tests.support.redis_server import free_port
from tests.support.servers import serve

APPROVE = "https://ae.example.com/action/recover?token=t"
ACK = "https://ae.example.com/action/ack?token=t"


def _elements(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (actions,) = [b for b in out if b["type"] == "actions"]
    return list(actions["elements"])


def test_interactive_buttons_carry_the_ref_beside_the_links() -> None:
    msg = render(
        incident(
            approve_url=APPROVE, ack_url=ACK, approve_callback="ae:jti-1", ack_callback="ack:jti-1"
        )
    )
    els = _elements(blocks(msg, interactive=True))
    assert [(e["action_id"], e.get("value"), e.get("url")) for e in els] == [
        ("link-0", None, APPROVE),
        ("ae_approve", "jti-1", None),
        ("ae_ack", "jti-1", None),
    ]
    assert [e.get("style") for e in els] == [None, "primary", None]
    # Without interactivity the same message has its links only (an incoming webhook's
    # buttons cannot call back): today's message, unchanged.
    plain = _elements(blocks(msg))
    assert [(e["action_id"], e["url"], e["style"]) for e in plain] == [
        ("link-0", APPROVE, "primary")
    ]


def test_the_dissent_alerts_trust_buttons_stay_out_of_slack() -> None:
    msg = render(incident(verdict=DISSENT, approve_url=APPROVE, approve_callback="ae:jti-4"))
    assert any(b.callback_data.startswith("trust:") for b in msg.buttons)
    els = _elements(blocks(msg, interactive=True))
    assert [e["action_id"] for e in els] == ["link-0", "ae_approve"]


async def test_the_fake_slack_accepts_the_interactive_message() -> None:
    fake = FakeSlack()
    msg = render(
        incident(approve_url=APPROVE, approve_callback="ae:jti-2", ack_callback="ack:jti-2")
    )
    with serve(fake.app) as url:
        async with httpx.AsyncClient(timeout=5) as http:
            result = await SlackWebhookChannel(url + fake.path, http, interactive=True).send(
                "#oncall", msg
            )
    assert result.ok, result.error
    (posted,) = fake.posted
    assert {b["action_id"] for b in fake.buttons(posted)} == {"link-0", "ae_approve", "ae_ack"}


async def test_a_slow_decision_is_answered_at_once_and_replied_later() -> None:
    fake = FakeSlack()
    release = asyncio.Event()
    decided: list[Interaction] = []

    async def on_press(i: Interaction) -> Reply:
        await release.wait()  # the ledger is slow today
        decided.append(i)
        return Reply("Acknowledged: you are on it.")

    async def on_refused(_path: str, _why: str) -> None:
        raise AssertionError("a signed press is not refused")

    with serve(fake.app) as hooks:
        async with httpx.AsyncClient(timeout=5) as http:
            route = SlackInteractions(
                fake.signing_secret,
                SystemClock(),
                Responder(http, hooks),
                on_press=on_press,
                on_refused=on_refused,
                answer_budget_s=0.05,
            )
            app = Starlette(routes=route.routes())
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ae") as client:
                message = {"blocks": [{"type": "actions", "elements": [_ack_button()]}]}
                signed = fake.press(message, "ae_ack", "U0ALICE", hooks_base=hooks)
                r = await client.post(
                    "/slack/interactions", content=signed.body, headers=signed.headers
                )
                # Answered while the decision is still waiting: Slack shows no error.
                assert r.status_code == 200 and not decided and not fake.replies
                release.set()
                await asyncio.wait_for(route.drain(), 10)
    assert len(decided) == 1 and fake.replies[0]["text"] == "Acknowledged: you are on it."


def _ack_button() -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": "ae_ack",
        "value": "jti-3",
        "text": {"type": "plain_text", "text": "I'm on it"},
    }


async def test_replies_go_only_under_the_hooks_base() -> None:
    fake = FakeSlack()
    with serve(fake.app) as url:
        async with httpx.AsyncClient(timeout=5) as http:
            slack = Responder(http, "https://hooks.slack.com")
            for elsewhere in (
                f"{url}/actions/T0/1/x",  # a real server, but not Slack's
                "https://hooks.slack.com.evil.test/actions/T0/1/x",
                "http://hooks.slack.com/actions/T0/1/x",
            ):
                assert not await slack.reply(elsewhere, "hi")
            assert await Responder(http, url).reply(f"{url}/actions/T0/1/x", "hi")
            # Nobody listening there: False (logged), never an exception.
            closed = f"http://127.0.0.1:{free_port()}"
            assert not await Responder(http, closed).reply(f"{closed}/actions/T0/1/x", "hi")
    assert [r["text"] for r in fake.replies] == ["hi"]
