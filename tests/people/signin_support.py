"""A wired orchestrator (in-process ASGI) with the fake Telegram on loopback, two tenants and
their people, and the steps of a person sign-in as a test drives them."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from alertengine.clock import VirtualClock
from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.runtime import Runtime
from tests.support.fakes.telegram import FakeTelegram
from tests.support.servers import serve
from tests.support.wired import DEGRADED, telegram_env, wired_app

BASE = "http://localhost"
ADMIN_KEY = "admin-key-for-tests-0123456789abcdef"
ALICE, BOB, CAROL = "1001", "1002", "3003"


def tg(pid: str, chat: str) -> dict[str, Any]:
    return {"id": pid, "channels": [{"channel": "telegram", "address": chat}]}


def config() -> dict[str, Any]:
    return {
        "orchestrator": {"base_url": BASE},
        "tenants": [
            {
                "id": "acme",
                "people": [tg("alice", ALICE), tg("bob", BOB)],
                "policy": {"escalate_after_s": 600},
            },
            {"id": "beta", "people": [tg("carol", CAROL)]},
        ],
        "targets": [
            {"tenant": "acme", "service": "checkout", "recovery_webhook": "http://127.0.0.1:9/x"},
            {"tenant": "beta", "service": "shop", "recovery_webhook": "http://127.0.0.1:9/x"},
        ],
    }


@dataclass
class Site:
    rt: Runtime
    client: httpx.AsyncClient
    telegram: FakeTelegram
    clock: VirtualClock
    keys: dict[str, str]

    def auth(self, tenant: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    async def incident(self, tenant: str = "acme") -> str:
        service = "checkout" if tenant == "acme" else "shop"
        r = await self.client.post(
            f"/intake/health?service={service}", json=DEGRADED, headers=self.auth(tenant)
        )
        assert r.json()["incident"]["stage"] == "VALIDATED", r.text
        return str(r.json()["incident"]["incident_id"])

    async def request(
        self, person: str = "alice", tenant: str = "acme", client: str = "cli"
    ) -> httpx.Response:
        return await self.client.post(
            "/people/signin", json={"person": person, "client": client}, headers=self.auth(tenant)
        )

    def link(self, chat: str) -> str:
        """The confirm link of the last sign-in message to ``chat`` (a URL button)."""
        for m in reversed(self.telegram.sent):
            if str(m["chat_id"]) == chat and "Sign-in request" in m["text"]:
                url = str(m["reply_markup"]["inline_keyboard"][0][0]["url"])
                return url.removeprefix(BASE)
        raise AssertionError(f"no sign-in link went to {chat}: {self.telegram.sent}")

    @staticmethod
    def code_of(link: str) -> str:
        m = re.search(r"[?&]c=([^&]+)", link)
        assert m, link
        return m.group(1)

    async def answer(self, link: str, decision: str = "confirm") -> httpx.Response:
        return await self.client.post(
            "/people/signin/confirm", data={"c": self.code_of(link), "decision": decision}
        )

    async def poll(self, device_code: str, tenant: str = "acme") -> httpx.Response:
        return await self.client.post(
            "/people/signin/poll", json={"device_code": device_code}, headers=self.auth(tenant)
        )

    async def token(self, person: str = "alice", chat: str = ALICE, tenant: str = "acme") -> str:
        """A full sign-in: request, the person confirms from their link, poll."""
        r = await self.request(person, tenant)
        assert r.status_code == 201, r.text
        ok = await self.answer(self.link(chat))
        assert ok.status_code == 200, ok.text
        polled = await self.poll(r.json()["device_code"], tenant)
        assert polled.status_code == 200, polled.text
        return str(polled.json()["token"])

    async def ack(self, incident: str, token: str) -> httpx.Response:
        return await self.client.post(
            f"/incidents/{incident}/ack", headers={"Authorization": f"Bearer {token}"}
        )

    async def entries(self, tenant: str, kind: str | None = None) -> list[Any]:
        q = LedgerQuery(tenant_id=tenant, kinds=frozenset({kind}) if kind else None)
        return list(await self.rt.ledger.read(q))


@contextlib.asynccontextmanager
async def site() -> AsyncIterator[Site]:
    tgram = FakeTelegram()
    with serve(tgram.app) as tg_url:
        env = {**telegram_env(tgram, tg_url), "ALERTENGINE_ADMIN_KEY": ADMIN_KEY}
        async with wired_app(config(), env, base_url=BASE) as w:
            yield Site(w.rt, w.client, tgram, w.clock, dict(w.rt.new_keys))
        await w.rt.http.aclose()
