"""A wired orchestrator (in-process ASGI) whose Slack channel is the fake Slack on loopback,
with SLACK_SIGNING_SECRET set: its messages carry buttons that act in Slack, and the fake's
client presses them as Slack does (signed ``block_actions`` to ``/slack/interactions``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from alertengine.clock import VirtualClock
from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.runtime import Runtime
from tests.support.fakes.slack import FakeSlack, Signed
from tests.support.fakes.webhook_receiver import FakeWebhookReceiver
from tests.support.servers import serve
from tests.support.wired import DEGRADED, wired_app

BASE = "http://localhost"
RECOVERY_SECRET = "recovery-secret-for-tests-0123456789"
ALICE, BOB, STRANGER = "U0ALICE", "U0BOB", "U0STRANGER"
CAROL = "U0CAROL"  # a person of tenant beta


@dataclass
class Slack:
    rt: Runtime
    client: httpx.AsyncClient
    slack: FakeSlack
    hooks: str
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

    def signed(
        self, action_id: str, user: str, *, message: dict[str, Any] | None = None, **kw: Any
    ) -> Signed:
        """``user`` pressing ``action_id`` on the last message, signed at the orchestrator's
        (virtual) now unless ``timestamp`` says otherwise."""
        kw.setdefault("timestamp", int(self.clock.now()))
        msg = message if message is not None else self.slack.posted[-1]
        return self.slack.press(msg, action_id, user, hooks_base=self.hooks, **kw)

    async def send(self, s: Signed, **headers: str) -> httpx.Response:
        r = await self.client.post(
            "/slack/interactions", content=s.body, headers={**s.headers, **headers}
        )
        await self.rt.drain()  # the decision, the response_url reply, any execution
        return r

    async def press(self, action_id: str, user: str, **kw: Any) -> httpx.Response:
        return await self.send(self.signed(action_id, user, **kw))

    def last_reply(self) -> str:
        return str(self.slack.replies[-1]["text"]) if self.slack.replies else ""

    async def entries(self, tenant: str, kind: str | None = None) -> list[Any]:
        q = LedgerQuery(tenant_id=tenant, kinds=frozenset({kind}) if kind else None)
        return list(await self.rt.ledger.read(q))

    async def ledger_text(self) -> str:
        out = []
        for tenant in ("acme", "beta", "_system"):
            for e in await self.entries(tenant):
                out.append(json.dumps([e.actor, e.reason, dict(e.data)], default=str))
        return "\n".join(out)


def people(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"id": "alice", "channels": [{"channel": "slack", "address": ALICE}]},
        # Bob's messages go to #oncall; his presses name his member id.
        {"id": "bob", "channels": [{"channel": "slack", "address": "#oncall", "user_id": BOB}]},
        *extra,
    ]


@pytest.fixture
def make_slack(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ACME_RECOVERY", RECOVERY_SECRET)

    @contextlib.asynccontextmanager
    async def make(
        persons: list[dict[str, Any]] | None = None,
        policy: dict[str, Any] | None = None,
        signing: bool = True,
    ) -> AsyncIterator[Slack]:
        fake = FakeSlack()
        receiver = FakeWebhookReceiver(secret=RECOVERY_SECRET.encode())
        with serve(fake.app) as hooks, serve(receiver.app) as hook:
            tenant: dict[str, Any] = {
                "id": "acme",
                "people": persons if persons is not None else people(),
                "policy": policy or {},
            }
            # Another tenant, with its own person: tenant isolation is attacked with her.
            other = {
                "id": "beta",
                "people": [{"id": "carol", "channels": [{"channel": "slack", "address": CAROL}]}],
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
                    },
                    {"tenant": "beta", "service": "search"},
                ],
            }
            env = {
                "ALERT_SECRET": "s" * 48,
                "SLACK_WEBHOOK_URL": hooks + fake.path,
                "SLACK_HOOKS_BASE": hooks,
            }
            if signing:
                env["SLACK_SIGNING_SECRET"] = fake.signing_secret
            async with wired_app(config, env, base_url=BASE) as w:
                rt = w.rt
                yield Slack(rt, w.client, fake, hooks, receiver, w.clock, rt.new_keys["acme"])
            await rt.http.aclose()

    return make
