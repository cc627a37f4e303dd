"""No phone number in the ledger or on a page, ever (docs/architecture.md, "The ledger entry").

A WhatsApp approver is reached at a phone number, but named everywhere by their ``identity``:
the config refuses a WhatsApp approver without one (or with a phone number as one), and
Twilio's error messages, which quote the number, are redacted before they are ledgered. The
end-to-end check scans everything an auditor or a tenant can read: the whole ledger export,
the tenant API, the dashboard pages and the approval page.
"""

from __future__ import annotations

import io
import re
from typing import Any

import httpx
import pytest

from alertengine.clock import VirtualClock
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.tools import export_entries
from alertengine.notify.render import render
from alertengine.notify.twilio import TwilioWhatsAppChannel, redact_numbers
from alertengine.orchestrator.config import ConfigError, parse_config
from alertengine.orchestrator.dashboard import dashboard_routes
from alertengine.orchestrator.runtime import build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore
from tests.notify.messages import incident
from tests.support.fakes.twilio import FakeTwilio, error

PHONE = "+263771234567"
# Any 7 consecutive digits of the number, however it is grouped, is a leak.
LEAKS = [PHONE[i : i + 7] for i in range(1, len(PHONE) - 6)]
ADMIN = "a" * 40
DEGRADED = {
    "status": "critical",
    "health_score": {"score": 30, "status": "critical", "trend": "degrading"},
    "metrics": {"overall_p95_ms": 2900.0, "error_rate": 0.22, "sample_size": 300},
    "alerts": [{"type": "latency_spike", "severity": "critical"}],
}


def _config(approver: dict[str, str]) -> dict[str, Any]:
    return {
        "orchestrator": {"base_url": "http://approve.test"},
        "tenants": [{"id": "acme", "approvers": [approver]}],
        "targets": [
            {"tenant": "acme", "service": "checkout"},
            {"tenant": "acme", "service": "billing"},
        ],
    }


def _assert_no_number(where: str, text: str) -> None:
    digits_only = re.sub(r"[\s.\-()]", "", text)
    for leak in LEAKS:
        assert leak not in digits_only, f"phone number digits {leak!r} in {where}"


@pytest.mark.parametrize(
    ("approver", "why"),
    [
        ({"channel": "whatsapp", "address": PHONE}, "needs an `identity`"),
        ({"channel": "whatsapp", "address": PHONE, "identity": PHONE}, "phone number"),
        ({"channel": "whatsapp", "address": PHONE, "identity": "263771234567"}, "phone number"),
        ({"channel": "slack", "address": "#oncall", "identity": "+263 77 123 4567"}, "phone"),
        ({"channel": "whatsapp", "address": PHONE, "identity": "0771234567"}, "phone number"),
    ],
)
def test_config_refuses_a_phone_number_as_an_approver_name(
    approver: dict[str, str], why: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(_config(approver))
    assert "tenants.0.approvers.0" in str(exc.value) and why in str(exc.value)


def test_telegram_numeric_user_ids_stay_valid_identities() -> None:
    cfg = parse_config(_config({"channel": "telegram", "address": "42", "identity": "123456789"}))
    assert cfg.tenants[0].approvers[0].approver == "engineer:telegram:123456789"


def test_twilio_errors_lose_the_number() -> None:
    assert redact_numbers("The 'To' number whatsapp:+263771234567 is not valid") == (
        "The 'To' number <number> is not valid"
    )
    assert redact_numbers("to +263 77 123 4567.") == "to <number>."
    assert redact_numbers("Twilio 400: 21211 Invalid") == "Twilio 400: 21211 Invalid"


async def test_twilio_channel_error_never_carries_the_number(
    twilio: tuple[FakeTwilio, str], http: httpx.AsyncClient
) -> None:
    fake, url = twilio
    fake.script.append(error(400, 21211, f"The 'To' number whatsapp:{PHONE} is not valid."))
    channel = TwilioWhatsAppChannel(fake.account_sid, fake.auth_token, "+14155238886", http, url)
    result = await channel.send(PHONE, render(incident()))
    assert not result.ok and result.permanent and "21211" in (result.error or "")
    _assert_no_number("the delivery error", result.error or "")


async def test_nothing_an_auditor_or_a_tenant_can_read_holds_the_number(
    twilio: tuple[FakeTwilio, str],
) -> None:
    fake, url = twilio
    clock = VirtualClock()
    ledger = MemoryLedgerStore(b"x" * 32)
    settings = Settings.from_env(
        {
            "ALERT_SECRET": "s" * 40,
            "ALERTENGINE_ADMIN_KEY": ADMIN,
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_WHATSAPP_FROM": "+14155238886",
            "TWILIO_API_BASE": url,
        }
    )
    approver = {"channel": "whatsapp", "address": PHONE, "identity": "ana"}
    rt = await build_runtime(
        parse_config(_config(approver)),
        ledger=ledger,
        store=MemoryStateStore(clock),
        settings=settings,
        clock=clock,
    )
    await sync_tenants(rt)
    rt.extra_routes.extend(dashboard_routes(rt))
    app = create_app(rt, run_loop=False)
    # The first message fails the way Twilio fails, quoting the number; the second arrives.
    fake.script.append(error(400, 21211, f"The 'To' number whatsapp:{PHONE} is not valid."))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://orch.test"
    ) as client:
        incidents = []
        for service in ("checkout", "billing"):
            state = await rt.orch.push_health("acme", service, DEGRADED)
            assert state is not None and state.stage.value == "VALIDATED"
            incidents.append(state.incident_id)
        await rt.drain()
        assert [m["To"] for m in fake.sent] == [f"whatsapp:{PHONE}"]  # it did reach the phone
        link = re.search(r"http://approve\.test/action/recover\?token=\S+", fake.sent[0]["Body"])
        assert link is not None

        out = io.StringIO()
        assert await export_entries(ledger, out) > 0
        export = out.getvalue()
        assert "person:ana" in export and "21211" in export
        _assert_no_number("the ledger export", export)

        pages = {}
        api = {"X-API-Key": ADMIN}
        pages["GET /ledger"] = (
            await client.get("/ledger?tenant=acme&limit=1000", headers=api)
        ).text
        for i in incidents:
            pages[f"GET /incidents/{i}"] = (
                await client.get(f"/incidents/{i}?tenant=acme", headers=api)
            ).text
        pages["approval page"] = (
            await client.get(link.group(0).replace("http://approve.test", ""))
        ).text
        r = await client.post(
            "/dashboard/signin",
            data={"api_key": rt.new_keys["acme"], "tenant": ""},
            headers={"Origin": "http://orch.test"},
        )
        assert r.status_code == 303
        for path in [
            "/dashboard/",
            "/dashboard/ledger",
            *(f"/dashboard/incidents/{i}" for i in incidents),
        ]:
            r = await client.get(path)
            assert r.status_code == 200, path
            pages[path] = r.text
        assert "person:ana" in pages["approval page"]
        for where, text in pages.items():
            _assert_no_number(where, text)
    await rt.http.aclose()
