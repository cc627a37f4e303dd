from __future__ import annotations

import os
from pathlib import Path

import pytest

from alertengine.diagnose import Diagnosis
from alertengine.notify.render import Button, render
from tests.notify.messages import AGREE, DISSENT, incident

SNAPSHOTS = Path(__file__).parent / "snapshots"


def test_incident_message_reads_like_the_readme_example() -> None:
    m = render(incident())
    assert m.kind == "incident" and m.title == "🚨 Checkout API degraded"
    lines = m.text.splitlines()
    assert lines[0] == "🚨 Checkout API degraded"
    assert lines[1] == "Health score: 23/100 | P95: 2.8s | Errors: 19%"
    for expected in [
        "Likely cause:",
        "Database connection pool exhausted — connections not being released after query timeout.",
        "Recent deployment:",
        "3 minutes ago — a1b2c3d",
        '"Fix checkout query isolation level" (John)',
        "⚠️ This commit touched database/query files",
        "Suggested fix:",
        "Restart checkout worker pool",
        "Confidence: 87%",
        "Approving runs: restart checkout worker pool",
        "Approve fix (expires in 5 min): https://alerts.example.com/action/recover?token=tok-123",
    ]:
        assert expected in lines, expected
    assert lines[-1] == "Nothing will run without your approval."
    assert "Both models agree." not in m.text
    assert m.buttons == (Button("✅ Approve fix", url=m.approve_url),)


def test_agreeing_council_says_so() -> None:
    m = render(incident(diagnosis=None, verdict=AGREE))
    assert m.kind == "incident" and "Both models agree." in m.text.splitlines()
    assert "Confidence: 87%" in m.text


@pytest.mark.parametrize("confidence", [0.0, 0.42, 0.59])
def test_low_confidence_withholds_cause_and_fix_but_still_renders(confidence: float) -> None:
    d = Diagnosis("database", "Pool exhausted", (), "Restart pool", confidence, "rules")
    m = render(incident(diagnosis=d))
    assert "Pool exhausted" not in m.text and "Restart pool" not in m.text
    assert "Uncertain" in m.text and "below 60%" in m.text
    assert m.approve_url in m.text and m.text.endswith("Nothing will run without your approval.")


def test_threshold_is_configurable() -> None:
    d = Diagnosis("database", "Pool exhausted", (), "Restart pool", 0.5, "rules")
    assert "Pool exhausted" in render(incident(diagnosis=d), min_confidence=0.5).text
    assert "Pool exhausted" not in render(incident(diagnosis=d), min_confidence=0.51).text


def test_failed_diagnosis_is_not_presented_as_a_cause() -> None:
    d = Diagnosis("unknown", "", (), "", 0.0, "claude", ok=False, error="timed out after 8s")
    m = render(incident(diagnosis=d))
    assert "Diagnosis unavailable" in m.text and "timed out" not in m.text
    assert "Confidence:" not in m.text


def test_in_chat_approval_button() -> None:
    m = render(incident(approve_callback="approve:tok-123"))
    assert Button("✅ Approve here", callback_data="approve:tok-123") in m.buttons


def test_html_variant_escapes_untrusted_text() -> None:
    d = Diagnosis("database", "<script>x</script> & co", (), "Restart", 0.9, "rules")
    m = render(incident(diagnosis=d, service="Check<out>"))
    assert "<script>" not in m.html and "&lt;script&gt;" in m.html
    assert m.html.startswith("<b>🚨 Check&lt;out&gt; degraded</b>")
    assert '<a href="https://alerts.example.com/action/recover?token=tok-123">' in m.html


def test_dissent_alert_matches_snapshot() -> None:
    m = render(incident(diagnosis=None, verdict=DISSENT, approve_callback="approve:tok-123"))
    assert m.kind == "dissent"
    assert [b.label for b in m.buttons] == [
        "👉 Trust Theory A",
        "👉 Trust Theory B",
        "✅ Approve fix",
        "✅ Approve here",
    ]
    assert m.buttons[0].callback_data == "trust:A:inc-7f3a"
    assert m.buttons[1].callback_data == "trust:B:inc-7f3a"
    golden = SNAPSHOTS / "dissent.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        golden.write_text(m.text + "\n", encoding="utf-8")
    assert m.text + "\n" == golden.read_text(encoding="utf-8")


def test_buttons_need_exactly_one_action_and_short_callback_data() -> None:
    with pytest.raises(ValueError):
        Button("x")
    with pytest.raises(ValueError):
        Button("x", url="https://a", callback_data="b")
    with pytest.raises(ValueError):
        Button("x", callback_data="y" * 65)


def test_missing_numbers_render_as_na() -> None:
    m = render(incident(score=None, p95_ms=None, error_rate=None, commits=()))
    assert "Health score: n/a | P95: n/a | Errors: n/a" in m.text
    assert "Recent deployment" not in m.text
