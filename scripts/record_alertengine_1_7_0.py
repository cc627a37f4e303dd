"""Record real ``/health/alerts`` answers of fastapi-alertengine 1.7.0 into a test fixture.

Run with the bench venv, where the real package lives (never in .venv: its wheel ships
top-level ``orchestrator`` and ``tests`` packages):

    scripts/bench-venv.sh
    .bench-venv/bin/python scripts/record_alertengine_1_7_0.py

Each scenario is a fresh app instrumented by the real 1.7.0 ``instrument()`` (memory mode:
the Redis URL points at a closed port), driven through its real middleware, then polled.
tests/sdk/test_compat_1_7_0.py drives ours through the same scenarios and compares key sets
and value vocabularies with what is recorded here.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from fastapi_alertengine import AlertConfig, instrument

OUT = Path(__file__).resolve().parent.parent / "tests/sdk/fixtures/fastapi_alertengine_1_7_0.json"

#: What each scenario sends: (path, requests). Latencies are real sleeps; thresholds are small
#: so the scenarios stay short.
SCENARIOS: dict[str, list[tuple[str, int]]] = {
    "healthy": [("/fast", 40), ("/hooks/webhook", 10)],
    "latency_critical": [("/slow?ms=120", 25)],
    "errors_critical": [("/fast", 20), ("/fail", 20)],
}


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # nothing listens: 1.7.0 falls back to memory mode


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/fast")
    async def fast() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/hooks/webhook")
    async def hook() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/slow")
    async def slow(ms: float) -> dict[str, float]:
        await asyncio.sleep(ms / 1000)
        return {"ms": ms}

    @app.get("/fail")
    async def fail() -> None:
        raise HTTPException(status_code=500)

    config = AlertConfig(
        redis_url=closed_port_url(),
        service_name="checkout",
        instance_id="recorder-1",
        p95_warning_ms=50.0,
        p95_critical_ms=100.0,
    )
    instrument(app, config=config)
    return app


def record(plan: list[tuple[str, int]]) -> dict[str, Any]:
    app = make_app()
    with TestClient(app) as client:  # runs startup: 1.7.0's drain task
        for path, n in plan:
            for _ in range(n):
                client.get(path)
        # 1.7.0 drains its queue in a background task: give it a few of its ticks.
        doc: dict[str, Any] = {}
        for _ in range(50):
            doc = client.get("/health/alerts").json()
            if doc["metrics"]["sample_size"] >= sum(n for _, n in plan):
                break
            client.portal.call(asyncio.sleep, 0.05)  # type: ignore[union-attr]
        return doc


def main() -> int:
    version = importlib.metadata.version("fastapi-alertengine")
    if version != "1.7.0":
        print(f"needs fastapi-alertengine 1.7.0, found {version}", file=sys.stderr)
        return 2
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        # 1.7.0 keeps one engine per process (get_alert_engine is a singleton): one scenario
        # per child process, so no scenario sees another's traffic.
        print(json.dumps(record(SCENARIOS[sys.argv[2]])))
        return 0
    scenarios = {}
    for name in SCENARIOS:
        child = subprocess.run(
            [sys.executable, __file__, "--one", name],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        scenarios[name] = json.loads(child.stdout.strip().splitlines()[-1])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "package": f"fastapi-alertengine=={version}",
                "recorded_by": "scripts/record_alertengine_1_7_0.py",
                "plans": SCENARIOS,
                "scenarios": scenarios,
            },
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    for name, doc in scenarios.items():
        print(name, doc["status"], doc["health_score"]["status"], doc["metrics"]["sample_size"])
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
