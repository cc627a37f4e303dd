"""WhatsApp end to end: the alert goes out as the tenant's Content API template with the link's
ref in its quick replies; a press comes back as a signed Twilio webhook and approves through
the same path as a Telegram button. Each promise attacked: forged signature, replayed
MessageSid, a stranger's number, a stale button, acknowledge never authorizing, no phone
number in the ledger."""

from __future__ import annotations

import json

from alertengine.incidents import Stage
from tests.phone.conftest import ALICE, BOB, CAROL, CONTENT_SID, STRANGER, WA_FROM


async def _ref(p) -> str:  # type: ignore[no-untyped-def]
    sent = p.twilio.sent[-1]
    return str(json.loads(sent["ContentVariables"])["3"])


async def test_template_press_approves_once_and_refuses_every_attack(make_phone):
    async with make_phone() as p:
        iid = await p.incident()
        (sent,) = p.twilio.sent  # alice first; bob only on escalation
        assert sent["To"] == f"whatsapp:{ALICE}" and sent["From"] == f"whatsapp:{WA_FROM}"
        assert sent["ContentSid"] == CONTENT_SID and "Body" not in sent  # outside the window
        variables = json.loads(sent["ContentVariables"])
        assert set(variables) == {"1", "2", "3"} and "checkout" in variables["1"]
        ref = variables["3"]

        # Forged: a signature computed with another token, and none at all.
        params = p.twilio.whatsapp_inbound(ALICE, WA_FROM, payload=f"approve:{ref}")
        forged = await p.post_signed("/twilio/whatsapp", params, signature="AAAA" + "=" * 24)
        assert forged.status_code == 403
        unsigned = await p.client.post(
            "/twilio/whatsapp",
            data=params,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert unsigned.status_code == 403
        # Signed for another URL (a relay to our host): refused too.
        moved = await p.post_signed(
            "/twilio/whatsapp", params, signature=p.twilio.sign("http://evil.test/x", params)
        )
        assert moved.status_code == 403
        assert (await p.rt.engine.get("acme", iid)).stage is Stage.VALIDATED  # type: ignore[union-attr]
        refused = [
            e for e in await p.entries("_system", "refused") if "signature" in e.reason.lower()
        ]
        assert len(refused) == 3

        # A stranger's number: told no, ledgered under a marker, never the number.
        r = await p.press(STRANGER, payload=f"approve:{ref}")
        assert r.status_code == 200 and "not an approver" in r.text
        assert r.headers["content-type"].startswith("application/xml")
        assert (await p.rt.engine.get("acme", iid)).stage is Stage.VALIDATED  # type: ignore[union-attr]

        # Alice acknowledges: the incident waits for her, nothing is authorized.
        ack = await p.press(ALICE, payload=f"ack:{ref}")
        assert "Acknowledged" in ack.text
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.VALIDATED
        assert state.acked_by == "person:alice" and state.approvals == ()
        assert [e.actor for e in await p.entries("acme", "ack")] == ["person:alice"]

        # Alice approves in chat: the Telegram path (Authorizer), once.
        params = p.twilio.whatsapp_inbound(ALICE, WA_FROM, payload=f"approve:{ref}")
        ok = await p.post_signed("/twilio/whatsapp", params)
        assert ok.status_code == 200 and "<Message>Approved." in ok.text, ok.text
        await p.rt.drain()
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.EXECUTED
        assert state.history[-2].actor == "person:alice"
        assert len(p.receiver.received) == 1

        # The same request again (same MessageSid, valid signature): a replay.
        replay = await p.post_signed("/twilio/whatsapp", params)
        assert replay.status_code == 409 and "<Message>" not in replay.text
        # A fresh press of the used button: stale, refused by the authorizer.
        stale = await p.press(BOB, payload=f"approve:{ref}")
        assert "already used" in stale.text
        # A button that never existed.
        unknown = await p.press(ALICE, payload="approve:not-a-ref")
        assert "no longer valid" in unknown.text
        assert len(p.receiver.received) == 1

        acme_refused = await p.entries("acme", "refused")
        assert any(
            e.actor.startswith("whatsapp:") and "no person" in e.reason for e in acme_refused
        )
        assert any(e.actor == "person:bob" and "used" in e.reason for e in acme_refused)
        system = await p.entries("_system", "refused")
        assert any("replayed" in e.reason for e in system)
        assert any("stale or unknown" in e.reason for e in system)
        text = await p.ledger_text()
        for number in (ALICE, BOB, STRANGER):
            assert number.lstrip("+") not in text


async def test_typed_reply_inside_the_window_and_free_form_text(make_phone):
    async with make_phone() as p:
        await p.incident()
        assert "ContentSid" in p.twilio.sent[-1]
        r = await p.press(ALICE, text="details")  # typed: the last alert sent to this number
        assert "checkout" in r.text and "VALIDATED" in r.text
        # Alice wrote within 24 h: the next alert to her may be free-form text.
        await p.rt.notifier.notify_level(
            (await p.rt.engine.incidents("acme", open_only=True))[0], 0
        )
        last = p.twilio.sent[-1]
        assert (
            "ContentSid" not in last and "Nothing will run without your approval." in last["Body"]
        )
        # 24 h later the window is closed: a template again.
        await p.clock.advance(24 * 3600 + 1)
        await p.rt.notifier.notify_level(
            (await p.rt.engine.incidents("acme", open_only=True))[0], 0
        )
        assert p.twilio.sent[-1].get("ContentSid") == CONTENT_SID


async def test_passkey_policy_answers_with_the_page_link(make_phone):
    async with make_phone(policy={"require_passkey": True}) as p:
        iid = await p.incident()
        ref = await _ref(p)
        r = await p.press(ALICE, payload=f"approve:{ref}")
        assert "passkey" in r.text and "/action/recover?token=" in r.text
        assert (await p.rt.engine.get("acme", iid)).stage is Stage.VALIDATED  # type: ignore[union-attr]


async def test_without_a_template_the_text_goes_as_body_with_the_ack_link(make_phone):
    async with make_phone(template=False) as p:
        iid = await p.incident()
        body = p.twilio.sent[-1]["Body"]
        assert "ContentSid" not in p.twilio.sent[-1]
        ack_url = next(w for w in body.split() if "/action/ack?token=" in w)
        token = ack_url.split("token=", 1)[1]
        r = await p.client.post("/action/ack", data={"token": token})
        assert r.status_code == 200 and "Acknowledged" in r.text
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.acked_by == "person:alice"
        assert state.stage is Stage.VALIDATED


async def test_a_person_of_another_tenant_cannot_approve_or_acknowledge(make_phone):
    async with make_phone() as p:
        iid = await p.incident()
        ref = await _ref(p)
        for verb in ("approve", "ack"):
            r = await p.press(CAROL, payload=f"{verb}:{ref}")
            assert "not an approver" in r.text
        state = await p.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.VALIDATED and not state.acked_by
        refused = [e for e in await p.entries("acme", "refused") if e.actor.startswith("whatsapp:")]
        assert len(refused) == 2
        assert CAROL.lstrip("+") not in await p.ledger_text()
        assert await p.entries("beta", "refused") == []
