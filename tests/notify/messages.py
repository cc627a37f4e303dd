"""Shared incident fixtures for the notify tests (the README's checkout example)."""

from __future__ import annotations

from alertengine.commits import Commit, flag_risky
from alertengine.diagnose import Diagnosis
from alertengine.diagnose.council import judge
from alertengine.notify.render import IncidentMessage

NOW = 1_717_344_000.0
COMMIT = Commit(
    "a1b2c3d4e5f6" + "0" * 28,
    "Fix checkout query isolation level\n\nREAD COMMITTED",
    "John",
    NOW - 180,
    ("app/db/queries.py",),
)
DB = Diagnosis(
    "database",
    "Database connection pool exhausted — connections not being released after query timeout.",
    ("P95 2.8s", "commit a1b2c3d touched app/db/queries.py"),
    "Restart checkout worker pool",
    0.87,
    "claude:claude-haiku-4-5:latency_database",
)
NET = Diagnosis(
    "dependency",
    "Upstream API timeout",
    ("payments p95 9s",),
    "Fail over to the backup payment provider",
    0.76,
    "claude:claude-sonnet-4-6:network_dependency",
)
POOL = Diagnosis(
    "database", "Connection pool exhausted", (), "Restart checkout worker pool", 0.82, "a"
)


def incident(**kw: object) -> IncidentMessage:
    base: dict[str, object] = {
        "tenant_id": "tenant-xyz789",
        "service": "Checkout API",
        "incident_id": "inc-7f3a",
        "stage": "VALIDATED",
        "now": NOW,
        "score": 23,
        "p95_ms": 2847.3,
        "error_rate": 0.19,
        "diagnosis": DB,
        "commits": tuple(flag_risky([COMMIT])),
        "approve_url": "https://alerts.example.com/action/recover?token=tok-123",
        "expires_at": NOW + 300,
        "action": "restart checkout worker pool",
    }
    base.update(kw)
    return IncidentMessage(**base)  # type: ignore[arg-type]


DISSENT = judge(POOL, NET)
AGREE = judge(DB, POOL)
