"""Time from restart to EXECUTED after a SIGKILL mid-execution (target: 5 s or less).

Real processes, default settings: ``alertengine serve`` on a SQLite file, a local receiver
that records every call. Each run: push bad health until an incident is VALIDATED, approve
it through the real confirm route, SIGKILL the orchestrator at the chosen point, start it
again, and time from the new process's spawn to the EXECUTED entry in the ledger. Every run
also checks one execution (one Idempotency-Key acted on once) and ``ledger verify``.

    .venv/bin/python bench/restart.py [--runs 5] [--point during_call|before_call|after_call]

``during_call`` (default) needs no fault injection: the receiver holds the first call and
the process is killed while it waits. The others stop the executor at that point with
``ALERTENGINE_FAULT_PAUSE`` (test-only) before the kill.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults.harness import (
    Deployment,
    FaultReceiver,
    assert_one_execution,
    wait_log,
)
from tests.scale.cluster import until


async def one_run(tmp: Path, point: str) -> tuple[float, float]:
    """(restart -> EXECUTED, restart -> serving) in seconds."""
    rx = FaultReceiver(hold_first=point == "during_call")
    d = Deployment(tmp, rx)
    try:
        first = d.start(**({} if point == "during_call" else {"ALERTENGINE_FAULT_PAUSE": point}))
        await d.ready(first)
        await d.mint_key()
        token = await d.validated_and_asked(first)
        assert (await d.confirm(token)).status_code == 200
        if point == "during_call":

            async def called() -> bool:
                return bool(rx.calls)

            await until(called, 30, "no call", 0.02)
        else:
            await wait_log(first, f"execution paused at {point}", 30)
        first.kill()
        restarted = time.time()
        second = d.start()
        executed = await d.wait_stage("EXECUTED", 120, second)
        await d.ready(second)
        serving = time.time() - restarted
        assert_one_execution(await d.entries(), rx)
        assert d.cli("ledger", "verify").returncode == 0
        return executed.timestamp - restarted, serving
    finally:
        d.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--point", default="during_call",
                    choices=["during_call", "before_call", "after_call"])  # fmt: skip
    args = ap.parse_args()
    took: list[float] = []
    ready: list[float] = []
    for n in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="ae-restart-") as tmp:
            t, r = await one_run(Path(tmp), args.point)
        took.append(t)
        ready.append(r)
        print(f"run {n + 1}: EXECUTED {t:.2f} s after the restart (serving after {r:.2f} s)")
    print(
        f"\nrestart -> EXECUTED after SIGKILL at {args.point}, {args.runs} runs: "
        f"median {statistics.median(took):.2f} s, min {min(took):.2f} s, max {max(took):.2f} s"
        f" (target <= 5 s); restart -> serving: median {statistics.median(ready):.2f} s"
    )


if __name__ == "__main__":
    asyncio.run(main())
