"""With ``require_passkey`` the wired Telegram message carries no in-chat Approve button: its
only approve button opens the approval page (where the person's device signs). A tap on an
in-chat button of an older message is refused and ledgered, and the served app has the
passkey routes."""

from __future__ import annotations

import pytest

from alertengine.incidents import Stage
from alertengine.ledger import LedgerQuery
from tests.support.fakes.telegram import FakeTelegram, callback_update, push_update
from tests.support.fakes.webhook_receiver import FakeWebhookReceiver
from tests.support.servers import serve
from tests.support.wired import DEGRADED, telegram_env, wired_app


@pytest.mark.parametrize("require", [True, False])
async def test_require_passkey_turns_the_chat_button_into_the_page(
    monkeypatch: pytest.MonkeyPatch, require: bool
) -> None:
    tg = FakeTelegram()
    receiver = FakeWebhookReceiver(secret=b"recovery-secret-for-tests-0123456789")
    monkeypatch.setenv("ACME_RECOVERY", "recovery-secret-for-tests-0123456789")
    with serve(tg.app) as tg_url, serve(receiver.app) as hook_url:
        config = {
            "orchestrator": {"base_url": "https://ae.example.com"},
            "tenants": [
                {
                    "id": "acme",
                    "policy": {"require_passkey": require},
                    "approvers": [{"channel": "telegram", "address": "4242"}],
                }
            ],
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
        async with wired_app(config, env, base_url="https://ae.example.com") as wired:
            rt, client = wired.rt, wired.client
            key = {"Authorization": f"Bearer {rt.new_keys['acme']}"}
            r = await client.post("/intake/health?service=checkout", json=DEGRADED, headers=key)
            iid = r.json()["incident"]["incident_id"]
            (sent,) = tg.sent
            buttons = [b for row in sent["reply_markup"]["inline_keyboard"] for b in row]
            # In-chat approval; "I'm on it" (ack:) stays, it approves nothing.
            in_chat = [b for b in buttons if b.get("callback_data", "").startswith("ae:")]
            pages = [b["url"] for b in buttons if "url" in b]
            assert pages and pages[0].startswith("https://ae.example.com/action/recover?token=")
            page = await client.get(pages[0], headers={"Accept": "application/json"})
            assert page.json()["passkey_required"] is require
            if not require:
                assert in_chat  # unchanged without the policy
                return
            assert not in_chat
            # A tap on an in-chat button (an older message, or a crafted update) is refused.
            issued = await rt.ledger.read(
                LedgerQuery(tenant_id="acme", incident_id=iid, kinds=frozenset({"token"}))
            )
            jti = issued[-1].data["jti"]
            tap = await push_update(
                client, "/telegram/webhook", callback_update(4242, f"ae:{jti}", 1), "tg-secret"
            )
            assert tap.status_code == 200
            state = await rt.engine.get("acme", iid)
            assert state is not None and state.stage is Stage.VALIDATED
            refused = await rt.ledger.read(
                LedgerQuery(tenant_id="acme", incident_id=iid, kinds=frozenset({"refused"}))
            )
            assert refused[-1].data["problem"] == "passkey_required"
            # The served app has the passkey pieces; GET of the enrollment page changes nothing.
            js = await client.get("/passkeys/passkeys.js")
            assert js.status_code == 200 and "navigator.credentials.get" in js.text
            bad = await client.get("/passkeys/enroll?token=nope")
            assert bad.status_code == 404
        await rt.http.aclose()
