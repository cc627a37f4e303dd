"""The real thing (issue 10): Debian's Prometheus scrapes an instrumented app's ``/metrics``, an
alerting rule over the SDK's own error metric fires, Debian's Alertmanager delivers it with
bearer auth to ``/intake/alertmanager``.

Asserted: the fault opens one incident and one person is asked (one firing alert is enough);
the recovery webhook runs once after approval; when the fault is gone and Alertmanager sends
"resolved", the incident closes (on main it stayed EXECUTED). The timings are printed (run with
``-s``) and recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx

from alertengine import instrument
from alertengine.alertmanager import label_fingerprint
from alertengine.demo import _approve_over_http, _serve, _traffic
from alertengine.demo_parts import TenantSide, shop_app, tenant_app
from alertengine.incidents import Stage
from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.sdk.config import SDKConfig
from alertengine.stores.factory import open_stores
from tests.support.alerting import Alertmanager, Prometheus
from tests.support.redis_server import free_port

#: The alerting rule, over the SDK's own 5xx share. ``{error_metric}`` is the SDK's error-rate
#: gauge as ``/metrics`` names it at test time (its name may change; this expression is the one
#: place to update if its shape does).
RULE_EXPR = "max by (service) ({error_metric}) > 0.2"
ERROR_METRIC = re.compile(r"^(alertengine_\w*error_rat\w*)[{ ]", re.M)
TENANT, SERVICE = "acme", "shop"
RUNBOOK = "https://runbooks.example/high-error-rate"

RULES = """
groups:
  - name: alertengine-e2e
    interval: 1s
    rules:
      - alert: HighErrorRate
        expr: {expr}
        for: 1s
        labels:
          severity: page
        annotations:
          summary: "{{{{ $labels.service }}}}: 5xx above 20 %"
          description: "5xx share is {{{{ $value | humanizePercentage }}}} over the SDK window"
          runbook_url: {runbook}
"""

PROMETHEUS = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [RULES_FILE]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{am_port}"]
scrape_configs:
  - job_name: shop
    static_configs:
      - targets: ["127.0.0.1:{shop_port}"]
"""

ALERTMANAGER = """
route:
  receiver: alertengine
  group_by: [service]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: alertengine
    webhook_configs:
      - url: {intake}
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: {key_file}
"""


def config(ports: dict[str, int]) -> dict[str, Any]:
    tenant_url = f"http://127.0.0.1:{ports['tenant']}"
    return {
        "orchestrator": {"base_url": f"http://127.0.0.1:{ports['orch']}", "loop_interval_s": 0.5},
        "tenants": [
            {
                "id": TENANT,
                "approvers": [
                    {
                        "channel": "webhook",
                        "address": f"{tenant_url}/phone/inbox",
                        "identity": "oncall-alice",
                    }
                ],
            }
        ],
        # Alert-only target: no health_url, Alertmanager is the only detector.
        "targets": [
            {
                "tenant": TENANT,
                "service": SERVICE,
                "recovery_webhook": f"{tenant_url}/recover",
                "webhook_secret_env": "SHOP_RECOVERY_SECRET",
                "action": "restart shop workers",
            }
        ],
    }


