"""The voice channel: a call through Twilio's Calls API reads the incident and says to check the
phone; pressing 1 acknowledges (signed callback), nothing on a call approves; the call's
outcome is ledgered (``kind="call"``)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from alertengine.incidents import Stage
from tests.phone.conftest import ALICE, BASE

VOICE_FIRST = [
    {
        "id": "alice",
        "channels": [
            {"channel": "voice", "address": ALICE},
            {"channel": "whatsapp", "address": ALICE},
        ],
    }
]


async def test_call_reads_the_incident_and_1_acknowledges(make_phone):
    async with make_phone(persons=VOICE_FIRST) as p:
        iid = await p.incident()
        (call,) = p.twilio.calls
        assert call["To"] == ALICE and call["From"] == "+15550000001"
        assert "<Gather" in call["Twiml"] and 'numDigits="1"' in call["Twiml"]
        assert "checkout" in call["Twiml"] and "Check your phone" in call["Twiml"]
        assert p.twilio.sent == []  # the call got through: no fall-over to WhatsApp
        action = re.search(r'action="([^"]+)"', call["Twiml"]).group(1)  # type: ignore[union-attr]
        assert action.startswith(f"{BASE}/twilio/voice/gather?ref=")
        gather = action.removeprefix(BASE)
        status = call["StatusCallback"].removeprefix(BASE)

        answered = await p.post_signed(status, p.twilio.call_params(call, CallStatus="in-progress"))
        assert answered.status_code == 200
        wrong_key = await p.post_signed(gather, p.twilio.call_params(call, Digits="9"))
        assert "Nothing was recorded" in wrong_key.text
        assert (await p.rt.engine.get("acme", iid)).acked_by == ""  # type: ignore[union-attr]

        # Forged keypress: signed for another ref (the signature covers the query).
        params = p.twilio.call_params(call, Digits="1")
        other = f"{BASE}/twilio/voice/gather?ref=someone-else"
        forged = await p.post_signed(gather, params, signature=p.twilio.sign(other, params))
        assert forged.status_code == 403

        pressed = await p.post_signed(gather, params)
        assert pressed.status_code == 200 and "<Say>Acknowledged" in pressed.text
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.acked_by == "person:alice"
        assert state.stage is Stage.VALIDATED and state.approvals == ()  # a call never approves
        done = await p.post_signed(status, p.twilio.call_params(call, CallStatus="completed"))
        assert done.status_code == 200
        outcomes = [e.decision for e in await p.entries("acme", "call")]
        assert outcomes == ["in-progress", "acknowledged", "completed"]
        assert urlsplit(call["StatusCallback"]).path == "/twilio/voice/status"
        assert ALICE.lstrip("+") not in await p.ledger_text()


async def test_unanswered_call_is_ledgered_and_the_next_person_asked_at_once(make_phone):
    persons = [
        {"id": "alice", "channels": [{"channel": "voice", "address": ALICE}]},
        {"id": "bob", "channels": [{"channel": "whatsapp", "address": "+15550002222"}]},
    ]
    async with make_phone(persons=persons, policy={"escalate_after_s": 60}) as p:
        iid = await p.incident()
        (call,) = p.twilio.calls
        status = call["StatusCallback"].removeprefix(BASE)
        await p.post_signed(status, p.twilio.call_params(call, CallStatus="no-answer"))
        assert [e.decision for e in await p.entries("acme", "call")] == ["no-answer"]
        # Not escalate_after_s later: at once (tests/phone/test_voice_fallover.py has more).
        assert [m["To"] for m in p.twilio.sent] == ["whatsapp:+15550002222"]
        await p.clock.advance(61)
        await p.rt.notifier.escalate_due()
        assert len(p.twilio.sent) == 1  # nobody after Bob: the timer asks no one again
        assert (await p.rt.engine.get("acme", iid)).stage is Stage.VALIDATED  # type: ignore[union-attr]
