"""POST /intake/alertmanager with Alertmanager's semantics, in process (issue 10).

Alerts are tracked by fingerprint; a resolved alert ends that alert, it is not a health sample;
one firing alert reaches a human; unknown services are logged and ledgered; what Alertmanager
said (times, fingerprint, generator URL, labels, annotations) is in the ledger, the API, the
message and the dashboard; the tracking survives a restart.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from alertengine.alertmanager import label_fingerprint
from alertengine.clock import VirtualClock
from alertengine.engine import Change
from alertengine.incidents import Stage
from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores.factory import open_stores
from tests.support.fakes.webhook_receiver import FakeWebhookReceiver
from tests.support.servers import serve

NOTIFY_SECRET = "n" * 40
# The virtual clock starts at the real time: the receivers check signatures against it.
T0 = float(int(time.time()))
STARTS = datetime(2026, 5, 28, 20, 26, 30, 123456, tzinfo=timezone.utc).timestamp()


@pytest.fixture(autouse=True)
def recovery_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_RECOVERY_SECRET", NOTIFY_SECRET)


def alert(
    name: str,
    status: str = "firing",
    *,
    service: str = "checkout",
    starts: str = "2026-05-28T20:26:30.123456789Z",
    ends: str = "0001-01-01T00:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    labels = {"alertname": name, "service": service, "severity": "page", **labels}
    return {
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": f"{name} on {service}",
            "description": f"{name}: 5xx ratio above 20 % for 1 minute",
            "runbook_url": f"https://runbooks.example/{name}",
        },
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": f"http://prometheus.example:9090/graph?g0.expr={name}",
        "fingerprint": label_fingerprint(labels),
    }


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    """A version 4 webhook body, as Alertmanager sends it."""
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{service="checkout"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "alertengine",
        "groupLabels": {"service": "checkout"},
        "commonLabels": {"service": "checkout"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


def config(policy: dict[str, Any] | None = None, *, hook: str = "") -> dict[str, Any]:
    return {
        "orchestrator": {"base_url": "http://approve.test"},
        "tenants": [
            {
                "id": "acme",
                "approvers": [
                    {"channel": "webhook", "address": f"{hook}/hook", "identity": "alice"}
                ],
                "policy": policy or {},
            }
        ],
        "targets": [
            {
                "tenant": "acme",
                "service": "checkout",
                "recovery_webhook": f"{hook}/hook",
                "webhook_secret_env": "ACME_RECOVERY_SECRET",
                "action": "restart checkout workers",
            }
        ],
    }


class Env:
    def __init__(self, rt: Runtime, client: httpx.AsyncClient, phone: FakeWebhookReceiver):
        self.rt, self.client, self.phone = rt, client, phone

    async def post(self, body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {KEYS['acme']}", "Content-Type": "application/json"}
        # json.dumps escapes as Alertmanager's encoder would (a lone surrogate stays "\ud800").
        return await self.client.post(
            "/intake/alertmanager", content=json.dumps(body), headers=headers
        )

    async def incident(self) -> Any:
        (s,) = await self.rt.engine.incidents("acme")
        return s


KEYS: dict[str, str] = {}


async def start(
    ledger_store: Any, clock: VirtualClock, hook: str, policy: dict[str, Any] | None = None
) -> tuple[Runtime, Any]:
    ledger, store = ledger_store
    settings = Settings.from_env({"ALERT_SECRET": "s" * 48, "NOTIFY_WEBHOOK_SECRET": NOTIFY_SECRET})
    rt = await build_runtime(
        parse_config(config(policy, hook=hook)),
        ledger=ledger,
        store=store,
        settings=settings,
        clock=clock,
    )
    await sync_tenants(rt)
    KEYS.update(rt.new_keys)
    return rt, create_app(rt, run_loop=False)


@pytest.fixture
def phone() -> Any:
    receiver = FakeWebhookReceiver(secret=NOTIFY_SECRET.encode())
    with serve(receiver.app) as url:
        yield receiver, url


@pytest.fixture
def stores(tmp_path: Any) -> Any:
    ledger, store = open_stores(f"sqlite:///{tmp_path / 'ae.db'}", ledger_key=b"k" * 32)
    yield ledger, store


async def make_env(stores: Any, phone: Any, policy: dict[str, Any] | None = None) -> Env:
    receiver, url = phone
    rt, app = await start(stores, VirtualClock(T0), url, policy)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orch")
    return Env(rt, client, receiver)


@pytest.fixture
async def env(stores: Any, phone: Any) -> Any:
    e = await make_env(stores, phone)
    yield e
    await e.client.aclose()
    await e.rt.http.aclose()


async def test_one_firing_and_two_resolved_keeps_the_incident_open(env: Env) -> None:
    """The defect: each resolved alert was a synthetic healthy poll (score 100, 10^6 requests),
    so two of them moved an incident whose third alert still fired to RECOVERED."""
    a, b, c = (alert(n) for n in ("HighErrorRate", "HighLatency", "PodRestarts"))
    assert (await env.post(notification(a, b, c))).status_code == 202
    assert (await env.incident()).stage is Stage.VALIDATED

    r = await env.post(notification(a, {**b, "status": "resolved"}, {**c, "status": "resolved"}))
    assert r.status_code == 202
    s = await env.incident()
    assert s.is_open and s.stage is Stage.VALIDATED
    assert {fp: x["status"] for fp, x in s.alerts.items()} == {
        a["fingerprint"]: "firing",
        b["fingerprint"]: "resolved",
        c["fingerprint"]: "resolved",
    }
    # Resolved alerts were not health samples: no healthy observation was charted.
    assert all(o.score is None for o in env.rt.orch.history[("acme", "checkout")])

    await env.post(notification({**a, "status": "resolved"}))
    s = await env.incident()
    assert s.stage is Stage.RECOVERED and s.history[-1].actor == "policy"
    assert "every Alertmanager alert" in s.history[-1].reason
    assert (await env.rt.ledger.verify("acme")).ok


async def test_a_resend_of_known_alerts_adds_nothing(env: Env) -> None:
    a = alert("HighErrorRate")
    await env.post(notification(a))
    before = await env.rt.ledger.count("acme")
    await env.post(notification(a))  # repeat_interval: the same alert again
    await env.post(notification({**a, "status": "resolved"}, alert("Other", "resolved")))
    entries = await env.rt.ledger.read(
        LedgerQuery(tenant_id="acme", after_seq=before, kinds=frozenset({"alert"}))
    )
    assert [(e.decision, e.data["fingerprint"]) for e in entries] == [
        ("resolved", a["fingerprint"])  # a resolved alert the incident never saw: not its news
    ]


async def test_one_firing_alert_reaches_a_human(env: Env) -> None:
    """The defect: one firing alert counted as one poll and validation needed two, while
    Alertmanager re-sends only after repeat_interval (4 h): nobody was ever asked."""
    r = await env.post(notification(alert("HighErrorRate")))
    assert r.status_code == 202
    s = await env.incident()
    assert s.stage is Stage.VALIDATED
    assert "1 Alertmanager alert(s) firing" in s.history[-1].reason
    (msg,) = env.phone.received  # one person asked, with a link
    assert msg["approve_url"].startswith("http://approve.test/action/recover?token=")


async def test_policy_can_ask_for_more_firing_alerts(stores: Any, phone: Any) -> None:
    e = await make_env(stores, phone, {"validate_firing_alerts": 2})
    try:
        await e.post(notification(alert("HighErrorRate")))
        assert (await e.incident()).stage is Stage.PROPOSED
        await e.post(notification(alert("HighErrorRate")))  # the same alert again: still one
        assert (await e.incident()).stage is Stage.PROPOSED
        assert e.phone.received == []
        await e.post(notification(alert("HighErrorRate"), alert("HighErrorRate", pod="b")))
        assert (await e.incident()).stage is Stage.VALIDATED
        assert len(e.phone.received) == 1
    finally:
        await e.client.aclose()
        await e.rt.http.aclose()


async def test_unknown_services_are_logged_and_ledgered(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="alertengine.alertmanager")
    nosuch = alert("DiskFull", service="billing")
    nolabel = {**alert("Watchdog"), "labels": {"alertname": "Watchdog"}}
    r = await env.post(notification(nosuch, nolabel, alert("HighErrorRate")))
    assert r.status_code == 202
    body = r.json()
    assert [x["alertname"] for x in body["accepted"]] == ["HighErrorRate"]
    assert {x["alertname"]: x["why"] for x in body["ignored"]} == {
        "DiskFull": "no target acme/billing in the config",
        "Watchdog": "no 'service' or 'job' label names a target",
    }
    ignored = await env.rt.ledger.read(LedgerQuery(tenant_id="acme", kinds=frozenset({"alert"})))
    ignored = [e for e in ignored if e.decision == "ignored"]
    assert len(ignored) == 2 and all(e.incident_id is None for e in ignored)
    by_service = {e.data["service"]: e for e in ignored}
    assert by_service["billing"].data["alerts"][0]["fingerprint"] == nosuch["fingerprint"]
    assert "no target acme/billing" in by_service["billing"].reason
    logged = [r.getMessage() for r in caplog.records]
    assert any("DiskFull" in m and "acme/billing" in m for m in logged)
    assert any("Watchdog" in m for m in logged)


async def test_what_alertmanager_said_is_in_ledger_api_message_and_page(env: Env) -> None:
    a = alert("HighErrorRate", instance="10.0.0.7:8000")
    await env.post(notification(a))
    s = await env.incident()
    (tracked,) = s.alerts.values()
    assert tracked == {
        "fingerprint": a["fingerprint"],
        "status": "firing",
        "alertname": "HighErrorRate",
        "startsAt": pytest.approx(STARTS),
        "endsAt": None,  # Alertmanager's zero time: firing until resolved
        "generatorURL": a["generatorURL"],
        "labels": a["labels"],
        "annotations": a["annotations"],
    }
    detected = next(
        e
        for e in await env.rt.ledger.read(LedgerQuery(tenant_id="acme", limit=50))
        if e.incident_id == s.incident_id  # (registry changes come first: kind "people")
    )
    assert detected.stage == "DETECTED" and detected.data["alerts"] == [tracked]

    key = {"Authorization": f"Bearer {KEYS['acme']}"}
    r = await env.client.get(f"/incidents/{s.incident_id}", headers=key)
    assert r.json()["alerts"] == [tracked]

    (msg,) = env.phone.received
    text = msg["text"]
    assert text.splitlines()[0] == "🚨 checkout: HighErrorRate firing"
    for expected in (
        "Alertmanager: 1 of 1 alert(s) firing",
        "🔥 HighErrorRate — firing since 2026-05-28 20:26:30 UTC",
        "HighErrorRate on checkout",
        "HighErrorRate: 5xx ratio above 20 % for 1 minute",
        "Runbook: https://runbooks.example/HighErrorRate",
        f"Source: {a['generatorURL']}",
        "Labels: instance=10.0.0.7:8000, service=checkout, severity=page",
        f"Fingerprint: {a['fingerprint']}",
    ):
        assert expected in text.splitlines(), expected
    assert "Health score: n/a" not in text

    page = await dashboard_page(env, s.incident_id)
    for expected in (
        'data-fingerprint="' + a["fingerprint"] + '" data-status="firing"',
        "HighErrorRate on checkout",
        "5xx ratio above 20 % for 1 minute",
        '<a href="https://runbooks.example/HighErrorRate"',
        "2026-05-28 20:26:30 UTC",
        "not set (firing until resolved)",
        '<code>instance="10.0.0.7:8000"</code>',
    ):
        assert expected in page, expected


async def dashboard_page(env: Env, incident_id: str) -> str:
    r = await env.client.post(
        "/dashboard/signin",
        data={"api_key": KEYS["acme"]},
        headers={"Origin": "http://orch"},
    )
    assert r.status_code == 303, r.text
    r = await env.client.get(f"/dashboard/incidents/{incident_id}")
    assert r.status_code == 200, r.text
    return r.text


async def test_tracking_survives_a_restart(stores: Any, phone: Any) -> None:
    a, b = alert("HighErrorRate"), alert("HighLatency")
    first = await make_env(stores, phone)
    await first.post(notification(a, b))
    await first.client.aclose()
    await first.rt.http.aclose()

    again = await make_env(stores, phone)  # a new process: nothing in memory, the same ledger
    try:
        resolved_a = {**a, "status": "resolved"}
        await again.post(notification(resolved_a, b))
        for _ in range(2):  # re-sent: two "healthy polls" on main
            await again.post(notification(resolved_a))
        s = await again.incident()
        assert s.is_open
        assert s.alerts[b["fingerprint"]]["status"] == "firing"
        await again.post(notification({**b, "status": "resolved"}))
        assert (await again.incident()).stage is Stage.RECOVERED
    finally:
        await again.client.aclose()
        await again.rt.http.aclose()


async def test_executed_incident_resolves_when_its_alerts_resolve(env: Env) -> None:
    """The defect seen with the real Alertmanager: after "resolved" the incident stayed EXECUTED
    (one resolved notification was one healthy poll of the two recovery needed)."""
    a = alert("HighErrorRate")
    await env.post(notification(a))
    await env.post(notification(a))  # re-sent (so that main, which needed two, validates too)
    s = await env.incident()
    await authorize_and_execute(env, s.incident_id)
    assert (await env.incident()).stage is Stage.EXECUTED
    await env.post(notification({**a, "status": "resolved"}))
    s = await env.incident()
    assert s.stage is Stage.RESOLVED and s.history[-1].actor == "policy"
    assert "after the recovery ran, every Alertmanager alert" in s.history[-1].reason


async def authorize_and_execute(env: Env, incident_id: str) -> None:
    engine = env.rt.engine
    await engine.transition(
        "acme", incident_id, Change(Stage.AUTHORIZED, "engineer:webhook:alice", "approved")
    )
    await engine.transition("acme", incident_id, Change(Stage.EXECUTED, "orchestrator", "ran"))


async def test_resolved_during_the_recovery_closes_at_the_next_tick(env: Env) -> None:
    a = alert("HighErrorRate")
    await env.post(notification(a))
    iid = (await env.incident()).incident_id
    await env.rt.engine.transition(
        "acme", iid, Change(Stage.AUTHORIZED, "engineer:webhook:alice", "approved")
    )
    await env.post(notification({**a, "status": "resolved"}))  # while the webhook runs
    assert (await env.incident()).stage is Stage.AUTHORIZED
    await env.rt.engine.transition("acme", iid, Change(Stage.EXECUTED, "orchestrator", "ran"))
    await env.rt.orch.tick()
    assert (await env.incident()).stage is Stage.RESOLVED


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


async def test_an_alert_whose_ends_at_passed_has_ended(env: Env) -> None:
    """endsAt is a lease (Alertmanager's API semantics): past it, the alert is over."""
    clock = env.rt.clock
    assert isinstance(clock, VirtualClock)
    lease = alert("HighErrorRate", ends=rfc3339(T0 + 60))
    forever = alert("HighLatency")  # Alertmanager's zero endsAt: firing until resolved
    await env.post(notification(lease, forever))
    clock.set(T0 + 120)
    await env.rt.orch.tick()
    s = await env.incident()
    assert s.is_open  # HighLatency still fires
    await env.post(notification({**forever, "status": "resolved"}))
    assert (await env.incident()).stage is Stage.RECOVERED


async def test_a_polled_incident_with_a_firing_alert_waits_for_both(env: Env) -> None:
    """Opened by health, joined by an alert: a healthy poll alone does not close it, and the
    alert resolving alone does not either (a resolved alert is not a health sample)."""
    degraded = {
        "status": "critical",
        "health_score": {"score": 30, "status": "critical"},
        "metrics": {"overall_p95_ms": 2900.0, "error_rate": 0.22, "sample_size": 300},
    }
    healthy = {
        "status": "ok",
        "health_score": {"score": 98, "status": "ok"},
        "metrics": {"overall_p95_ms": 40.0, "error_rate": 0.0, "sample_size": 300},
    }
    key = {"Authorization": f"Bearer {KEYS['acme']}"}
    await env.client.post("/intake/health?service=checkout", json=degraded, headers=key)
    a = alert("HighErrorRate")
    await env.post(notification(a))
    for _ in range(3):
        await env.client.post("/intake/health?service=checkout", json=healthy, headers=key)
    assert (await env.incident()).is_open  # the alert still fires
    await env.post(notification({**a, "status": "resolved"}))
    assert (await env.incident()).stage is Stage.RECOVERED  # health was back, alert ended


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"alerts": "x"}, "no 'alerts' list"),
        ({"alerts": [{"status": "firing"}]}, "alerts.0.labels"),
        ({"alerts": [{"status": "pending", "labels": {}}]}, "alerts.0.status"),
        ({"alerts": [{"labels": {"a": "b"}}]}, "no status"),
        ({"alerts": [{"status": "firing", "labels": {"a": 1}}]}, "alerts.0.labels.a"),
        ({"alerts": [{"status": "firing", "labels": {"a": "\ud800"}}]}, "surrogate"),
        ({"alerts": [{"status": "firing", "labels": {}, "startsAt": "yesterday"}]}, "startsAt"),
        ({"alerts": [{"status": "firing", "labels": {}}] * 1001}, "max_alerts"),
    ],
)
async def test_malformed_notifications_get_a_reasoned_400(
    env: Env, body: dict[str, Any], reason: str
) -> None:
    r = await env.post(body)
    assert r.status_code == 400 and reason in r.json()["error"], r.text
    assert await env.rt.engine.incidents("acme") == []


