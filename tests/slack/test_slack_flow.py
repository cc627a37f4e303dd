"""Slack buttons that act in Slack, end to end in one process: the alert is posted through the
incoming webhook with Approve / I'm on it buttons carrying the link's ref; a press comes back
as Slack's signed ``block_actions`` request and goes through the same path as a Telegram
button; the presser is told what happened through the press's ``response_url``. Each promise
attacked: forged signature, old and future timestamps, a replayed request, a stranger, a
stale button, another tenant's button, require_passkey, a failing response_url, EMERGENCY."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from alertengine.incidents import Stage
from alertengine.orchestrator.ack import link_ref
from alertengine.orchestrator.mode import Mode
from tests.slack.conftest import ALICE, BOB, CAROL, STRANGER
from tests.support.fakes.slack import slack_signature
from tests.support.wired import DEGRADED


def _ids(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["action_id"]: b for b in message["blocks"][-1]["elements"]}


async def test_the_alert_carries_buttons_that_act_and_ack_then_approve_work(make_slack):
    async with make_slack() as s:
        iid = await s.incident()
        (message,) = s.slack.posted
        buttons = _ids(message)
        assert set(buttons) == {"link-0", "ae_approve", "ae_ack"}
        ref = buttons["ae_approve"]["value"]
        assert buttons["ae_ack"]["value"] == ref and buttons["ae_approve"]["style"] == "primary"
        assert buttons["link-0"]["url"].startswith("http://localhost/action/recover?token=")
        link = await link_ref(s.rt.store, ref)
        assert link is not None and (link.tenant_id, link.incident_id) == ("acme", iid)
        assert link.recipient == "person:alice"

        # I'm on it: acknowledged via slack, nothing authorized, Alice told (ephemeral).
        r = await s.press("ae_ack", ALICE)
        assert r.status_code == 200, r.text
        state = await s.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.VALIDATED
        assert state.acked_by == "person:alice" and state.approvals == ()
        acks = await s.entries("acme", "ack")
        assert [(e.actor, e.decision, e.data["via"]) for e in acks] == [
            ("person:alice", "acknowledged", "slack")
        ]
        (reply,) = s.slack.replies
        assert reply["text"].startswith("Acknowledged")
        assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False

        # Approve: the Telegram path; the recovery runs once.
        r = await s.press("ae_approve", ALICE)
        assert r.status_code == 200
        assert s.last_reply().startswith("Approved."), s.slack.replies
        state = await s.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.EXECUTED
        approvals = await s.entries("acme", "approval")
        assert [(e.actor, e.data["via"]) for e in approvals] == [("person:alice", "slack")], [
            (e.kind, e.stage, e.actor, e.reason, dict(e.data)) for e in approvals
        ]
        authorized = next(e for e in await s.entries("acme") if e.stage == "AUTHORIZED")
        assert authorized.actor == "person:alice" and authorized.reason.endswith("via slack")
        assert len(s.receiver.received) == 1

        # The used button again (a new press, Bob's): stale, refused by the authorizer.
        r = await s.press("ae_approve", BOB)
        assert r.status_code == 200 and "already used" in s.last_reply()
        refused = await s.entries("acme", "refused")
        assert any(e.actor == "person:bob" and "used" in e.reason for e in refused)
        assert len(s.receiver.received) == 1


async def test_an_ack_in_slack_holds_escalation_until_ack_timeout(make_slack):
    policy = {"escalate_after_s": 60, "ack_timeout_s": 600}
    async with make_slack(policy=policy) as s:
        iid = await s.incident()
        assert len(s.slack.posted) == 1  # Alice only
        await s.press("ae_ack", ALICE)
        await s.clock.advance(300)
        await s.rt.notifier.escalate_due()
        assert len(s.slack.posted) == 1  # Bob is not woken while Alice is on it
        await s.clock.advance(400)
        await s.rt.notifier.escalate_due()
        assert len(s.slack.posted) == 2  # the acknowledgement expired: Bob is asked
        escalation = (await s.entries("acme", "escalation"))[-1]
        assert "acknowledgement expired" in escalation.reason and "person:bob" in escalation.reason
        # Bob's message has his own link; Bob acknowledges from #oncall by his member id.
        bob_ref = _ids(s.slack.posted[-1])["ae_ack"]["value"]
        assert bob_ref != _ids(s.slack.posted[0])["ae_ack"]["value"]
        r = await s.press("ae_ack", BOB)
        assert r.status_code == 200 and s.last_reply().startswith("Acknowledged")
        state = await s.rt.engine.get("acme", iid)
        assert state is not None and state.acked_by == "person:bob"


async def test_forged_old_future_and_unsigned_requests_are_refused_and_ledgered(make_slack):
    async with make_slack() as s:
        iid = await s.incident()
        good = s.signed("ae_approve", ALICE)
        now = int(s.clock.now())
        other = slack_signature("0" * 32, str(now), good.body)
        attempts = {
            "forged": await s.send(good, **{"X-Slack-Signature": other}),
            "tampered": await s.send(
                good, **{"X-Slack-Signature": slack_signature("x", str(now), good.body)}
            ),
            "unsigned": await s.client.post(
                "/slack/interactions",
                content=good.body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ),
            "old": await s.press("ae_approve", ALICE, timestamp=now - 301),
            "future": await s.press("ae_approve", ALICE, timestamp=now + 301),
            "not a time": await s.send(good, **{"X-Slack-Request-Timestamp": "soon"}),
        }
        assert {k: r.status_code for k, r in attempts.items()} == dict.fromkeys(attempts, 401)
        # Another body under a valid signature of the original: the signature covers it.
        swapped = s.signed("ae_approve", ALICE)
        r = await s.client.post("/slack/interactions", content=swapped.body, headers=good.headers)
        assert r.status_code == 401
        wrong_type = await s.client.post(
            "/slack/interactions",
            content=b'{"payload": {}}',
            headers={**good.headers, "Content-Type": "application/json"},
        )
        assert wrong_type.status_code == 415
        state = await s.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.VALIDATED and state.approvals == ()
        assert not s.slack.replies and not s.receiver.received
        refused = [e for e in await s.entries("_system", "refused") if e.data["via"] == "slack"]
        assert len(refused) == 8, [e.reason for e in refused]
        assert sum("invalid X-Slack-Signature" in e.reason for e in refused) == 3
        assert sum("300 s from now" in e.reason for e in refused) == 2
        assert all(e.actor == "anonymous" and e.incident_id is None for e in refused)
        # Within the window (a clock 4 minutes apart) is Slack's own tolerance: accepted.
        r = await s.press("ae_ack", ALICE, timestamp=now - 240)
        assert r.status_code == 200 and s.last_reply().startswith("Acknowledged")


async def test_a_replayed_press_is_refused_and_ledgered(make_slack):
    async with make_slack() as s:
        await s.incident()
        ack = s.signed("ae_ack", ALICE)
        first = await s.send(ack)
        again = await s.send(ack)  # the same signed request, within the five minutes
        assert (first.status_code, again.status_code) == (200, 409)
        assert len(s.slack.replies) == 1  # a replay gets no reply
        assert len(await s.entries("acme", "ack")) == 1
        approve = s.signed("ae_approve", ALICE)
        assert (await s.send(approve)).status_code == 200
        assert (await s.send(approve)).status_code == 409
        assert len(s.receiver.received) == 1
        replays = [e for e in await s.entries("_system", "refused") if "replayed" in e.reason]
        assert len(replays) == 2 and all(e.data["via"] == "slack" for e in replays)


async def test_a_stranger_is_refused_under_a_marker_never_the_member_id(make_slack):
    async with make_slack() as s:
        iid = await s.incident()
        for action in ("ae_approve", "ae_ack"):
            r = await s.press(action, STRANGER)
            assert r.status_code == 200 and "not an approver" in s.last_reply()
        state = await s.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.VALIDATED and state.acked_by == ""
        refused = [e for e in await s.entries("acme", "refused") if e.data.get("via") == "slack"]
        assert len(refused) == 2 and all("no person of this tenant" in e.reason for e in refused)
        markers = {e.data["sender_marker"] for e in refused}
        assert len(markers) == 1 and {e.actor for e in refused} == {f"slack:{markers.pop()}"}
        assert STRANGER not in await s.ledger_text()


async def test_stale_and_unknown_buttons_are_refused(make_slack):
    async with make_slack(policy={"token_ttl_s": 120}) as s:
        iid = await s.incident()
        r = await s.press("ae_approve", ALICE, value="never-issued")
        assert "no longer valid" in s.last_reply()
        system = await s.entries("_system", "refused")
        assert any("stale or unknown Slack approve button" in e.reason for e in system)
        # The link's time is up: the button is stale, refused by the authorizer.
        await s.clock.advance(121)
        r = await s.press("ae_approve", ALICE)
        assert r.status_code == 200 and "expired" in s.last_reply()
        refused = await s.entries("acme", "refused")
        assert any("expired" in e.reason and e.data["via"] == "slack" for e in refused)
        state = await s.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.VALIDATED


async def test_another_tenants_button_is_refused_for_this_tenants_user(make_slack):
    async with make_slack() as s:
        await s.incident()
        r = await s.client.post(
            "/intake/health?service=search",
            json=DEGRADED,
            headers={"Authorization": f"Bearer {s.rt.new_keys['beta']}"},
        )
        beta_iid = r.json()["incident"]["incident_id"]
        beta_msg = s.slack.posted[-1]
        beta_ref = _ids(beta_msg)["ae_approve"]["value"]
        assert (await link_ref(s.rt.store, beta_ref)).tenant_id == "beta"  # type: ignore[union-attr]
        # Alice (acme) presses Carol's (beta) buttons: she is no person of beta.
        for action in ("ae_approve", "ae_ack"):
            await s.press(action, ALICE, message=beta_msg)
            assert "not an approver" in s.last_reply()
        state = await s.rt.engine.get("beta", beta_iid)
        assert state is not None and state.stage is Stage.VALIDATED and state.acked_by == ""
        refused = [e for e in await s.entries("beta", "refused") if e.data.get("via") == "slack"]
        assert len(refused) == 2 and ALICE not in await s.ledger_text()
        # Carol herself can.
        await s.press("ae_ack", CAROL, message=beta_msg)
        assert s.last_reply().startswith("Acknowledged")


async def test_require_passkey_makes_approve_a_link_and_a_press_answers_the_page(make_slack):
    async with make_slack(policy={"require_passkey": True, "passkey_actions": ["restart"]}) as s:
        iid = await s.incident()
        buttons = _ids(s.slack.posted[-1])
        # No in-Slack Approve: the only approve button opens the page where the device signs.
        assert set(buttons) == {"link-0", "ae_ack"}
        assert "/action/recover?token=" in buttons["link-0"]["url"]
        # A press of an Approve button anyway (a message from before the policy changed).
        ref = buttons["ae_ack"]["value"]
        message = {**s.slack.posted[-1]}
        message["blocks"] = [
            *message["blocks"][:-1],
            {
                "type": "actions",
                "elements": [
                    *message["blocks"][-1]["elements"],
                    {
                        "type": "button",
                        "action_id": "ae_approve",
                        "value": ref,
                        "text": {"type": "plain_text", "text": "Approve"},
                    },
                ],
            },
        ]
        r = await s.press("ae_approve", ALICE, message=message)
        assert r.status_code == 200
        reply = s.last_reply()
        assert "needs your passkey" in reply and "http://localhost/action/recover?token=" in reply
        state = await s.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.VALIDATED and state.approvals == ()
        # Acknowledge needs no passkey.
        await s.press("ae_ack", ALICE)
        assert s.last_reply().startswith("Acknowledged")


async def test_a_failing_response_url_degrades_quietly(make_slack, caplog):
    caplog.set_level(logging.INFO)  # httpx logs every request URL at INFO
    async with make_slack() as s:
        iid = await s.incident()
        s.slack.reply_script.append((500, "rollup_error"))
        r = await s.press("ae_ack", ALICE)
        assert r.status_code == 200
        state = await s.rt.engine.get("acme", iid)
        assert state is not None and state.acked_by == "person:alice"  # done all the same
        assert not s.slack.replies
        assert "response_url answered 500" in caplog.text
        # The URL is a credential for 30 minutes: not in our warning, not in httpx's line.
        assert "HTTP Request: POST" in caplog.text and "/actions/" not in caplog.text


async def test_link_button_presses_are_answered_and_change_nothing(make_slack):
    async with make_slack() as s:
        await s.incident()
        before = len(await s.entries("acme")) + len(await s.entries("_system"))
        r = await s.press("link-0", ALICE)
        assert r.status_code == 200 and not s.slack.replies
        assert len(await s.entries("acme")) + len(await s.entries("_system")) == before


async def test_emergency_changes_nothing_and_says_so(make_slack):
    async with make_slack() as s:
        iid = await s.incident()
        # What the orchestrator's tick sets when the ledger or store is down.
        s.rt.orch.mode = Mode.EMERGENCY
        await s.press("ae_approve", ALICE)
        assert "cannot record decisions right now" in s.last_reply()
        s.rt.orch.mode = Mode.NORMAL
        state = await s.rt.engine.get("acme", iid)
        assert state is not None and state.stage is Stage.VALIDATED
        # The press was not spent: the same button works once the ledger is back.
        await s.press("ae_approve", ALICE)
        assert s.last_reply().startswith("Approved.")


async def test_a_signed_but_malformed_payload_is_400_and_ledgered(make_slack):
    async with make_slack() as s:
        for body in (b"payload=%7Bnot+json", b"nothing=here", b"payload=%5B%5D"):
            r = await s.client.post(
                "/slack/interactions", content=body, headers=s.slack.sign(body, int(s.clock.now()))
            )
            assert r.status_code == 400, r.text
        refused = [e for e in await s.entries("_system", "refused") if "malformed" in e.reason]
        assert len(refused) == 3
        # Another kind of interaction (a shortcut) is none of ours: 200, nothing ledgered.
        body = b"payload=%7B%22type%22%3A%22shortcut%22%7D"
        r = await s.client.post(
            "/slack/interactions", content=body, headers=s.slack.sign(body, int(s.clock.now()))
        )
        assert r.status_code == 200


@pytest.mark.parametrize("signing", [False])
async def test_without_a_signing_secret_slack_stays_link_only(make_slack, signing):
    async with make_slack(signing=signing) as s:
        await s.incident()
        buttons = _ids(s.slack.posted[-1])
        assert set(buttons) == {"link-0", "link-1"}
        assert "/action/ack?token=" in buttons["link-1"]["url"]
        r = await s.client.post("/slack/interactions", content=b"payload=%7B%7D")
        assert r.status_code in (404, 405)
