"""The approver's message for an incident from Alertmanager (pure rendering)."""

from __future__ import annotations

from typing import Any

from alertengine.notify.render import MAX_ALERTS_SHOWN, IncidentMessage, render

NOW = 1_780_000_200.0


def alert(name: str, status: str = "firing", **over: Any) -> dict[str, Any]:
    return {
        "fingerprint": f"fp-{name}",
        "status": status,
        "alertname": name,
        "startsAt": 1_780_000_000.0,
        "endsAt": 1_780_000_100.0 if status == "resolved" else None,
        "generatorURL": f"http://prom:9090/graph?g0.expr={name}&x=<b>",
        "labels": {"alertname": name, "service": "checkout", "severity": "page"},
        "annotations": {"summary": f"{name} summary", "runbook_url": f"https://rb/{name}"},
        **over,
    }


def message(*alerts: dict[str, Any]) -> Any:
    return render(
        IncidentMessage(
            "acme",
            "checkout",
            "inc-1",
            "VALIDATED",
            NOW,
            alerts=alerts,
            approve_url="https://ae/action/recover?token=t",
        )
    )


def test_firing_first_with_times_links_and_labels() -> None:
    m = message(alert("B", "resolved"), alert("A"))
    assert m.title == "🚨 checkout: A firing"
    lines = m.text.splitlines()
    assert "Health score: n/a | P95: n/a | Errors: n/a" not in lines  # no numbers to show
    first, second = (i for i, x in enumerate(lines) if x.startswith(("🔥", "✅")))
    assert lines[first] == "🔥 A — firing since 2026-05-28 20:26:40 UTC"
    assert lines[second] == (
        "✅ B — resolved (fired from 2026-05-28 20:26:40 UTC to 2026-05-28 20:28:20 UTC)"
    )
    assert "Alertmanager: 1 of 2 alert(s) firing" in lines
    assert "Runbook: https://rb/A" in lines and "Labels: service=checkout, severity=page" in lines
    # HTML: links escaped, untrusted text escaped.
    assert '<a href="https://rb/A">Runbook</a>' in m.html
    assert '<a href="http://prom:9090/graph?g0.expr=A&amp;x=&lt;b&gt;">Source</a>' in m.html


def test_only_web_urls_become_links() -> None:
    m = message(alert("A", annotations={"runbook_url": "javascript:alert(1)"}))
    assert "Runbook: javascript:alert(1)" in m.text.splitlines()
    assert 'href="javascript' not in m.html


def test_long_and_many_alerts_are_bounded() -> None:
    many = [alert(f"A{i}", annotations={"description": "x" * 5000}) for i in range(9)]
    m = message(*many)
    assert f"(+{9 - MAX_ALERTS_SHOWN} more in the incident)" in m.text
    assert max(len(line) for line in m.text.splitlines()) <= 300
