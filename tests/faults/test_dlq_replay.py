"""``alertengine dlq replay`` against a real ``alertengine serve``, running and stopped.

The webhook fails every attempt, the incident is dead-lettered (WEBHOOK_FAILED), the
operator replays it. Replay asks for a *fresh* approval: the old link is refused, and new
links reach the approvers within one loop interval of the replay (orchestrator running) or
of its start (orchestrator stopped during the replay), with an escalation entry that says
what happened; only then does one approval run the webhook once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.faults.harness import Deployment, FaultReceiver, assert_one_execution
from tests.scale.cluster import Proc, until

pytestmark = [pytest.mark.slow]

#: the orchestrator's default loop interval (docs/orchestrator.md)
LOOP_INTERVAL_S = 5.0
#: a loaded 2-core CI box: a tick may start a little late
SLACK_S = 2.0


async def dead_lettered(d: Deployment) -> tuple[Proc, str]:
    """Start, get an incident approved, let the webhook fail every attempt."""
    p = d.start()
    await d.ready(p)
    await d.mint_key()
    token = await d.validated_and_asked(p)
    r = await d.confirm(token)
    assert r.status_code == 200, r.text
    await d.wait_stage("WEBHOOK_FAILED", 60, p)
    listed = d.cli("dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (doc,) = json.loads(listed.stdout)
    assert doc["status"] == "dead" and doc["attempts"] == 3
    return p, token


@pytest.mark.timeout(240)
@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
async def test_dlq_replay_sends_fresh_links_then_one_approval_executes_once(
    running: bool, tmp_path: Path
) -> None:
    rx = FaultReceiver(fail=True)
    d = Deployment(tmp_path, rx)
    try:
        p, old_token = await dead_lettered(d)
        failed_calls = len(rx.calls)
        assert failed_calls == 3 and len(rx.messages) == 1
        dlq_id = json.loads(d.cli("dlq", "list", "--json").stdout)[0]["id"]
        if not running:
            p.stop()
        replay = d.cli("dlq", "replay", dlq_id)
        assert replay.returncode == 0, replay.stderr
        assert "VALIDATED" in replay.stdout and "new approval links" in replay.stdout
        replayed_at = time.time()
        if not running:
            p = d.start()

        async def new_message() -> bool:
            assert p.p.poll() is None, p.tail()
            return len(rx.messages) >= 2

        await until(new_message, 60, f"no fresh link after the replay:\n{p.tail()}", 0.05)
        took = time.time() - replayed_at
        assert took <= LOOP_INTERVAL_S + SLACK_S, f"fresh link {took:.1f} s after the replay"
        await d.ready(p)

        entries = await d.entries()
        asked = [e for e in entries if e.kind == "escalation"]
        assert len(asked) == 1, [e.reason for e in asked]  # one replica, one round of links
        assert asked[0].decision == "replayed"
        assert f"dead-letter {dlq_id} was replayed" in asked[0].reason
        assert "failed 3 time(s)" in asked[0].reason
        assert "no approver could be reached" not in asked[0].reason
        issued = [e for e in entries if e.kind == "token" and e.decision == "issued"]
        assert len(issued) == 2 and issued[1].seq > asked[0].seq

        # The old link is refused (and that is ledgered); the fresh one authorizes.
        old = await d.confirm(old_token)
        assert old.status_code != 200
        rx.fail = False
        new = await d.confirm(rx.approve_token())
        assert new.status_code == 200, new.text
        await d.wait_stage("EXECUTED", 30, p)
        entries = await d.entries()
        assert [e.stage for e in entries if e.kind == "transition"].count("AUTHORIZED") == 2
        assert_one_execution(entries, rx)  # one successful call, on the new key
        assert rx.calls[-1].key != rx.calls[0].key  # a fresh approval, a fresh key
        assert len(rx.calls) == failed_calls + 1
        verified = d.cli("ledger", "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        d.close()
