"""Acknowledge ("I'm on it") from every channel: escalation to the next person waits for the
tenant's ``ack_timeout_s``, the others already told hear who took it, the ledger records it,
and it never authorizes anything."""

from __future__ import annotations

import json

from alertengine.incidents import Stage
from tests.phone.conftest import ALICE, BOB, STRANGER, people
from tests.support.fakes.telegram import callback_update, push_update

POLICY = {"escalate_after_s": 60, "ack_timeout_s": 300}


def _ref(sent: dict[str, str]) -> str:
    return str(json.loads(sent["ContentVariables"])["3"])


async def test_ack_holds_escalation_until_the_timeout_then_escalates(make_phone):
    async with make_phone(policy=POLICY) as p:
        iid = await p.incident()
        assert [s["To"] for s in p.twilio.sent] == [f"whatsapp:{ALICE}"]
        await p.press(ALICE, payload=f"ack:{_ref(p.twilio.sent[0])}")

        await p.clock.advance(200)  # past escalate_after_s: without the ack, bob would be paged
        await p.rt.notifier.escalate_due()
        assert [s["To"] for s in p.twilio.sent] == [f"whatsapp:{ALICE}"]

        await p.clock.advance(150)  # past ack_timeout_s with no decision: escalate again
        await p.rt.notifier.escalate_due()
        assert p.twilio.sent[-1]["To"] == f"whatsapp:{BOB}"
        expired = [e for e in await p.entries("acme", "ack") if e.decision == "expired"]
        assert len(expired) == 1 and expired[0].actor == "policy"
        # The escalation names the wait that ran out: the acknowledgement's, not the first ask's.
        (escalation,) = await p.entries("acme", "escalation")
        assert escalation.reason == (
            "person:alice's acknowledgement expired with no decision within 300 s "
            "(ack_timeout_s); asking the next person, person:bob"
        ), escalation.reason

        # Bob takes it: alice (already told) hears who, bob gets no echo of his own ack.
        before = len(p.twilio.sent)
        r = await p.press(BOB, payload=f"ack:{_ref(p.twilio.sent[-1])}")
        assert "Acknowledged" in r.text
        told = p.twilio.sent[before:]
        # Alice wrote to us (her ack) within 24 h, so the notice is free-form text.
        assert [t["To"] for t in told] == [f"whatsapp:{ALICE}"]
        assert "person:bob acknowledged" in told[0]["Body"]
        notices = [e for e in await p.entries("acme", "delivery") if "notice" in e.decision]
        assert [(e.decision, e.data["identity"]) for e in notices] == [
            ("notice_delivered", "person:alice")
        ]
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.VALIDATED and state.approvals == ()


async def test_ack_never_authorizes_even_with_everyone_acknowledging(make_phone):
    async with make_phone(policy=POLICY) as p:
        iid = await p.incident()
        ref = _ref(p.twilio.sent[0])
        # Bob has not been asked yet (alice is first): he cannot take it.
        early = await p.press(BOB, payload=f"ack:{ref}")
        assert "not been asked" in early.text
        for number in (ALICE, BOB):
            await p.press(number, payload=f"ack:{ref}")
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.VALIDATED
        assert state.approvals == () and p.receiver.received == []
        assert not [e for e in await p.entries("acme", "approval")]
        # A stranger cannot acknowledge either.
        r = await p.press(STRANGER, payload=f"ack:{ref}")
        assert "not an approver" in r.text
        assert [e.actor for e in await p.entries("acme", "ack")] == ["person:alice"]


async def test_telegram_ack_button_and_web_ack(make_phone):
    persons = [
        {"id": "tess", "channels": [{"channel": "telegram", "address": "4242"}]},
        *people(),
    ]
    async with make_phone(persons=persons, policy=POLICY) as p:
        iid = await p.incident()
        (sent,) = p.telegram.sent
        buttons = [b for row in sent["reply_markup"]["inline_keyboard"] for b in row]
        ack = next(
            b["callback_data"] for b in buttons if b.get("callback_data", "").startswith("ack:")
        )
        stranger = await push_update(
            p.client, "/telegram/webhook", callback_update(666, ack, 1), "tg-secret"
        )
        assert stranger.status_code == 200
        ok = await push_update(
            p.client, "/telegram/webhook", callback_update(4242, ack, 2), "tg-secret"
        )
        assert ok.status_code == 200
        answers = [a["text"] for a in p.telegram.answered]
        assert "not on call" in answers[0] and "Acknowledged" in answers[1]
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.acked_by == "person:tess"
        assert state.stage is Stage.VALIDATED
        # The dashboard says who is on it, and that it is not an approval.
        signed = await p.client.post("/dashboard/signin", data={"api_key": p.key})
        assert signed.status_code == 303
        page = await p.client.get(f"/dashboard/incidents/{iid}")
        assert page.status_code == 200 and "person:tess acknowledged" in page.text
        assert "not an approval" in page.text

        # The web page: GET changes nothing, POST with the link's token acknowledges.
        link = await p.rt.authorizer.issue("acme", iid, "person:alice", via="web")
        page = await p.client.get(f"/action/ack?token={link.token}")
        assert page.status_code == 200 and 'method="post"' in page.text
        assert len(await p.entries("acme", "ack")) == 1
        r = await p.client.post("/action/ack", json={"token": link.token})
        assert r.status_code == 200 and "already acknowledged" in r.json()["message"]
        bad = await p.client.post("/action/ack", json={"token": link.token[:-3] + "AAA"})
        assert bad.status_code in (400, 401, 403) and not bad.json()["ok"]
        # The link still approves: acknowledging did not redeem it.
        confirm = await p.client.post("/action/recover/confirm", json={"token": link.token})
        assert confirm.status_code == 200, confirm.text
