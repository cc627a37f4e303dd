from __future__ import annotations

from typing import Any

import pytest

from alertengine.commits import Commit
from alertengine.diagnose import DiagnosisContext, RulesDiagnoser
from alertengine.diagnose.rules import read_signature

OPENED = 1_717_344_000.0


def ctx(snapshot: dict[str, Any], commits: tuple[Commit, ...] = ()) -> DiagnosisContext:
    return DiagnosisContext("t1", "checkout", "inc-1", snapshot, commits, OPENED)


def routes(**p95: float) -> list[dict[str, Any]]:
    return [{"route": k, "p95_ms": v, "error_rate": 0.0, "count": 50} for k, v in p95.items()]


DB_COMMIT = Commit(
    "a1b2c3d" + "0" * 33,
    "Fix checkout query isolation level",
    "John",
    OPENED - 180,
    ("app/db/queries.py",),
)
APP_COMMIT = Commit("b" * 40, "Tweak button", "Ann", OPENED - 300, ("web/button.tsx",))
OLD_DB_COMMIT = Commit("c" * 40, "Old migration", "Bo", OPENED - 3 * 86400, ("x.sql",))


async def test_latency_spike_after_db_commit_blames_the_database() -> None:
    d = await RulesDiagnoser().diagnose(
        ctx(
            {"p95_ms": 2800, "error_rate": 0.01, "sample_size": 187, "baseline_p95_ms": 250},
            (DB_COMMIT, APP_COMMIT),
        )
    )
    assert d.ok and d.category == "database"
    assert "a1b2c3d" in d.cause and "a1b2c3d" in d.suggested_action
    assert any("app/db/queries.py" in e for e in d.evidence)
    assert any("P95 latency 2.8s (baseline 250ms)" == e for e in d.evidence)
    assert d.confidence >= 0.7 and d.model == "rules"


async def test_old_db_commit_is_not_blamed() -> None:
    d = await RulesDiagnoser().diagnose(
        ctx({"p95_ms": 2800, "error_rate": 0.0, "sample_size": 187}, (OLD_DB_COMMIT,))
    )
    assert d.category == "latency"


async def test_one_slow_route_points_at_a_dependency() -> None:
    snap = {
        "p95_ms": 1900,
        "error_rate": 0.0,
        "sample_size": 300,
        "routes": routes(**{"GET /checkout": 4100, "GET /items": 120, "GET /cart": 90}),
    }
    d = await RulesDiagnoser().diagnose(ctx(snap))
    assert d.category == "dependency"
    assert "GET /checkout" in d.cause and "GET /items" not in d.cause


async def test_latency_on_all_routes_without_errors_is_saturation() -> None:
    snap = {
        "p95_ms": 1900,
        "error_rate": 0.0,
        "sample_size": 300,
        "routes": routes(a=1800, b=1900, c=2000),
    }
    d = await RulesDiagnoser().diagnose(ctx(snap))
    assert d.category == "latency"
    assert any("across all 3 routes" in e for e in d.evidence)


async def test_fast_5xx_after_deploy_blames_the_deploy() -> None:
    d = await RulesDiagnoser().diagnose(
        ctx({"p95_ms": 80, "error_rate": 0.19, "sample_size": 200}, (APP_COMMIT,))
    )
    assert d.category == "deployment" and "Roll back bbbbbbb" == d.suggested_action


async def test_5xx_without_deploy() -> None:
    d = await RulesDiagnoser().diagnose(ctx({"p95_ms": 80, "error_rate": 0.19, "sample_size": 99}))
    assert d.category == "server_errors"


async def test_slow_and_failing_is_a_dependency_timeout() -> None:
    d = await RulesDiagnoser().diagnose(ctx({"p95_ms": 5000, "error_rate": 0.3, "sample_size": 99}))
    assert d.category == "dependency"


async def test_4xx_burst_is_client_errors_and_advises_against_restart() -> None:
    snap = {"p95_ms": 90, "error_rate": 0.0, "sample_size": 500, "metrics": {"error_rate_4xx": 0.4}}
    d = await RulesDiagnoser().diagnose(ctx(snap))
    assert d.category == "client_errors" and "restart will not help" in d.suggested_action
    assert "4xx error rate 40%" in d.evidence


async def test_unreachable_target() -> None:
    d = await RulesDiagnoser().diagnose(ctx({"reachable": False}))
    assert d.category == "unreachable" and d.ok


async def test_unclear_signature_has_low_confidence() -> None:
    d = await RulesDiagnoser().diagnose(ctx({"p95_ms": 100, "error_rate": 0.0, "sample_size": 99}))
    assert d.category == "unknown" and d.confidence < 0.5


async def test_few_samples_cap_confidence() -> None:
    d = await RulesDiagnoser().diagnose(
        ctx({"p95_ms": 80, "error_rate": 0.5, "sample_size": 6}, (APP_COMMIT,))
    )
    assert d.category == "deployment" and d.confidence <= 0.4
    assert "only 6 requests sampled" in d.evidence


def test_signature_reads_sdk_metrics_and_alerts() -> None:
    s = read_signature(
        {
            "metrics": {"overall_p95_ms": 700, "error_rate": 0.01, "sample_size": 187},
            "alerts": [{"type": "latency_spike", "severity": "critical"}],
        }
    )
    assert s.p95_ms == 700 and s.sample_size == 187
    assert s.slow  # flagged by the SDK's alert even below the absolute threshold


@pytest.mark.parametrize("garbage", [{"routes": "x", "alerts": 3}, {"metrics": [1]}, {}])
async def test_garbage_snapshot_never_raises(garbage: dict[str, Any]) -> None:
    d = await RulesDiagnoser().diagnose(ctx(garbage))
    assert d.ok and d.category == "unknown"


async def test_same_input_same_output() -> None:
    c = ctx({"p95_ms": 2800, "error_rate": 0.19, "sample_size": 187}, (DB_COMMIT,))
    assert await RulesDiagnoser().diagnose(c) == await RulesDiagnoser().diagnose(c)
