"""/health/alerts keeps every key and value vocabulary of fastapi-alertengine 1.7.0.

The reference is not our reading of its docs: tests/sdk/fixtures/fastapi_alertengine_1_7_0.json
holds real answers of the real 1.7.0 package (recorded by scripts/record_alertengine_1_7_0.py in
the bench venv). Ours is driven through the same scenarios (same routes, same thresholds, on a
virtual clock) and compared recursively: every 1.7.0 key is present with the same JSON kind, and
every value at a vocabulary path is a word 1.7.0 uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException

from alertengine import instrument
from alertengine.orchestrator.poller import snapshot_from_health
from alertengine.sdk import SDKConfig, Thresholds
from tests.sdk.helpers import FakeClock, client

FIXTURE = Path(__file__).parent / "fixtures" / "fastapi_alertengine_1_7_0.json"
RECORDED: dict[str, Any] = json.loads(FIXTURE.read_text())

#: 1.7.0's words, as its source states them (schemas.py docstrings, engine.evaluate()).
VOCABULARY: dict[str, set[str]] = {
    "status": {"ok", "warning", "critical"},
    "health_score.status": {"healthy", "degraded", "critical"},
    "health_score.trend": {"stable", "improving", "degrading"},
    "alerts[].type": {"latency_spike", "error_anomaly"},
    "alerts[].severity": {"warning", "critical"},
    "alerts[].triggered_by": {"absolute_threshold", "adaptive_threshold", "rate_of_change"},
    # "increasing | decreasing | stable", and evaluate() back-fills the health trend.
    "alerts[].trend_direction": {"increasing", "decreasing", "stable", "improving", "degrading"},
}


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def missing(theirs: Any, ours: Any, path: str = "") -> list[str]:
    """Every place where ours lacks a 1.7.0 key or gives it another JSON kind."""
    if _kind(theirs) != _kind(ours):
        return [f"{path or '.'}: 1.7.0 has {_kind(theirs)}, ours {_kind(ours)}"]
    out: list[str] = []
    if isinstance(theirs, dict):
        for key, value in theirs.items():
            if key not in ours:
                out.append(f"{path}.{key}: missing")
            else:
                out += missing(value, ours[key], f"{path}.{key}")
    elif isinstance(theirs, list) and theirs:
        if not ours:
            out.append(f"{path}: 1.7.0 has items, ours none")
        for i, item in enumerate(theirs):
            # Alerts pair by type and severity (our list may hold more alerts).
            match = [o for o in ours if _kind(o) == _kind(item)]
            if isinstance(item, dict) and "type" in item:
                match = [o for o in match if o.get("type") == item["type"]]
            if not match:
                out.append(f"{path}[{i}]: no counterpart for {item!r}")
            else:
                out += min((missing(item, o, f"{path}[{i}]") for o in match), key=len)
    return out


def vocabulary(doc: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {
        "status": {doc["status"]},
        "health_score.status": {doc["health_score"]["status"]},
        "health_score.trend": {doc["health_score"]["trend"]},
    }
    for a in doc["alerts"]:
        for key in ("type", "severity", "triggered_by", "trend_direction"):
            found.setdefault(f"alerts[].{key}", set()).add(a[key])
    return found


def make_app(clock: FakeClock) -> FastAPI:
    """The recorder's app (same routes), and 1.7.0's thresholds as the recorder set them."""
    app = FastAPI()

    @app.get("/fast")
    async def fast() -> dict[str, bool]:
        clock.advance(0.001)
        return {"ok": True}

    @app.get("/hooks/webhook")
    async def hook() -> dict[str, bool]:
        clock.advance(0.002)
        return {"ok": True}

    @app.get("/slow")
    async def slow(ms: float) -> dict[str, float]:
        clock.advance(ms / 1000)
        return {"ms": ms}

    @app.get("/fail")
    async def fail() -> None:
        raise HTTPException(status_code=500)

    thresholds = Thresholds(
        p95_warning_ms=50.0,
        p95_critical_ms=100.0,
        error_rate_warning=0.02,  # 1.7.0: error_rate_warning_pct = 2.0
        error_rate_critical=0.05,  # 1.7.0: error_rate_critical_pct = 5.0
    )
    instrument(
        app,
        config=SDKConfig(service="checkout", thresholds=thresholds),
        clock=clock,
        timer=clock,
    )
    return app


async def ours_for(scenario: str) -> dict[str, Any]:
    clock = FakeClock()
    app = make_app(clock)
    async with client(app) as c:
        for path, n in RECORDED["plans"][scenario]:
            for _ in range(n):
                await c.get(path)
        doc: dict[str, Any] = (await c.get("/health/alerts")).json()
    return doc


def test_the_fixture_is_a_real_1_7_0_recording() -> None:
    assert RECORDED["package"] == "fastapi-alertengine==1.7.0"
    assert set(RECORDED["scenarios"]) == {"healthy", "latency_critical", "errors_critical"}
    for doc in RECORDED["scenarios"].values():
        for path, words in vocabulary(doc).items():
            assert words <= VOCABULARY[path], (path, words)


@pytest.mark.parametrize("scenario", ["healthy", "latency_critical", "errors_critical"])
async def test_every_1_7_0_key_is_kept_with_its_kind(scenario: str) -> None:
    theirs = RECORDED["scenarios"][scenario]
    ours = await ours_for(scenario)
    assert missing(theirs, ours) == []
    for path, words in vocabulary(ours).items():
        assert words <= VOCABULARY[path], (path, words)


async def test_the_verdicts_agree_where_1_7_0_is_unambiguous() -> None:
    for scenario, alert_type in (
        ("latency_critical", "latency_spike"),
        ("errors_critical", "error_anomaly"),
    ):
        theirs = RECORDED["scenarios"][scenario]
        ours = await ours_for(scenario)
        assert ours["status"] == theirs["status"] == "critical"
        assert ours["health_score"]["status"] == "critical"  # 1.7.0's word, and its meaning
        assert (alert_type, "critical") in {(a["type"], a["severity"]) for a in ours["alerts"]}
        assert (alert_type, "critical") in {(a["type"], a["severity"]) for a in theirs["alerts"]}
    healthy = await ours_for("healthy")
    assert healthy["status"] == RECORDED["scenarios"]["healthy"]["status"] == "ok"
    assert healthy["health_score"]["status"] == "healthy"
    assert healthy["metrics"]["webhook_p95_ms"] == pytest.approx(2.0, rel=0.02)
    assert healthy["metrics"]["api_p95_ms"] == pytest.approx(1.0, rel=0.02)
    # Ours beside theirs: our own words are still there.
    assert healthy["health_score"]["level"] == "ok"
    assert {"latency_penalty", "error_penalty"} <= set(healthy["health_score"]["components"])


async def test_the_orchestrator_reads_both_vocabularies_alike() -> None:
    for scenario in ("healthy", "latency_critical", "errors_critical"):
        theirs = snapshot_from_health(RECORDED["scenarios"][scenario], observed_at=0.0)
        ours = snapshot_from_health(await ours_for(scenario), observed_at=0.0)
        assert theirs.status == ours.status
    # A 1.7.0-shaped body that only has health_score.status still reads as ok.
    only_inner = dict(RECORDED["scenarios"]["healthy"])
    del only_inner["status"]
    assert snapshot_from_health(only_inner, observed_at=0.0).status == "ok"
