"""/metrics by the book: built by prometheus_client, checked by the real ``promtool``, base
units, quantiles as a summary, OpenMetrics when the scraper asks for it."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from tests.sdk.helpers import FakeClock, client
from tests.sdk.test_app import make_app


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:  # a missing tool must fail, never skip: `make test` installs it
        pytest.fail("promtool is not installed: run scripts/ensure-system-deps.sh (prometheus)")
    return found


async def scrape(accept: str | None = None) -> tuple[str, str]:
    clock = FakeClock()
    app, _ = make_app(clock, prometheus=True)
    async with client(app) as c:
        for i in range(20):
            await c.get(f"/items/{i}")
            await c.get("/work?ms=250")
        await c.get("/work?ms=5&status=503")
        await c.get("/nowhere")
        r = await c.get("/metrics", headers={"accept": accept} if accept else {})
    assert r.status_code == 200
    return r.text, r.headers["content-type"]


async def test_promtool_accepts_the_exposition() -> None:
    text, ctype = await scrape()
    assert ctype.startswith("text/plain; version=0.0.4")
    check = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    # promtool prints lint findings and exits non-zero on any of them.
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "" and check.stderr.strip() == ""


async def test_latency_is_a_summary_in_seconds() -> None:
    text, _ = await scrape()
    families = {f.name: f for f in text_families(text)}
    assert "alertengine_window_latency_ms" not in text  # the old abbreviated unit is gone
    window = families["alertengine_window_latency_seconds"]
    assert window.type == "summary"
    samples = {(s.name, s.labels.get("quantile")): s.value for s in window.samples}
    assert samples[("alertengine_window_latency_seconds", "0.95")] == pytest.approx(0.25, rel=0.01)
    assert samples[("alertengine_window_latency_seconds_count", None)] == 42
    route = families["alertengine_route_latency_seconds"]
    by_route = {
        s.labels["route"]: s.value
        for s in route.samples
        if s.name.endswith("_count") and s.labels["service"] == "checkout"
    }
    assert by_route["/items/{item_id}"] == 20 and by_route["/work"] == 21
    ratio = families["alertengine_window_error_ratio"]
    errors = {s.labels["class"]: s.value for s in ratio.samples}
    assert errors["5xx"] == pytest.approx(1 / 42, abs=1e-4)
    assert errors["4xx"] == pytest.approx(1 / 42, abs=1e-4)
    processes = {
        s.labels["state"]: s.value for s in families["alertengine_window_processes"].samples
    }
    assert processes == {"running": 1.0, "exited": 0.0}
    recorded = families["alertengine_requests_recorded"]
    assert recorded.type == "counter"
    assert recorded.samples[0].name == "alertengine_requests_recorded_total"
    assert recorded.samples[0].value == 42


async def test_openmetrics_when_the_scraper_asks() -> None:
    text, ctype = await scrape("application/openmetrics-text; version=1.0.0")
    assert ctype.startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["alertengine_window_latency_seconds"].unit == "seconds"
    assert families["alertengine_window_latency_seconds"].type == "summary"
