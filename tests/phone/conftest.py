"""A wired orchestrator (in-process ASGI) with the fake Twilio and Telegram on loopback."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from alertengine.clock import VirtualClock
from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.runtime import Runtime
from tests.support.fakes.telegram import FakeTelegram
from tests.support.fakes.twilio import FakeTwilio
from tests.support.fakes.webhook_receiver import FakeWebhookReceiver
from tests.support.servers import serve
from tests.support.wired import DEGRADED, telegram_env, wired_app

BASE = "http://localhost"
RECOVERY_SECRET = "recovery-secret-for-tests-0123456789"
CONTENT_SID = "HX" + "ab" * 16
WA_FROM = "+15550000000"
ALICE, BOB, STRANGER = "+15550001111", "+15550002222", "+15550009999"
CAROL = "+15550003333"  # a person of tenant beta


@dataclass
class Phone:
    rt: Runtime
    client: httpx.AsyncClient
    twilio: FakeTwilio
    telegram: FakeTelegram
    receiver: FakeWebhookReceiver
    clock: VirtualClock
    key: str

    async def incident(self) -> str:
        r = await self.client.post(
            "/intake/health?service=checkout",
            json=DEGRADED,
            headers={"Authorization": f"Bearer {self.key}"},
        )
        assert r.json()["incident"]["stage"] == "VALIDATED", r.text
        return str(r.json()["incident"]["incident_id"])

    async def post_signed(
        self, path: str, params: dict[str, str], *, signature: str | None = None
    ) -> httpx.Response:
        """POST as Twilio does: form body, signature over the public URL and the params."""
        sig = signature if signature is not None else self.twilio.sign(BASE + path, params)
        return await self.client.post(
            path,
            content=urlencode(params),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sig,
            },
        )

    async def press(self, number: str, payload: str = "", text: str = "") -> httpx.Response:
        params = self.twilio.whatsapp_inbound(number, WA_FROM, payload=payload, text=text)
        return await self.post_signed("/twilio/whatsapp", params)

    async def entries(self, tenant: str, kind: str | None = None) -> list[Any]:
        q = LedgerQuery(tenant_id=tenant, kinds=frozenset({kind}) if kind else None)
        return list(await self.rt.ledger.read(q))

    async def ledger_text(self) -> str:
        out = []
        for tenant in ("acme", "_system"):
            for e in await self.entries(tenant):
                out.append(json.dumps([e.actor, e.reason, dict(e.data)], default=str))
        return "\n".join(out)


def people(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"id": "alice", "channels": [{"channel": "whatsapp", "address": ALICE}]},
        {"id": "bob", "channels": [{"channel": "whatsapp", "address": BOB}]},
        *extra,
    ]


@pytest.fixture
def make_phone(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ACME_RECOVERY", RECOVERY_SECRET)

    @contextlib.asynccontextmanager
    async def make(
        persons: list[dict[str, Any]] | None = None,
        policy: dict[str, Any] | None = None,
        template: bool = True,
    ) -> AsyncIterator[Phone]:
        twilio, tg = FakeTwilio(), FakeTelegram()
        receiver = FakeWebhookReceiver(secret=RECOVERY_SECRET.encode())
        with serve(twilio.app) as tw_url, serve(tg.app) as tg_url, serve(receiver.app) as hook:
            tenant: dict[str, Any] = {
                "id": "acme",
                "people": persons if persons is not None else people(),
                "policy": policy or {},
            }
            if template:
                tenant["whatsapp_content_sid"] = CONTENT_SID
            # Another tenant, with its own person: tenant isolation is attacked with her.
            other = {
                "id": "beta",
                "people": [
                    {"id": "carol", "channels": [{"channel": "whatsapp", "address": CAROL}]}
                ],
            }
            config = {
                "orchestrator": {"base_url": BASE},
                "tenants": [tenant, other],
                "targets": [
                    {
                        "tenant": "acme",
                        "service": "checkout",
                        "recovery_webhook": f"{hook}/hook",
                        "webhook_secret_env": "ACME_RECOVERY",
                    }
                ],
            }
            env = {
                **telegram_env(tg, tg_url),
                "TWILIO_ACCOUNT_SID": twilio.account_sid,
                "TWILIO_AUTH_TOKEN": twilio.auth_token,
                "TWILIO_WHATSAPP_FROM": WA_FROM,
                "TWILIO_VOICE_FROM": "+15550000001",
                "TWILIO_API_BASE": tw_url,
            }
            async with wired_app(config, env, base_url=BASE) as w:
                rt = w.rt
                yield Phone(rt, w.client, twilio, tg, receiver, w.clock, rt.new_keys["acme"])
            await rt.http.aclose()

    return make
