"""Execution against a real webhook receiver on 127.0.0.1: retries, DLQ, replay, signing."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from alertengine.clock import VirtualClock
from alertengine.engine import TransitionRefused
from alertengine.execute import DLQ, dlq_list, dlq_replay, idempotency_key, sign, verify
from alertengine.incidents import Stage
from tests.authorize.harness import (
    ALICE,
    WEBHOOK_SECRET,
    Receiver,
    System,
    add_tenant,
    authorized,
    build_system,
    entries,
    validated_incident,
)


async def run_with_virtual_time(sys: System, clock: VirtualClock, i: str):  # type: ignore[no-untyped-def]
    assert sys.executor is not None
    task = asyncio.ensure_future(sys.executor.run("acme", i))
    while not task.done():
        await asyncio.sleep(0.01)
        if clock.next_deadline is not None:
            await clock.advance(clock.next_deadline - clock.now())
    return task.result()


def test_sign_and_verify() -> None:
    key = "k" * 32
    body = b'{"a":1}'
    h = sign(key, body, 1000)
    assert h["X-AlertEngine-Signature"].startswith("v1=")
    assert verify(key, h, body, now=1000)
    lower = {k.lower(): v for k, v in h.items()}
    assert verify(key.encode(), lower, body, now=1200)
    assert not verify(key, h, body, now=1301)  # outside the replay window
    assert not verify("other", h, body, now=1000)
    assert not verify(key, h, body + b" ", now=1000)
    assert not verify(key, {**h, "X-AlertEngine-Timestamp": "1001"}, body, now=1000)
    assert not verify(key, {}, body, now=1000)
    rotated = {**h, "X-AlertEngine-Signature": "v1=00," + h["X-AlertEngine-Signature"]}
    assert verify(key, rotated, body, now=1000)


async def test_down_twice_then_up_executes_on_the_third_attempt(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    rec.fail_first = 2
    clock = VirtualClock(start=time.time())
    sys = await build_system(clock=clock, webhook_url=url, execute_on_authorize=False)
    i = await authorized(sys)
    out = await run_with_virtual_time(sys, clock, i)
    assert (out.result, out.attempts, out.status_code) == ("executed", 3, 200)
    assert len(rec.requests) == 3 and rec.bad_signatures == 0
    keys = {r["headers"]["idempotency-key"] for r in rec.requests}
    assert keys == {out.idempotency_key}
    body = rec.requests[-1]["body"]
    assert body["incident_id"] == i and body["tenant_id"] == "acme"
    assert body["service"] == "checkout" and body["action"] == "restart workers"
    assert body["approvers"] == [ALICE] and body["idempotency_key"] == out.idempotency_key
    assert body["policy_version"] == sys.policy.version and body["authorized_at"] > 0
    every = await entries(sys, "acme", "execution")
    assert [e.decision for e in every] == [
        "started", "attempt_failed", "started", "attempt_failed", "started", "succeeded",
    ]  # fmt: skip
    execs = [e for e in every if e.decision != "started"]
    assert [e.data["status_code"] for e in execs] == [503, 503, 200]
    # Backoff 2 s then 4 s, on the virtual clock.
    assert execs[1].timestamp - execs[0].timestamp == pytest.approx(2, abs=0.5)
    assert execs[2].timestamp - execs[1].timestamp == pytest.approx(4, abs=0.5)
    state = await sys.engine.get("acme", i)
    assert state is not None and state.stage is Stage.EXECUTED
    assert state.history[-1].actor == "orchestrator"
    for e in await entries(sys, "acme"):
        assert WEBHOOK_SECRET not in e.to_json()
    await sys.close()


async def test_down_for_all_attempts_dead_letters_and_replay_needs_fresh_approval(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    rec.always_fail = True
    clock = VirtualClock(start=time.time())
    sys = await build_system(clock=clock, webhook_url=url, execute_on_authorize=False)
    i = await authorized(sys)
    out = await run_with_virtual_time(sys, clock, i)
    assert (out.result, out.attempts) == ("failed", 3)
    state = await sys.engine.get("acme", i)
    assert state is not None and state.stage is Stage.WEBHOOK_FAILED
    (doc,) = await dlq_list(sys.store)
    assert doc["id"] == out.dlq_id and doc["incident_id"] == i and doc["attempts"] == 3
    assert doc["last_status"] == 503 and doc["status"] == "dead"
    assert WEBHOOK_SECRET not in json.dumps(doc)
    assert await dlq_list(sys.store, "other-tenant") == []
    # Replay goes back to VALIDATED: nothing is re-run, a fresh approval is needed.
    with pytest.raises(KeyError):
        await dlq_replay(sys.engine, sys.store, out.dlq_id, tenant_id="other-tenant")
    replayed = await dlq_replay(sys.engine, sys.store, out.dlq_id)
    assert replayed.stage is Stage.VALIDATED and replayed.approvals == ()
    assert len(rec.requests) == 3
    assert (await sys.store.get(DLQ, out.dlq_id))["status"] == "replayed"  # type: ignore[index]
    with pytest.raises(TransitionRefused):
        await dlq_replay(sys.engine, sys.store, out.dlq_id)
    # The fresh approval gets a new idempotency key and executes.
    rec.always_fail = False
    link = await sys.authorizer.issue("acme", i, ALICE)
    assert (await sys.authorizer.confirm(link.token)).authorized
    again = await run_with_virtual_time(sys, clock, i)
    assert again.result == "executed" and again.idempotency_key != out.idempotency_key
    await sys.close()


async def test_run_is_a_no_op_unless_authorized_and_lease_blocks_a_second_runner(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    sys = await build_system(webhook_url=url, execute_on_authorize=False)
    await add_tenant(sys)
    i = await validated_incident(sys)
    assert sys.executor is not None
    skipped = await sys.executor.run("acme", i)
    assert skipped.result == "skipped" and rec.requests == []
    link = await sys.authorizer.issue("acme", i, ALICE)
    await sys.authorizer.confirm(link.token)
    await sys.store.acquire_lease(f"exec:acme:{i}", "another-replica", 30)
    assert (await sys.executor.run("acme", i)).reason == "leased by another-replica"
    await sys.store.release_lease(f"exec:acme:{i}", "another-replica")
    outcomes = await asyncio.gather(*(sys.executor.run("acme", i) for _ in range(10)))
    assert [o.result for o in outcomes].count("executed") == 1
    assert len(rec.requests) == 1
    assert (await sys.executor.resume(["acme"])) == []
    await sys.close()


def test_idempotency_key_is_deterministic() -> None:
    a = idempotency_key("acme", "inc-1", 7)
    assert a == idempotency_key("acme", "inc-1", 7) and a.startswith("ae-")
    assert a != idempotency_key("acme", "inc-1", 9) != idempotency_key("globex", "inc-1", 7)


async def test_resume_executes_authorized_incidents_once(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    rec, url = receiver
    sys = await build_system("sqlite", tmp_path, webhook_url=url, execute_on_authorize=False)
    i = await authorized(sys)
    assert sys.executor is not None
    first = await sys.executor.resume()
    assert [o.result for o in first] == ["executed"]
    assert await sys.executor.resume() == []
    assert len(rec.executed) == 1 and len(rec.requests) == 1
    assert (await sys.engine.get("acme", i)).stage is Stage.EXECUTED  # type: ignore[union-attr]
    await sys.close()
