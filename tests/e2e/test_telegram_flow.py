"""The wired Telegram path: VALIDATED → sendMessage with an in-chat Approve button (fake Bot API
on loopback) → the engineer taps it → POST /telegram/webhook → the same authorization path as
the link → AUTHORIZED → the recovery webhook runs once. A second tap, or a stranger's, is refused
and ledgered."""

from __future__ import annotations

import asyncio

from alertengine.incidents import Stage
from alertengine.ledger import LedgerQuery
from tests.support.fakes.telegram import FakeTelegram, callback_update, push_update
from tests.support.fakes.webhook_receiver import FakeWebhookReceiver
from tests.support.servers import serve
from tests.support.wired import DEGRADED, telegram_env, wired_app


async def test_in_chat_approval_runs_the_same_path_once(monkeypatch):
    tg = FakeTelegram()
    receiver = FakeWebhookReceiver(secret=b"recovery-secret-for-tests-0123456789")
    monkeypatch.setenv("ACME_RECOVERY", "recovery-secret-for-tests-0123456789")
    with serve(tg.app) as tg_url, serve(receiver.app) as hook_url:
        config = {
            "tenants": [{"id": "acme", "approvers": [{"channel": "telegram", "address": "4242"}]}],
            "targets": [
                {
                    "tenant": "acme",
                    "service": "checkout",
                    "recovery_webhook": f"{hook_url}/hook",
                    "webhook_secret_env": "ACME_RECOVERY",
                }
            ],
        }
        env = telegram_env(tg, tg_url)
        async with wired_app(config, env, base_url="http://orch.test") as wired:
            rt, client = wired.rt, wired.client
            key = {"Authorization": f"Bearer {rt.new_keys['acme']}"}
            r = await client.post("/intake/health?service=checkout", json=DEGRADED, headers=key)
            iid = r.json()["incident"]["incident_id"]
            assert r.json()["incident"]["stage"] == "VALIDATED"

            (sent,) = tg.sent
            assert sent["chat_id"] in ("4242", 4242)
            assert "Nothing will run without your approval." in sent["text"]
            buttons = [b for row in sent["reply_markup"]["inline_keyboard"] for b in row]
            approve = next(b["callback_data"] for b in buttons if "callback_data" in b)
            assert any(b.get("url", "").startswith("http") for b in buttons)  # the link too

            stranger = await push_update(
                client, "/telegram/webhook", callback_update(666, approve, 1), "tg-secret"
            )
            assert stranger.status_code == 200
            assert (await rt.engine.get("acme", iid)).stage is Stage.VALIDATED  # type: ignore[union-attr]

            ok = await push_update(
                client, "/telegram/webhook", callback_update(4242, approve, 2), "tg-secret"
            )
            assert ok.status_code == 200
            await rt.drain()
            state = await rt.engine.get("acme", iid)
            assert state is not None and state.stage is Stage.EXECUTED
            assert state.history[-2].actor == "person:telegram-4242"  # the person, not the channel
            assert len(receiver.received) == 1

            again = await push_update(
                client, "/telegram/webhook", callback_update(4242, approve, 3), "tg-secret"
            )
            assert again.status_code == 200
            forged = await push_update(
                client, "/telegram/webhook", callback_update(4242, approve, 4), "wrong"
            )
            assert forged.status_code == 401
            await asyncio.sleep(0)
            assert len(receiver.received) == 1
            answers = [a["text"] for a in tg.answered]
            assert len(answers) == 3  # stranger, approval, repeat: each answered in the chat
            refused = await rt.ledger.read(
                LedgerQuery(tenant_id="acme", incident_id=iid, kinds=frozenset({"refused"}))
            )
            assert {e.actor for e in refused} >= {"engineer:telegram:666", "person:telegram-4242"}
        await rt.http.aclose()
