"""Refusals that name nobody, on the wired orchestrator (in-process ASGI, virtual clock): the
first ``per_window`` of a route and reason are ledgered one by one, the rest become one
summary entry when the window closes (the loop tick writes it), and the counts add up.
Refusals tied to a tenant's key or a genuine link keep an entry each."""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlencode

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alertengine.ledger import Entry, LedgerQuery
from tests.sdk.test_prometheus import promtool
from tests.support.fakes.telegram import FakeTelegram, callback_update
from tests.support.fakes.twilio import FakeTwilio
from tests.support.servers import serve
from tests.support.wired import Wired, telegram_env, wired_app

BASE = "http://localhost"
ADMIN = "admin-key-for-tests-0123456789abcdef"
N, WINDOW_S = 4, 30.0
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@asynccontextmanager
async def orchestrator(
    monkeypatch: pytest.MonkeyPatch, extra_env: dict[str, str] | None = None
) -> AsyncIterator[tuple[Wired, FakeTwilio]]:
    monkeypatch.setenv("ACME_RECOVERY", "r" * 40)
    tw, tg = FakeTwilio(), FakeTelegram()
    with serve(tw.app) as tw_url, serve(tg.app) as tg_url:
        config = {
            "orchestrator": {"base_url": BASE},
            "tenants": [
                {
                    "id": "acme",
                    "people": [
                        {
                            "id": "alice",
                            "channels": [{"channel": "whatsapp", "address": "+15550001111"}],
                        }
                    ],
                },
                {"id": "beta"},
            ],
            "targets": [
                {
                    "tenant": "acme",
                    "service": "checkout",
                    "recovery_webhook": "http://127.0.0.1:9/hook",
                    "webhook_secret_env": "ACME_RECOVERY",
                }
            ],
        }
        env = {
            **telegram_env(tg, tg_url),
            "ALERTENGINE_ADMIN_KEY": ADMIN,
            "ALERTENGINE_REFUSALS_PER_WINDOW": str(N),
            "ALERTENGINE_REFUSALS_WINDOW_S": str(WINDOW_S),
            "TWILIO_ACCOUNT_SID": tw.account_sid,
            "TWILIO_AUTH_TOKEN": tw.auth_token,
            "TWILIO_WHATSAPP_FROM": "+15550000000",
            "TWILIO_API_BASE": tw_url,
            **(extra_env or {}),
        }
        async with wired_app(config, env, base_url=BASE) as w:
            yield w, tw
            await w.rt.http.aclose()


async def refused(w: Wired, tenant: str) -> list[Entry]:
    q = LedgerQuery(tenant_id=tenant, kinds=frozenset({"refused"}))
    return list(await w.rt.ledger.read(q))


def summaries(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if e.decision == "refused (coalesced)"]


async def close_windows(w: Wired) -> None:
    """Time passes past the window; the orchestrator's loop tick writes the summaries."""
    await w.clock.advance(WINDOW_S + 1)
    await w.rt.orch.tick()


