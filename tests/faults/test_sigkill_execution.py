"""SIGKILL an ``alertengine serve`` mid-execution, at three points, and restart it.

* ``before_call``: AUTHORIZED, the attempt ledgered as started, nothing sent yet;
* ``during_call``: the receiver got the call, its answer never reached the ledger;
* ``after_call``: the success is ledgered, EXECUTED is not.

Each time the restarted process takes the dead one's execution lease over at once (its pid
is gone) and the incident is EXECUTED within 5 s of the restart, at default settings; the
receiver acts once, on one Idempotency-Key; ``alertengine ledger verify`` passes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.harness import (
    RESTART_TO_EXECUTED_S,
    Deployment,
    FaultReceiver,
    assert_one_execution,
    wait_log,
)

pytestmark = [pytest.mark.slow]

#: receiver calls expected in all, per kill point (the during-call one is sent again)
CALLS = {"before_call": 1, "during_call": 2, "after_call": 1}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("point", ["before_call", "during_call", "after_call"])
async def test_sigkill_mid_execution_then_restart_executes_once_within_5_s(
    point: str, tmp_path: Path
) -> None:
    rx = FaultReceiver(hold_first=point == "during_call")
    d = Deployment(tmp_path, rx)
    try:
        pause = {} if point == "during_call" else {"ALERTENGINE_FAULT_PAUSE": point}
        first = d.start(**pause)
        await d.ready(first)
        await d.mint_key()
        token = await d.validated_and_asked(first)
        r = await d.confirm(token)
        assert r.status_code == 200, r.text
        if point == "during_call":
            await wait_call(rx, first)
        else:
            await wait_log(first, f"execution paused at {point}", 30)
        assert len(rx.calls) == (0 if point == "before_call" else 1)
        first.kill()

        restarted_at = time.time()
        second = d.start()
        executed = await d.wait_stage("EXECUTED", 60, second)
        took = executed.timestamp - restarted_at
        assert took <= RESTART_TO_EXECUTED_S, f"EXECUTED {took:.1f} s after the restart"
        await d.ready(second)

        entries = await d.entries()
        assert_one_execution(entries, rx)
        assert len(rx.calls) == CALLS[point]
        starts = [e for e in entries if e.kind == "execution" and e.decision == "started"]
        if point != "after_call":  # the restarted process started its own attempt
            assert len(starts) == 2
            assert f"process {first.pid} " in starts[1].data["took_over"]
            assert "is gone" in starts[1].data["took_over"]
        else:  # the success was ledgered: it only recorded EXECUTED, no second call
            assert len(starts) == 1
        verified = d.cli("ledger", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        d.close()


async def wait_call(rx: FaultReceiver, p: object) -> None:
    from tests.scale.cluster import until

    async def called() -> bool:
        return bool(rx.calls)

    await until(called, 30, "the receiver got no call")
