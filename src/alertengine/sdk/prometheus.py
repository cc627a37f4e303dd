"""Prometheus text exposition (format 0.0.4) of the current window, for teams that scrape."""

from __future__ import annotations

from typing import Any


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: Any) -> str:
    return "NaN" if v is None else repr(float(v))


def render(report: dict[str, Any], recorded_total: int, dropped_total: int) -> str:
    svc = _esc(str(report.get("service", "")))
    m = report.get("metrics", {})
    hs = report.get("health_score", {})
    lines = [
        "# HELP alertengine_requests_recorded_total Requests recorded by this replica.",
        "# TYPE alertengine_requests_recorded_total counter",
        f'alertengine_requests_recorded_total{{service="{svc}"}} {recorded_total}',
        "# HELP alertengine_events_dropped_total Requests lost to store-outage buffer overflow.",
        "# TYPE alertengine_events_dropped_total counter",
        f'alertengine_events_dropped_total{{service="{svc}"}} {dropped_total}',
        "# HELP alertengine_health_score Health score 0-100 (NaN when unknown).",
        "# TYPE alertengine_health_score gauge",
        f'alertengine_health_score{{service="{svc}"}} {_num(hs.get("score"))}',
        "# HELP alertengine_window_latency_ms Latency quantiles over the rolling window.",
        "# TYPE alertengine_window_latency_ms gauge",
    ]
    for q, key in (("0.5", "p50_ms"), ("0.95", "overall_p95_ms"), ("0.99", "p99_ms")):
        lines.append(
            f'alertengine_window_latency_ms{{service="{svc}",route="",quantile="{q}"}} '
            f"{_num(m.get(key))}"
        )
    routes = report.get("routes", {})
    for route, r in routes.items():
        rl = _esc(route)
        for q, key in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
            lines.append(
                f'alertengine_window_latency_ms{{service="{svc}",route="{rl}",quantile="{q}"}} '
                f"{_num(r.get(key))}"
            )
    lines += [
        "# HELP alertengine_window_requests Requests in the rolling window.",
        "# TYPE alertengine_window_requests gauge",
        f'alertengine_window_requests{{service="{svc}",route=""}} {m.get("sample_size") or 0}',
    ]
    for route, r in routes.items():
        lines.append(
            f'alertengine_window_requests{{service="{svc}",route="{_esc(route)}"}} {r["count"]}'
        )
    lines += [
        "# HELP alertengine_window_error_rate Share of 5xx (class=5xx) or 4xx in the window.",
        "# TYPE alertengine_window_error_rate gauge",
        f'alertengine_window_error_rate{{service="{svc}",class="5xx"}} '
        f"{_num(m.get('error_rate_5xx'))}",
        f'alertengine_window_error_rate{{service="{svc}",class="4xx"}} '
        f"{_num(m.get('error_rate_4xx'))}",
    ]
    return "\n".join(lines) + "\n"