async def until(what: str, check: Any, timeout_s: float, every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


async def test_prometheus_alert_opens_asks_runs_once_and_closes_on_resolved(
    tmp_path: Any, monkeypatch: Any
) -> None:
    ports = {name: free_port() for name in ("shop", "tenant", "orch")}
    recovery_secret, notify_secret = "r" * 40, "n" * 40
    monkeypatch.setenv("SHOP_RECOVERY_SECRET", recovery_secret)
    side = TenantSide(recovery_secret.encode(), notify_secret.encode())
    shop = shop_app(side.chaos)
    instrument(
        shop, service=SERVICE, config=SDKConfig(service=SERVICE, window_s=5, prometheus=True)
    )

    ledger, store = open_stores(f"sqlite:///{tmp_path / 'ae.db'}", ledger_key=b"k" * 32)
    settings = Settings.from_env({"ALERT_SECRET": "s" * 48, "NOTIFY_WEBHOOK_SECRET": notify_secret})
    rt = await build_runtime(
        parse_config(config(ports)), ledger=ledger, store=store, settings=settings
    )
    await sync_tenants(rt)
    key_file = tmp_path / "tenant.key"
    key_file.write_text(rt.new_keys[TENANT])
    key_file.chmod(0o600)

    stop_traffic = asyncio.Event()
    prometheus: Prometheus | None = None
    alertmanager: Alertmanager | None = None
    traffic: asyncio.Task[None] | None = None
    try:
        async with (
            _serve(shop, ports["shop"]),
            _serve(tenant_app(side), ports["tenant"]),
            _serve(create_app(rt), ports["orch"]),
        ):
            shop_url = f"http://127.0.0.1:{ports['shop']}"
            traffic = asyncio.create_task(_traffic(shop_url, stop_traffic, concurrency=4))
            async with httpx.AsyncClient() as client:
                await until("traffic in the SDK window", lambda: _has_traffic(client, shop_url), 15)
                exposition = (await client.get(f"{shop_url}/metrics")).text
            found = ERROR_METRIC.search(exposition)
            assert found, f"no error-rate metric in the SDK's /metrics:\n{exposition}"
            expr = RULE_EXPR.format(error_metric=found.group(1))

            alertmanager = Alertmanager(
                ALERTMANAGER.format(
                    intake=f"http://127.0.0.1:{ports['orch']}/intake/alertmanager",
                    key_file=key_file,
                )
            )
            alertmanager.start()
            prometheus = Prometheus(
                PROMETHEUS.format(am_port=alertmanager.port, shop_port=ports["shop"]),
                RULES.format(expr=expr, runbook=RUNBOOK),
            )
            prometheus.start()
            async with httpx.AsyncClient() as client:
                await until(
                    "Prometheus scraping the shop", lambda: _scraped(client, prometheus), 20
                )

            assert await rt.engine.incidents(TENANT) == []  # healthy traffic fires nothing
            fault_at = time.monotonic()
            side.chaos.error_rate = 0.5
            await until("the approver's message", lambda: _true(side.messages), 40)
            asked_at = time.monotonic()
            (incident,) = await rt.engine.incidents(TENANT)
            assert incident.stage is Stage.VALIDATED
            (tracked,) = incident.alerts.values()
            assert tracked["alertname"] == "HighErrorRate" and tracked["status"] == "firing"
            assert tracked["annotations"]["runbook_url"] == RUNBOOK
            assert tracked["generatorURL"].startswith(prometheus.url)
            assert tracked["startsAt"] is not None and tracked["endsAt"] is None
            # Our fingerprint of a label set is Alertmanager's own.
            assert label_fingerprint(tracked["labels"]) == tracked["fingerprint"]
            (message,) = side.messages
            assert "HighErrorRate" in message["text"] and RUNBOOK in message["text"]

            await _approve_over_http(message["approve_url"])  # the recovery clears the fault
            await until("the recovery webhook", lambda: _true(side.recoveries), 20)
            fixed_at = time.monotonic()
            closed = await until(
                "the incident to close", lambda: _closed(rt, incident.incident_id), 40
            )
            closed_at = time.monotonic()
            assert closed.stage is Stage.RESOLVED, closed.stage
            assert "every Alertmanager alert" in closed.history[-1].reason

            # Alertmanager holds no active alert, so it has nothing more to send: what we got
            # is all there will be (one firing, one resolved notification, none failed).
            async with httpx.AsyncClient() as client:
                await until("no active alert", lambda: _am_idle(client, alertmanager), 20)
                sent = await _am_metric(client, alertmanager, "alertmanager_notifications_total")
                failed = await _am_metric(
                    client, alertmanager, "alertmanager_notifications_failed_total"
                )
            assert (sent, failed) == (2, 0)
            assert len(side.recoveries) == 1 and len(side.messages) == 1
            assert [s.incident_id for s in await rt.engine.incidents(TENANT)] == [
                incident.incident_id
            ]
            entries = await ledger.read(LedgerQuery(tenant_id=TENANT, limit=1000))
            resolved = [e for e in entries if e.kind == "alert" and e.decision == "resolved"]
            assert len(resolved) == 1
            executions = [e for e in entries if e.kind == "transition" and e.stage == "EXECUTED"]
            assert len(executions) == 1
            assert (await ledger.verify(TENANT)).ok
            # The orchestrator's own share, from ledger times (wall clock, like the inbox's).
            firing_to_asked = message["received_at"] - entries[0].timestamp
            resolved_to_closed = closed.updated_at - resolved[0].timestamp
            print(
                f"\nfault -> person asked: {asked_at - fault_at:.1f} s "
                f"(Alertmanager's firing -> asked: {firing_to_asked * 1000:.0f} ms); "
                f"fault fixed -> incident closed: {closed_at - fixed_at:.1f} s "
                f"(Alertmanager's resolved -> closed: {resolved_to_closed * 1000:.0f} ms)"
            )
    finally:
        stop_traffic.set()
        if traffic is not None:
            traffic.cancel()
        for p in (prometheus, alertmanager):
            if p is not None:
                p.stop()
        await rt.http.aclose()
        await ledger.close()
        await store.close()


async def _true(items: list[Any]) -> bool:
    return bool(items)


async def _has_traffic(client: httpx.AsyncClient, shop_url: str) -> bool:
    body = (await client.get(f"{shop_url}/health/alerts")).json()
    return int(body.get("metrics", {}).get("sample_size") or 0) >= 20


async def _scraped(client: httpx.AsyncClient, prometheus: Prometheus) -> bool:
    r = await client.get(f"{prometheus.url}/api/v1/query", params={"query": 'up{job="shop"}'})
    result = r.json().get("data", {}).get("result", [])
    return bool(result) and result[0]["value"][1] == "1"


async def _am_metric(client: httpx.AsyncClient, am: Alertmanager, name: str) -> float:
    """The sum of a metric's webhook series in Alertmanager's own /metrics."""
    text = (await client.get(f"{am.url}/metrics")).text
    pattern = re.compile(rf'^{name}{{[^}}]*integration="webhook"[^}}]*}} (\S+)$', re.M)
    return sum(float(v) for v in pattern.findall(text))


async def _am_idle(client: httpx.AsyncClient, am: Alertmanager) -> bool:
    text = (await client.get(f"{am.url}/metrics")).text
    return re.search(r'^alertmanager_alerts\{state="active"\} 0$', text, re.M) is not None


async def _closed(rt: Any, incident_id: str) -> Any:
    s = await rt.engine.get(TENANT, incident_id)
    return s if s is not None and not s.is_open else None
