"""The default diagnoser: deterministic, offline rules over the metrics signature.

It reads what kind of degradation this is (latency only, a 5xx burst, a 4xx burst, one
route or all, the target not answering) and whether a recent commit touched database
files, and explains it with the evidence it used. Same input, same output, no network.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alertengine.commits import DEFAULT_RISKY_GLOBS, Commit, FlaggedCommit, flag_risky
from alertengine.diagnose.base import Diagnosis, DiagnosisContext, failed


@dataclass(frozen=True)
class Thresholds:
    """What counts as "high". Tuned for typical JSON APIs; override per tenant."""

    slow_p95_ms: float = 1000.0  # absolute: slower than this is a latency problem
    latency_ratio: float = 2.0  # relative: this many times the baseline p95
    server_error_rate: float = 0.05
    client_error_rate: float = 0.20
    route_outlier_ratio: float = 3.0  # one route this many times slower than the others
    min_route_requests: int = 5
    min_samples: int = 20  # fewer requests than this: lower confidence
    commit_lookback_s: float = 2 * 3600.0


@dataclass(frozen=True)
class _Route:
    name: str
    p95_ms: float | None
    error_rate: float | None
    count: int


@dataclass(frozen=True)
class Signature:
    """The facts the rules decide on, pulled out of a loosely shaped snapshot."""

    reachable: bool
    p95_ms: float | None
    baseline_p95_ms: float | None
    error_rate: float | None
    client_error_rate: float | None
    sample_size: int
    slow: bool
    server_errors: bool
    client_errors: bool
    slow_routes: tuple[str, ...]
    erroring_routes: tuple[str, ...]
    route_count: int
    alert_types: tuple[str, ...]


def _num(*values: Any) -> float | None:
    """The first finite number among ``values`` (NaN, infinities and huge ints are noise)."""
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            try:
                f = float(v)
            except OverflowError:
                continue
            if math.isfinite(f):
                return f
    return None


def _routes(raw: Any) -> list[_Route]:
    # The SDK may give a list of route objects or a mapping route -> stats.
    items: list[tuple[str, Mapping[str, Any]]] = []
    if isinstance(raw, Mapping):
        items = [(str(k), v) for k, v in raw.items() if isinstance(v, Mapping)]
    elif isinstance(raw, list):
        for r in raw:
            if isinstance(r, Mapping):
                name = r.get("route") or r.get("path") or r.get("name") or "?"
                if r.get("method") and not str(name).startswith(str(r["method"])):
                    name = f"{r['method']} {name}"
                items.append((str(name), r))
    out: list[_Route] = []
    for name, stats in items:
        count = _num(stats.get("count"), stats.get("requests"), stats.get("sample_size"))
        out.append(
            _Route(
                name=name,
                p95_ms=_num(stats.get("p95_ms"), stats.get("overall_p95_ms")),
                error_rate=_num(stats.get("error_rate"), stats.get("server_error_rate")),
                count=int(count) if count is not None else 0,
            )
        )
    return out


def read_signature(snapshot: Mapping[str, Any], t: Thresholds = Thresholds()) -> Signature:
    """Classify a health snapshot; tolerant of missing fields (absent means "unknown")."""
    raw_metrics = snapshot.get("metrics")
    metrics: Mapping[str, Any] = raw_metrics if isinstance(raw_metrics, Mapping) else {}
    p95 = _num(snapshot.get("p95_ms"), metrics.get("overall_p95_ms"), metrics.get("p95_ms"))
    baseline = _num(snapshot.get("baseline_p95_ms"), metrics.get("baseline_p95_ms"))
    err = _num(snapshot.get("error_rate"), metrics.get("error_rate"))
    client = _num(
        snapshot.get("client_error_rate"),
        metrics.get("client_error_rate"),
        metrics.get("error_rate_4xx"),
    )
    samples = _num(snapshot.get("sample_size"), metrics.get("sample_size"))
    raw_alerts = snapshot.get("alerts")
    alert_types = tuple(
        str(a.get("type"))
        for a in (raw_alerts if isinstance(raw_alerts, list) else [])
        if isinstance(a, Mapping) and a.get("type")
    )

    slow = p95 is not None and (
        p95 >= t.slow_p95_ms
        or (baseline is not None and baseline > 0 and p95 >= t.latency_ratio * baseline)
    )
    slow = slow or "latency_spike" in alert_types

    routes = [r for r in _routes(snapshot.get("routes")) if r.count >= t.min_route_requests]
    slow_routes: list[str] = []
    timed = [r for r in routes if r.p95_ms is not None]
    for r in timed:
        others = [o.p95_ms for o in timed if o is not r and o.p95_ms is not None]
        if others and r.p95_ms is not None:
            typical = statistics.median(others)
            if r.p95_ms >= t.slow_p95_ms and r.p95_ms >= t.route_outlier_ratio * max(typical, 1.0):
                slow_routes.append(r.name)
    erroring = [
        r.name for r in routes if r.error_rate is not None and r.error_rate >= t.server_error_rate
    ]
    return Signature(
        reachable=snapshot.get("reachable", True) is not False,
        p95_ms=p95,
        baseline_p95_ms=baseline,
        error_rate=err,
        client_error_rate=client,
        sample_size=int(samples) if samples is not None else 0,
        slow=slow,
        server_errors=err is not None and err >= t.server_error_rate,
        client_errors=client is not None and client >= t.client_error_rate,
        slow_routes=tuple(slow_routes),
        erroring_routes=tuple(erroring),
        route_count=len(routes),
        alert_types=alert_types,
    )


def _secs(ms: float) -> str:
    return f"{ms / 1000:.1f}s" if ms >= 1000 else f"{ms:.0f}ms"


def _ago(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


class RulesDiagnoser:
    """Deterministic default diagnoser. ``name`` is what the ledger records as the model."""

    name = "rules"

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        risky_globs: Sequence[str] = DEFAULT_RISKY_GLOBS,
    ) -> None:
        self._t = thresholds or Thresholds()
        self._globs = tuple(risky_globs)

    async def diagnose(self, ctx: DiagnosisContext) -> Diagnosis:
        try:
            return self.explain(ctx)
        except Exception as exc:  # never raise: a diagnosis is advisory
            return failed(self.name, f"rules failed: {type(exc).__name__}: {exc}")

    def _recent(self, ctx: DiagnosisContext) -> list[FlaggedCommit]:
        window_start = ctx.opened_at - self._t.commit_lookback_s
        picked: list[Commit] = [
            c for c in ctx.commits if window_start <= c.timestamp <= ctx.opened_at + 60
        ]
        picked.sort(key=lambda c: c.timestamp, reverse=True)
        return flag_risky(picked, self._globs)

    def explain(self, ctx: DiagnosisContext) -> Diagnosis:
        """The pure rule table (``diagnose`` wraps it so it can never raise)."""
        s = read_signature(ctx.snapshot, self._t)
        recent = self._recent(ctx)
        risky = next((f for f in recent if f.risky), None)
        latest = recent[0] if recent else None

        evidence: list[str] = []
        if s.p95_ms is not None:
            base = f" (baseline {_secs(s.baseline_p95_ms)})" if s.baseline_p95_ms else ""
            evidence.append(f"P95 latency {_secs(s.p95_ms)}{base}")
        if s.error_rate is not None:
            evidence.append(f"5xx error rate {s.error_rate:.0%}")
        if s.client_error_rate is not None and s.client_errors:
            evidence.append(f"4xx error rate {s.client_error_rate:.0%}")
        if s.slow_routes:
            evidence.append(f"slow route(s) {', '.join(s.slow_routes)} of {s.route_count}")
        elif s.slow and s.route_count > 1:
            evidence.append(f"latency is up across all {s.route_count} routes")
        if s.erroring_routes and s.server_errors:
            evidence.append(f"5xx concentrated on {', '.join(s.erroring_routes[:3])}")
        if risky is not None:
            ago = _ago(ctx.opened_at - risky.commit.timestamp)
            evidence.append(
                f"commit {risky.commit.short_sha} ({ago} before) touched "
                f"{', '.join(risky.risky_files[:3])}"
            )
        elif latest is not None:
            ago = _ago(ctx.opened_at - latest.commit.timestamp)
            evidence.append(f"commit {latest.commit.short_sha} deployed {ago} before")

        category, cause, action, confidence = self._rule(s, risky, latest)
        if s.sample_size and s.sample_size < self._t.min_samples:
            evidence.append(f"only {s.sample_size} requests sampled")
            confidence = min(confidence, 0.4)
        return Diagnosis(
            category=category,
            cause=cause,
            evidence=tuple(evidence),
            suggested_action=action,
            confidence=round(confidence, 2),
            model=self.name,
        )

    @staticmethod
    def _rule(
        s: Signature, risky: FlaggedCommit | None, latest: FlaggedCommit | None
    ) -> tuple[str, str, str, float]:
        if not s.reachable:
            if latest is not None:
                return (
                    "deployment",
                    f"The service stopped answering after deploy {latest.commit.short_sha}.",
                    f"Roll back {latest.commit.short_sha} or restart the service",
                    0.6,
                )
            return (
                "unreachable",
                "The service does not answer health checks: process down, host or "
                "network path broken.",
                "Restart the service and check its host and load balancer",
                0.6,
            )
        if s.slow and risky is not None:
            sha = risky.commit.short_sha
            return (
                "database",
                f"Slow database work since deploy {sha}, which touched database/query "
                "files: queries holding connections until the pool is exhausted.",
                f"Roll back {sha} or restart the worker pool to release connections",
                0.75 if not s.slow_routes else 0.7,
            )
        if s.slow and s.slow_routes and len(s.slow_routes) < max(2, s.route_count):
            routes = ", ".join(s.slow_routes)
            return (
                "dependency",
                f"Only {routes} is slow while other routes are healthy: a dependency or "
                "query specific to that route.",
                f"Check the downstream calls and queries behind {routes}",
                0.6,
            )
        if s.slow and s.server_errors:
            return (
                "dependency",
                "Requests slow down and then fail with 5xx: calls to a downstream "
                "dependency are timing out, or the connection pool is exhausted.",
                "Restart the worker pool and check downstream dependency health",
                0.6,
            )
        if s.server_errors and latest is not None:
            sha = latest.commit.short_sha
            return (
                "deployment",
                f"Fast 5xx failures right after deploy {sha}: most likely a code defect.",
                f"Roll back {sha}",
                0.7,
            )
        if s.server_errors:
            return (
                "server_errors",
                "A burst of 5xx errors without a latency rise: an unhandled error path or "
                "bad state in the workers.",
                "Check the error logs of the failing routes; restart the workers if state is bad",
                0.5,
            )
        if s.slow:
            return (
                "latency",
                "Latency is up across the service without errors: saturation (workers, "
                "CPU, connection pool) or a shared slow dependency.",
                "Restart the worker pool or add capacity",
                0.55,
            )
        if s.client_errors:
            return (
                "client_errors",
                "Clients are being refused (4xx): a client release, an auth or config "
                "change, or abusive traffic.",
                "Check auth configuration and recent client releases; a restart will not help",
                0.6,
            )
        return (
            "unknown",
            "No clear signature in the metrics.",
            "Watch the next health checks; no action suggested yet",
            0.2,
        )
