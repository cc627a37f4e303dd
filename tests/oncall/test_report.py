"""A silenced incident in the audit: detected and ledgered, held (naming the silence), no
delivery; after expiry it resumes. ``ledger report`` lists the on-call events."""

from __future__ import annotations

import httpx

from alertengine.ledger import LedgerQuery
from alertengine.ledger.audit_report import build_report, render_html
from alertengine.orchestrator.runtime import create_app
from tests.oncall.dashboard_runtime import make_runtime

DEGRADED = {
    "status": "critical",
    "health_score": {"score": 22, "status": "critical", "trend": "degrading"},
    "metrics": {"overall_p95_ms": 2800.0, "error_rate": 0.19, "sample_size": 250},
    "alerts": [],
}


async def test_a_silenced_incident_is_in_the_ledger_and_the_audit_report() -> None:
    rt = await make_runtime()
    app = create_app(rt, run_loop=False)
    key = {"Authorization": f"Bearer {rt.new_keys['acme']}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://orch.test"
    ) as c:
        r = await c.post("/silences", headers=key, json={
            "matchers": [{"name": "service", "op": "=~", "value": "check.*"}],
            "duration_s": 3600, "created_by": "alice", "comment": "planned failover"})  # fmt: skip
        sid = r.json()["id"]
        for _ in range(4):  # enough degraded polls to validate, were it not silenced
            r = await c.post("/intake/health?service=checkout", json=DEGRADED, headers=key)
            assert r.json()["incident"]["stage"] == "DETECTED"
            await rt.clock.advance(5)  # type: ignore[attr-defined]
        entries = await rt.ledger.read(LedgerQuery(tenant_id="acme"))
        held = [e for e in entries if e.kind == "silenced"]
        assert len(held) == 1 and sid in held[0].reason and "planned failover" in held[0].reason
        assert not [e for e in entries if e.kind in ("delivery", "token")]
        assert (await c.delete(f"/silences/{sid}", headers=key)).status_code == 200
        r = await c.post("/intake/health?service=checkout", json=DEGRADED, headers=key)
        assert r.json()["incident"]["stage"] == "VALIDATED"
    entries = await rt.ledger.read(LedgerQuery(tenant_id="acme"))
    assert [e.decision for e in entries if e.kind == "silenced"] == ["held", "resumed"]
    report = await build_report(rt.ledger, "acme", 0, rt.clock.now() + 1)
    assert [(x.kind, x.decision) for x in report.oncall] == [
        ("schedule", "set"),
        ("silence", "created"),
        ("silenced", "held"),
        ("silence", "expired"),
        ("silenced", "resumed"),
    ]
    html = render_html(report)
    assert 'id="oncall"' in html and "silenced: held" in html
    await rt.http.aclose()
