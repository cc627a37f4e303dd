"""``/metrics``: the SDK's window as a ``prometheus_client`` custom collector.

The exposition is built by ``prometheus_client`` (never by hand), so names, escaping and content
negotiation (text 0.0.4 or OpenMetrics, from the scrape's ``Accept`` header) follow the book;
the suite runs ``promtool check metrics`` over it. Base units: seconds and ratios.

Window figures (latency summaries, error ratios, processes, gap) come from the same merged
answer as ``/health/alerts``, so in multi-process or shared-store mode they cover every process
the health answer covers. The two counters are this process's own (labelled ``instance_id``):
a counter cannot be merged across processes that come and go without going backwards.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms"))


def _num(v: Any) -> float:
    return math.nan if v is None else float(v)


def _seconds(ms: Any) -> float:
    return math.nan if ms is None else float(ms) / 1000.0


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape shows: the health answer and this process's counters."""

    report: dict[str, Any]
    recorded_total: int
    dropped_total: int
    instance_id: str


def _summary(name: str, doc: str, labels: dict[str, str], stats: dict[str, Any]) -> Metric:
    """A summary sample set (quantiles, _count, _sum) for one label set, in seconds."""
    m = Metric(name, doc, "summary", unit="seconds")
    _add_summary(m, labels, stats)
    return m


def _add_summary(m: Metric, labels: dict[str, str], stats: dict[str, Any]) -> None:
    count = int(stats.get("count") or 0)
    mean = stats.get("mean_ms")
    for q, key in QUANTILES:
        m.add_sample(m.name, {**labels, "quantile": q}, _seconds(stats.get(key)))
    m.add_sample(m.name + "_count", labels, float(count))
    m.add_sample(m.name + "_sum", labels, 0.0 if mean is None else mean * count / 1000.0)


class WindowCollector(Collector):
    """A custom collector over one :class:`Snapshot` of the SDK's window."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        r = snap.report
        svc = str(r.get("service", ""))
        m = r.get("metrics", {})
        hs = r.get("health_score", {})
        win = r.get("window", {})

        recorded = CounterMetricFamily(
            "alertengine_requests_recorded",
            "Requests recorded by this process.",
            labels=["service", "instance_id"],
        )
        recorded.add_metric([svc, snap.instance_id], snap.recorded_total)
        yield recorded
        dropped = CounterMetricFamily(
            "alertengine_events_dropped",
            "Requests this process lost to store-outage buffer overflow.",
            labels=["service", "instance_id"],
        )
        dropped.add_metric([svc, snap.instance_id], snap.dropped_total)
        yield dropped

        score = GaugeMetricFamily(
            "alertengine_health_score",
            "Health score 0-100 over the window (NaN when unknown).",
            labels=["service"],
        )
        score.add_metric([svc], _num(hs.get("score")))
        yield score

        overall = {
            "count": m.get("sample_size"),
            "mean_ms": m.get("mean_ms"),
            "p50_ms": m.get("p50_ms"),
            "p95_ms": m.get("overall_p95_ms"),
            "p99_ms": m.get("p99_ms"),
        }
        yield _summary(
            "alertengine_window_latency_seconds",
            "Request latency over the rolling window, all routes.",
            {"service": svc},
            overall,
        )
        routes = Metric(
            "alertengine_route_latency_seconds",
            "Request latency over the rolling window, per route template (busiest routes).",
            "summary",
            unit="seconds",
        )
        for route, stats in r.get("routes", {}).items():
            _add_summary(routes, {"service": svc, "route": route}, stats)
        yield routes

        errors = GaugeMetricFamily(
            "alertengine_window_error_ratio",
            "Share of requests in the window answered 5xx (class=5xx) or 4xx (class=4xx).",
            labels=["service", "class"],
        )
        errors.add_metric([svc, "5xx"], _num(m.get("error_rate_5xx")))
        errors.add_metric([svc, "4xx"], _num(m.get("error_rate_4xx")))
        yield errors

        processes = GaugeMetricFamily(
            "alertengine_window_processes",
            "Processes whose requests the window covers (state=exited: gone, data kept).",
            labels=["service", "state"],
        )
        exited = int(win.get("processes_exited") or 0)
        processes.add_metric([svc, "running"], float(int(win.get("processes") or 0) - exited))
        processes.add_metric([svc, "exited"], float(exited))
        yield processes

        gap = GaugeMetricFamily(
            "alertengine_window_requests_missing",
            "Requests recorded by some process that never reached this window (a data gap).",
            labels=["service"],
        )
        gap.add_metric([svc], float((win.get("gap") or {}).get("requests_missing") or 0))
        yield gap


def exposition(snapshot: Snapshot, accept: str) -> tuple[bytes, str]:
    """The body and its content type, negotiated from the scrape's ``Accept`` header."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WindowCollector(snapshot))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
