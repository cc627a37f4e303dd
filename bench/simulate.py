"""Governance simulator wall time: 24 h of virtual time, 10 services, 5 s polls.

Each service gets a degradation (errors, latency or unreachable) at a different hour and
two approvers rotate availability, so incidents open, notify, escalate, expire, get
approved and execute (some webhooks fail) throughout the day. Prints the median of a few
runs and the simulated polls per wall second. Target: under 10 s.

    .venv/bin/python bench/simulate.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from alertengine.simulate.run import run_scenario
from alertengine.simulate.scenario import Scenario, parse_scenario

KINDS = (("error_rate", 0.25), ("p95", 3200.0), ("unreachable", None))


def day_scenario(services: int = 10) -> Scenario:
    svcs: list[dict[str, Any]] = []
    for i in range(services):
        kind, value = KINDS[i % len(KINDS)]
        event: dict[str, Any] = {"kind": kind, "at": f"{1 + 2 * i}h", "for": "40m"}
        if value is not None:
            event["value"] = value
        svcs.append(
            {
                "name": f"svc-{i:02d}",
                "baseline": {"p95_ms": 100 + 10 * i, "error_rate": 0.003, "traffic": 700},
                "events": [event, {**event, "at": f"{2 + 2 * i}h"}],
            }
        )
    return parse_scenario(
        {
            "scenario": {"name": "bench-24h-10", "duration": "24h", "step": "5s", "seed": 3},
            "policy": {"token_ttl_s": 1800},
            "services": svcs,
            "approvers": [
                {"id": "alice", "channel": "telegram", "reaction": "4m",
                 "available": [["0h", "8h"], ["16h", "24h"]]},
                {"id": "bob", "channel": "slack", "reaction": "6m",
                 "available": [["8h", "16h"]]},
            ],
            "webhook_failures": [{"service": "svc-03", "mode": "http_503"}],
            "channel_failures": [{"channel": "telegram", "from": "5h", "to": "6h"}],
        }
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sc = day_scenario()
    polls = (int(sc.duration // sc.step) + 1) * len(sc.services)
    times: list[float] = []
    outcome = None
    for _ in range(args.runs):
        t0 = time.perf_counter()
        outcome = asyncio.run(run_scenario(sc))
        times.append(time.perf_counter() - t0)
    assert outcome is not None and outcome.verified
    med = statistics.median(times)
    s = outcome.summary
    print(f"scenario: 24 h virtual, {len(sc.services)} services, step {sc.step:g} s, {polls} polls")
    print(
        f"incidents {s.total('incidents_opened')}, authorized {s.total('authorized')}, "
        f"expired {s.total('expirations')}, escalations {s.total('escalations')}, "
        f"dead-lettered {s.total('dead_lettered')}, ledger entries {s.ledger_entries} (verified)"
    )
    print(
        f"wall time: median {med:.2f} s of {args.runs} runs "
        f"({', '.join(f'{t:.2f}' for t in times)})"
    )
    print(f"throughput: {polls / med:,.0f} simulated polls per wall second; target < 10 s: "
          f"{'OK' if med < 10 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