async def test_alerts_the_ledger_cannot_record_get_503_so_alertmanager_retries(env: Env) -> None:
    await env.rt.ledger.close()  # every append now fails, as on a dead disk
    r = await env.post(notification(alert("HighErrorRate")))
    assert r.status_code == 503 and r.headers["Retry-After"], r.text
    assert "retry" in r.json()["error"]
    assert env.rt.orch.components["ledger"] is False


async def test_still_firing_after_the_grace_proposes_again_and_asks_again(
    stores: Any, phone: Any
) -> None:
    e = await make_env(stores, phone, {"post_execution_grace_s": 30})
    try:
        clock = e.rt.clock
        assert isinstance(clock, VirtualClock)
        await e.post(notification(alert("HighErrorRate")))
        await authorize_and_execute(e, (await e.incident()).incident_id)
        clock.set(clock.now() + 31)
        await e.rt.orch.tick()  # no notification comes (repeat_interval): the tick decides
        s = await e.incident()
        moved = [h for h in s.history if h.stage is Stage.PROPOSED][-1]
        assert "still firing: HighErrorRate" in moved.reason
        await e.rt.orch.tick()
        assert (await e.incident()).stage is Stage.VALIDATED
        assert len(e.phone.received) == 2  # a fresh approval is asked for
    finally:
        await e.client.aclose()
        await e.rt.http.aclose()