async def test_an_unsigned_webhook_flood_is_n_entries_and_one_summary(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sent = 57
    async with orchestrator(monkeypatch) as (w, _tw):
        with caplog.at_level(logging.WARNING, logger="alertengine.refusals"):
            for i in range(sent):
                r = await w.client.post(
                    "/twilio/whatsapp",
                    content=urlencode({"Body": f"approve {i}", "From": "whatsapp:+15550009999"}),
                    headers={**FORM, "X-Twilio-Signature": "forged"},
                )
                assert r.status_code == 403
        own = await refused(w, "_system")
        assert len(own) == N and not summaries(own)
        assert all(e.reason.endswith("missing or invalid X-Twilio-Signature") for e in own)
        # Once per window and key, and without the sender's number.
        warned = [r for r in caplog.records if "counting the rest" in r.getMessage()]
        assert len(warned) == 1 and "+1555" not in caplog.text
        assert w.rt.refusals is not None
        assert w.rt.refusals.status()["pending"] == sent - N

        await close_windows(w)
        after = await refused(w, "_system")
        (s,) = summaries(after)
        assert len(after) == N + 1
        assert s.data["count"] == sent - N and s.data["route"] == "/twilio/whatsapp"
        assert s.data["reason"] == "missing or invalid X-Twilio-Signature"
        assert s.data["sources"] == ["127.0.0.1"]  # httpx's ASGI client address
        assert s.reason.startswith(f"{sent - N} more requests refused on /twilio/whatsapp")
        assert s.data["first_at"] <= s.data["last_at"]
        assert "+1555" not in str(s.data)
        assert w.rt.refusals.status()["pending"] == 0
        assert (await w.rt.ledger.verify("_system")).ok


async def test_replayed_twilio_requests_are_coalesced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A captured, validly signed request replayed (Twilio's signature has no timestamp)."""
    async with orchestrator(monkeypatch) as (w, tw):
        params = tw.whatsapp_inbound("+15550009999", "+15550000000", text="hello")
        body = urlencode(params)
        sig = tw.sign(BASE + "/twilio/whatsapp", params)
        for _ in range(30):
            await w.client.post(
                "/twilio/whatsapp", content=body, headers={**FORM, "X-Twilio-Signature": sig}
            )
        await close_windows(w)
        replays = [e for e in await refused(w, "_system") if "MessageSid" in e.reason]
        (s,) = summaries(await refused(w, "_system"))
        assert len(replays) == N and s.data["count"] == 29 - N  # the first one was handled


def forged(tenant: str, incident: str = "inc-nope") -> str:
    now = int(time.time())
    claims = {
        "iss": "alertengine",
        "tenant": tenant,
        "incident": incident,
        "action": "recover",
        "approver": "person:mallory",
        "jti": "j" * 22,
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, "not-our-secret-" * 4, algorithm="HS256")


async def test_forged_links_and_bad_secrets_are_accounted_per_route_and_ledger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = 23
    async with orchestrator(monkeypatch) as (w, _tw):
        for _ in range(sent):
            r = await w.client.post("/action/recover/confirm", json={"token": forged("acme")})
            assert r.status_code == 401, r.text
            r = await w.client.post("/action/recover/confirm", json={"token": forged("nobody")})
            assert r.status_code == 401
            r = await w.client.post("/action/ack", json={"token": forged("acme")})
            assert r.status_code == 401
            r = await w.client.post(
                "/telegram/webhook",
                json={"update_id": 1},
                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            )
            assert r.status_code == 401
        await close_windows(w)
        acme, system = await refused(w, "acme"), await refused(w, "_system")
        # A forged link claiming acme is ledgered in acme (its audit shows the attempts)...
        assert len(acme) == N + 1 and summaries(acme)[0].data["count"] == sent - N
        # ... one claiming no tenant, forged ack links, bad Telegram secrets: in _system.
        by_route: dict[str, list[Entry]] = {}
        for e in system:
            route = e.data.get("route") or e.data.get("path") or e.data.get("via")
            by_route.setdefault(str(route), []).append(e)
        sums = {s.data["route"]: s.data["count"] for s in summaries(system)}
        assert sums == {
            "/action/recover/confirm": sent - N,
            "/action/ack": sent - N,
            "/telegram/webhook": sent - N,
        }
        assert len(system) == 3 * (N + 1)
        telegram = [e for e in system if e.data.get("via") == "telegram"]
        assert len(telegram) == N and telegram[0].actor == "anonymous"
        for tenant in ("acme", "_system"):
            assert (await w.rt.ledger.verify(tenant)).ok


async def test_made_up_telegram_buttons_from_strangers_are_coalesced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Telegram vouches for the sender, not for the button's data (a modified client can send
    any ``callback_data``): an unknown approve or acknowledge button from a chat user who is
    no person names nobody."""
    sent = N + 5
    async with orchestrator(monkeypatch) as (w, _tw):
        secret = {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
        for i in range(sent):
            for data in (f"ae:made-up-{i}", f"ack:made-up-{i}"):
                r = await w.client.post(
                    "/telegram/webhook", json=callback_update(4242, data, i), headers=secret
                )
                assert r.status_code == 200, r.text
        await close_windows(w)
        system = await refused(w, "_system")
        assert {s.data["reason"]: s.data["count"] for s in summaries(system)} == {
            "malformed": sent - N,
            "unknown acknowledge button": sent - N,
        }
        assert len(system) == 2 * (N + 1)
        assert {e.actor for e in system if not e.data.get("coalesced")} == {
            "engineer:telegram:4242"
        }


async def test_made_up_passkey_enrollment_links_are_coalesced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = N + 7
    async with orchestrator(monkeypatch) as (w, _tw):
        for i in range(sent):
            r = await w.client.post(
                "/passkeys/enroll/finish", json={"token": f"made-up-{i}", "credential": {}}
            )
            assert r.status_code == 404, r.text
        await close_windows(w)
        system = await refused(w, "_system")
        assert len(system) == N + 1 and summaries(system)[0].data["count"] == sent - N
        assert summaries(system)[0].data["route"] == "/passkeys/enroll/finish"


async def test_refusals_tied_to_a_key_or_a_genuine_link_keep_an_entry_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tries = N + 6
    async with orchestrator(monkeypatch) as (w, _tw):
        rt = w.rt
        beta_key = rt.new_keys["beta"]
        genuine, _ = rt.authorizer.signer.issue(
            tenant="acme", incident="inc-real", action="recover", approver="person:alice", ttl_s=5
        )
        await w.clock.advance(10)  # expired, but signed by us: it names acme's alice
        for _ in range(tries):
            r = await w.client.post("/action/recover/confirm", json={"token": genuine})
            assert r.status_code == 410, r.text
        fresh, _ = rt.authorizer.signer.issue(
            tenant="acme", incident="inc-real", action="recover", approver="person:alice", ttl_s=600
        )
        for _ in range(tries):  # beta's key with acme's link: cross-tenant, by a known caller
            r = await w.client.post(
                "/action/recover/confirm",
                json={"token": fresh},
                headers={"Authorization": f"Bearer {beta_key}"},
            )
            assert r.status_code == 403, r.text
        for _ in range(tries):  # a forged link, but sent with beta's key: beta is named
            r = await w.client.post(
                "/action/recover/confirm",
                json={"token": forged("acme")},
                headers={"Authorization": f"Bearer {beta_key}"},
            )
            assert r.status_code == 401
        await close_windows(w)
        acme, beta = await refused(w, "acme"), await refused(w, "beta")
        assert not summaries(acme) and not summaries(beta)
        assert [e.data["problem"] for e in acme].count("expired") == tries
        assert len(beta) == tries
        assert [e.data["problem"] for e in acme].count("forged") == tries


async def test_status_and_metrics_show_the_attack_to_the_admin_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with orchestrator(monkeypatch) as (w, _tw):
        for _ in range(N + 9):
            await w.client.post("/action/ack", data={"token": "garbage"})
        admin = {"Authorization": f"Bearer {ADMIN}"}
        status = (await w.client.get("/__alertengine/status", headers=admin)).json()["refusals"]
        (key,) = status["keys"]
        assert (key["route"], key["reason"]) == ("/action/ack", "ack link malformed")
        assert (key["ledgered"], key["coalesced"], key["pending"]) == (N, 9, 9)
        assert (status["per_window"], status["window_s"]) == (N, WINDOW_S)

        assert (await w.client.get("/metrics")).status_code == 401
        tenant = {"Authorization": f"Bearer {w.rt.new_keys['acme']}"}
        before = len(await refused(w, "_system"))
        assert (await w.client.get("/metrics", headers=tenant)).status_code == 403
        assert len(await refused(w, "_system")) == before + 1  # ledgered, as status does

        await close_windows(w)
        r = await w.client.get("/metrics", headers=admin)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        check = subprocess.run(
            [promtool(), "check", "metrics"], input=r.text, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
        samples: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                if s.labels.get("route") == "/action/ack":
                    samples[(s.name, s.labels.get("outcome", ""))] = s.value
        assert samples[("alertengine_refusals_total", "ledgered")] == N
        assert samples[("alertengine_refusals_total", "coalesced")] == 9
        assert samples[("alertengine_refusal_summaries_total", "")] == 1
        assert samples[("alertengine_refusals_pending", "")] == 0


async def test_forged_person_tokens_and_slack_signatures_are_counted_not_ledgered_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Guessing a person token (``POST /incidents/{id}/ack``) or a Slack signature floods
    nothing: N entries and one summary per reason, and the counts add up."""
    sent = 23
    slack = {"SLACK_SIGNING_SECRET": "s" * 40, "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/slack"}
    async with orchestrator(monkeypatch, slack) as (w, _tw):
        for i in range(sent):
            r = await w.client.post(
                "/incidents/inc-1/ack", headers={"Authorization": f"Bearer aep_{'x' * 40}{i}"}
            )
            assert r.status_code == 401, r.text
            r = await w.client.post(
                "/slack/interactions",
                content=f"payload=%7B%22n%22%3A{i}%7D",
                headers={**FORM, "X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "1"},
            )
            assert r.status_code == 401, r.text
        await close_windows(w)
        entries = await refused(w, "_system")
        token = [e for e in entries if "person token" in e.reason or "/incidents/" in e.reason]
        slack_entries = [e for e in entries if "slack" in e.reason]
        for group in (token, slack_entries):
            (summary,) = summaries(group)
            assert len(group) == N + 1
            assert summary.data["count"] == sent - N
