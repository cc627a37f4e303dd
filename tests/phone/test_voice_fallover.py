"""A call nobody answers falls over at once, and exactly once: the person's channels after the
call are tried (fresh links), then the next person is asked, without waiting for
``escalate_after_s``. The fake Twilio posts the signed status callback Twilio documents
(``CallbackSource=call-progress-events``, ``SequenceNumber``, ``Timestamp``…)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from alertengine.incidents import Stage
from tests.phone.conftest import ALICE, BOB, Phone

ALICE_CHAT, BOB_CHAT = "1001", "2002"
SLOW = {"escalate_after_s": 600}


def alice(*channels: dict[str, str]) -> dict[str, Any]:
    return {"id": "alice", "channels": list(channels)}


VOICE = {"channel": "voice", "address": ALICE}
TELEGRAM = {"channel": "telegram", "address": ALICE_CHAT}
BOB_TG = {"id": "bob", "channels": [{"channel": "telegram", "address": BOB_CHAT}]}


def chats(p: Phone) -> list[str]:
    return [str(m["chat_id"]) for m in p.telegram.sent]


async def fallovers(p: Phone) -> list[tuple[str, str, str]]:
    return [
        (e.kind, e.decision, e.reason)
        for e in await p.entries("acme")
        if (e.kind == "delivery" and e.decision == "fallover") or e.kind == "escalation"
    ]


@pytest.mark.parametrize("outcome", ["no-answer", "busy", "failed", "canceled"])
async def test_unanswered_call_tries_the_persons_next_channel_at_once(make_phone, outcome):
    async with make_phone(persons=[alice(VOICE, TELEGRAM), BOB_TG], policy=SLOW) as p:
        iid = await p.incident()
        (call,) = p.twilio.calls
        assert p.telegram.sent == []  # the call was accepted: nothing else yet
        r = await p.twilio.report_status(call, outcome, p.client)
        assert r.status_code == 200
        # At once (no clock advance): Alice's Telegram, with her own fresh link.
        assert chats(p) == [ALICE_CHAT]
        assert "/action/recover?" in p.telegram.sent[0]["text"]
        story = await fallovers(p)
        assert story == [
            (
                "delivery",
                "fallover",
                f"no answer from person:alice on voice ({outcome}); "
                "trying person:alice on telegram",
            )
        ]
        calls = [e.decision for e in await p.entries("acme", "call")]
        assert calls == [outcome]
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.escalations == 0  # still Alice's turn
        # Twilio retries the callback (same parameters): nothing more is sent.
        _, params, _ = p.twilio.callbacks[-1]
        again = await p.twilio.report_status(call, outcome, p.client, params=params)
        assert again.status_code == 200
        assert chats(p) == [ALICE_CHAT] and len(await fallovers(p)) == 1
        assert ALICE.lstrip("+") not in await p.ledger_text()


async def test_a_second_final_status_of_the_same_call_falls_over_no_more(make_phone):
    """The claim is per call: another final status for it (a different callback) is
    ledgered as a call outcome, but nobody is asked again."""
    async with make_phone(persons=[alice(VOICE, TELEGRAM), BOB_TG], policy=SLOW) as p:
        await p.incident()
        (call,) = p.twilio.calls
        await p.twilio.report_status(call, "no-answer", p.client)
        await p.twilio.report_status(call, "canceled", p.client)
        assert chats(p) == [ALICE_CHAT]
        assert [e.decision for e in await p.entries("acme", "call")] == ["no-answer", "canceled"]


async def test_concurrent_callbacks_fall_over_once(make_phone):
    """Several replicas (here: concurrent requests) receive the final status at once."""
    async with make_phone(persons=[alice(VOICE, TELEGRAM), BOB_TG], policy=SLOW) as p:
        await p.incident()
        (call,) = p.twilio.calls
        params = p.twilio.status_params(call, "no-answer")
        await asyncio.gather(
            *(p.twilio.report_status(call, "", p.client, params=params) for _ in range(5))
        )
        assert chats(p) == [ALICE_CHAT]
        assert len(await fallovers(p)) == 1


async def test_voice_only_person_unanswered_asks_the_next_person_at_once(make_phone):
    async with make_phone(persons=[alice(VOICE), BOB_TG], policy=SLOW) as p:
        iid = await p.incident()
        (call,) = p.twilio.calls
        await p.twilio.report_status(call, "no-answer", p.client)
        assert chats(p) == [BOB_CHAT]
        story = await fallovers(p)
        assert story == [
            (
                "escalation",
                "level 1",
                "person:alice did not answer the call (no-answer) and has no other channel; "
                "asking person:bob",
            )
        ]
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.escalations == 1  # as escalate_due counts
        # The regular escalation later has nobody left to ask (no third person).
        await p.clock.advance(601)
        await p.rt.notifier.escalate_due()
        assert chats(p) == [BOB_CHAT]


async def test_other_channels_failing_too_moves_on_and_says_so(make_phone):
    async with make_phone(persons=[alice(VOICE, TELEGRAM), BOB_TG], policy=SLOW) as p:
        await p.incident()
        (call,) = p.twilio.calls
        # Telegram refuses Alice's chat for good (400: permanent), then takes Bob's.
        p.telegram.script.append((400, {"ok": False, "description": "chat not found"}))
        await p.twilio.report_status(call, "busy", p.client)
        assert chats(p) == [BOB_CHAT]
        reasons = [r for _, _, r in await fallovers(p)]
        assert reasons[-1] == (
            "person:alice did not answer the call (busy) and could not be reached on "
            "telegram either; asking person:bob"
        )


async def test_answered_and_completed_sends_nothing_more(make_phone):
    async with make_phone(persons=[alice(VOICE, TELEGRAM), BOB_TG], policy=SLOW) as p:
        await p.incident()
        (call,) = p.twilio.calls
        await p.twilio.report_status(call, "in-progress", p.client)
        await p.twilio.report_status(call, "completed", p.client, duration=21)
        assert p.telegram.sent == [] and len(p.twilio.calls) == 1
        assert await fallovers(p) == []
        assert [e.decision for e in await p.entries("acme", "call")] == [
            "in-progress",
            "completed",
        ]


async def test_acknowledged_incident_is_not_fallen_over(make_phone):
    async with make_phone(persons=[alice(VOICE, TELEGRAM), BOB_TG], policy=SLOW) as p:
        iid = await p.incident()
        (call,) = p.twilio.calls
        await p.rt.acknowledger.acknowledge("acme", iid, "person:alice", "web")  # type: ignore[union-attr]
        await p.twilio.report_status(call, "no-answer", p.client)
        assert p.telegram.sent == [] and await fallovers(p) == []


async def test_approved_incident_is_not_fallen_over(make_phone):
    async with make_phone(persons=[alice(VOICE, TELEGRAM), BOB_TG], policy=SLOW) as p:
        iid = await p.incident()
        (call,) = p.twilio.calls
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.token is not None
        token = await p.rt.authorizer.issue("acme", iid, "person:alice", via="web")
        result = await p.rt.authorizer.confirm(token.token, via="web")
        assert result.ok, result.message
        assert (await p.rt.engine.get("acme", iid)).stage is not Stage.VALIDATED  # type: ignore[union-attr]
        await p.twilio.report_status(call, "no-answer", p.client)
        assert p.telegram.sent == [] and await fallovers(p) == []


async def test_a_call_of_an_earlier_round_is_not_fallen_over(make_phone):
    """Alice's call belongs to a link of a round that ended (the link expired and was
    reproposed): her unanswered callback no longer moves anyone."""
    policy = {"escalate_after_s": 600, "token_ttl_s": 60, "expiry_action": "repropose"}
    async with make_phone(persons=[alice(VOICE, TELEGRAM), BOB_TG], policy=policy) as p:
        iid = await p.incident()
        first = p.twilio.calls[0]
        await p.clock.advance(61)
        await p.rt.notifier.escalate_due()
        for outcome in await p.rt.authorizer.expire_due("acme"):
            if outcome.action == "reproposed":
                state = await p.rt.engine.get("acme", iid)
                assert state is not None
                await p.rt.notifier.notify_level(state, 0)
        assert len(p.twilio.calls) == 2  # a fresh round called her again
        await p.twilio.report_status(first, "no-answer", p.client)
        assert p.telegram.sent == [] and await fallovers(p) == []


async def test_a_forged_status_callback_moves_nobody(make_phone):
    async with make_phone(persons=[alice(VOICE, TELEGRAM), BOB_TG], policy=SLOW) as p:
        await p.incident()
        (call,) = p.twilio.calls
        params = p.twilio.status_params(call, "no-answer")
        status = call["StatusCallback"].removeprefix("http://localhost")
        forged = await p.post_signed(status, params, signature="bm90LWEtc2lnbmF0dXJl")
        assert forged.status_code == 403
        assert p.telegram.sent == [] and await fallovers(p) == []
        assert BOB.lstrip("+") not in await p.ledger_text()


CAROL_TG = {"id": "carol", "channels": [{"channel": "telegram", "address": "3003"}]}


async def test_a_call_escalation_already_moved_past_asks_nobody_new(make_phone):
    """Alice's call rang out only after the timer had asked Bob: Carol is not asked early."""
    persons = [alice(VOICE), BOB_TG, CAROL_TG]
    async with make_phone(persons=persons, policy={"escalate_after_s": 60}) as p:
        await p.incident()
        (call,) = p.twilio.calls
        await p.clock.advance(61)
        await p.rt.notifier.escalate_due()
        assert chats(p) == [BOB_CHAT]
        await p.twilio.report_status(call, "no-answer", p.client)
        assert chats(p) == [BOB_CHAT]
        (last,) = [r for k, d, r in await fallovers(p) if d == "fallover"]
        assert last.startswith("person:alice did not answer the call (no-answer) and has no ")
        assert "nobody after them to ask" in last


async def test_the_timer_escalating_meanwhile_wins_and_nobody_is_asked_twice(make_phone):
    """Another replica's timer escalates between our read and our append: the guarded
    escalation entry is refused, so Bob is not asked a second time by us."""
    async with make_phone(persons=[alice(VOICE), BOB_TG, CAROL_TG], policy=SLOW) as p:
        iid = await p.incident()
        (call,) = p.twilio.calls
        notifier = p.rt.notifier
        levels = notifier.levels

        async def racing(state: Any) -> Any:
            await p.rt.engine.record(
                "acme", iid, kind="escalation", actor="orchestrator", decision="level 1",
                reason="the other replica's timer", data={"level": 1, "person": "person:bob"},
            )  # fmt: skip
            return await levels(state)

        notifier.levels = racing  # type: ignore[method-assign]
        await p.twilio.report_status(call, "no-answer", p.client)
        notifier.levels = levels  # type: ignore[method-assign]
        steps = [r for k, _, r in await fallovers(p) if k == "escalation"]
        assert steps == ["the other replica's timer"]  # ours was refused by the guard
        assert p.telegram.sent == []  # (the other replica would send Bob's message)
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.escalations == 1
