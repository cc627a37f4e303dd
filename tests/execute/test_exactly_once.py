"""One authorization, one execution: runs racing in one process, in two processes, a holder
that was taken over while its call was in flight, and a 1,000-way confirm stress.

Every test counts what the receiver got and what the ledger says: never two ``succeeded``
entries, never two EXECUTED, for one authorization.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.execute import Executor, verify
from alertengine.execute.executor import exec_lease
from alertengine.execute.instance import Instance, known_dead
from alertengine.incidents import Stage
from alertengine.stores.sqlite import SqliteStateStore
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
from tests.support.servers import ServerThread


async def assert_executed_once(sys: System, i: str) -> None:
    execs = await entries(sys, "acme", "execution")
    assert [e.decision for e in execs].count("succeeded") == 1, [e.reason for e in execs]
    moves = [e for e in await entries(sys, "acme", "transition") if e.incident_id == i]
    assert [e.stage for e in moves].count("EXECUTED") == 1
    assert (await sys.ledger.verify("acme")).ok


class GatedStore(SqliteStateStore):
    """The real SQLite store; its first ``acquire_lease`` waits for a gate to open."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reached = asyncio.Event()
        self.gate = asyncio.Event()
        self._first = True

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        if self._first:
            self._first = False
            self.reached.set()
            await self.gate.wait()
        return await super().acquire_lease(name, holder, ttl_s)


async def test_scheduled_run_waiting_for_its_lease_and_the_sweeps_resume_execute_once(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    """The interleaving behind two POSTs 5 ms apart: the run the approval scheduled is
    suspended at its lease when the sweep's resume comes for the same incident."""
    rec, url = receiver
    sys = await build_system("sqlite", tmp_path, webhook_url=url, execute_on_authorize=False)
    i = await authorized(sys)
    gated = GatedStore(tmp_path / "ae.db")
    ex = Executor(
        sys.engine, gated, httpx.AsyncClient(), sys.clock, lambda _t, _s: (url, WEBHOOK_SECRET)
    )
    scheduled = asyncio.create_task(ex.run("acme", i))
    await asyncio.wait_for(gated.reached.wait(), 10)  # suspended before its lease
    sweep = asyncio.create_task(ex.resume(["acme"]))
    swept = await asyncio.wait_for(sweep, 10)  # the sweep does not wait for the gate
    gated.gate.set()
    first = await asyncio.wait_for(scheduled, 20)
    assert [o.result for o in swept] == ["skipped"] and swept[0].reason == "already running"
    assert first.result == "executed"
    assert len(rec.requests) == 1
    await assert_executed_once(sys, i)
    await ex.http.aclose()
    await gated.close()
    await sys.close()


async def test_two_processes_racing_for_one_incident_execute_it_once(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    """Two executors with their own store connections and process instances, as two
    orchestrator processes on one SQLite file would be."""
    rec, url = receiver
    sys = await build_system("sqlite", tmp_path, webhook_url=url, execute_on_authorize=False)
    i = await authorized(sys)
    other_engine_sys = await build_system("sqlite", tmp_path, webhook_url=url,
                                          execute_on_authorize=False)  # fmt: skip
    other = other_engine_sys.executor
    assert other is not None and sys.executor is not None
    for _ in range(5):  # and again, each round from both at once
        outs = await asyncio.gather(
            *(e.run("acme", i) for e in (sys.executor, other, sys.executor, other))
        )
        assert [o.result for o in outs].count("executed") <= 1
    assert len(rec.requests) == 1
    await assert_executed_once(sys, i)
    await other_engine_sys.close()
    await sys.close()


class HeldReceiver:
    """Answers 200 (dedup by Idempotency-Key); the first call is held until released."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.executed: set[str] = set()
        self.first_arrived = threading.Event()
        self.release_first = threading.Event()

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            assert verify(WEBHOOK_SECRET, dict(request.headers), body)
            key = request.headers["idempotency-key"]
            self.keys.append(key)
            first = len(self.keys) == 1
            self.executed.add(key)
            if first:
                self.first_arrived.set()
                while not self.release_first.is_set():
                    await asyncio.sleep(0.01)
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/recover", hook, methods=["POST"])])


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def test_a_run_taken_over_mid_call_can_never_ledger_a_second_success(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Run A's call is in flight (its process paused, say) when a new instance of the same
    replica takes the lease over and executes. A's answer arrives late: the ledger's fence
    refuses it (recorded as superseded, not counted), and A stops."""
    redis_url = request.getfixturevalue("redis_server").url if backend == "redis" else None
    rec = HeldReceiver()
    server = ServerThread(rec.app())
    server.start()
    url = server.base_url + "/recover"
    try:
        sys = await build_system(backend, tmp_path, webhook_url=url, redis_url=redis_url,
                                 execute_on_authorize=False, holder="replica-1")  # fmt: skip
        i = await authorized(sys)
        assert sys.executor is not None
        old = asyncio.create_task(sys.executor.run("acme", i))
        await asyncio.to_thread(rec.first_arrived.wait, 10)
        # The same replica, restarted: a new process instance, a new store connection.
        restarted = await build_system(backend, tmp_path, webhook_url=url, redis_url=redis_url,
                                       execute_on_authorize=False, holder="replica-1")  # fmt: skip
        assert restarted.executor is not None
        new = await asyncio.wait_for(restarted.executor.run("acme", i), 20)
        assert new.result == "executed"
        rec.release_first.set()
        late = await asyncio.wait_for(old, 20)
        assert late.result == "skipped" and "fenced off" in late.reason
        assert len(rec.keys) == 2 and len(set(rec.keys)) == 1  # same key: one execution
        await sys.engine.refresh("acme")
        execs = await entries(sys, "acme", "execution")
        assert [e.decision for e in execs] == ["started", "started", "succeeded", "superseded"]
        assert "replica replica-1 restarted" in execs[1].data["took_over"]
        await assert_executed_once(sys, i)
        state = await sys.engine.get("acme", i)
        assert state is not None and state.stage is Stage.EXECUTED
        await restarted.close()
        await sys.close()
    finally:
        server.stop()


async def test_a_lease_of_a_dead_process_is_taken_over_at_once_a_live_ones_is_not(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    rec, url = receiver
    sys = await build_system("sqlite", tmp_path, webhook_url=url, execute_on_authorize=False)
    i = await authorized(sys)
    assert sys.executor is not None
    me = sys.executor.instance
    child = subprocess.Popen([sys_executable(), "-c", "pass"])
    child.wait()  # reaped: its pid names no process now
    dead = replace(me, instance="deadbeef0000", pid=child.pid, start=1, run="r1")
    elsewhere = replace(me, instance="0123456789ab", host="other-host", run="r2")
    lease = exec_lease("acme", i)
    assert await sys.store.acquire_lease(lease, str(elsewhere), 60)
    skipped = await sys.executor.run("acme", i)
    assert skipped.result == "skipped" and "leased by other-host" in skipped.reason
    assert rec.requests == []
    assert await sys.store.take_over_lease(lease, str(elsewhere), str(dead), 60)
    done = await sys.executor.run("acme", i)  # long before the 60 s lease would lapse
    assert done.result == "executed"
    (started,) = [e for e in await entries(sys, "acme", "execution") if e.decision == "started"]
    assert f"process {child.pid} on {me.host} is gone" in started.data["took_over"]
    assert len(rec.requests) == 1
    await sys.close()


def sys_executable() -> str:
    return sys.executable


def test_known_dead_judges_only_what_it_can_know() -> None:
    me = Instance("", "aaaa", "h1", "boot1", "pid:[1]", 100, 5000)
    other = replace(me, instance="bbbb", pid=200, start=7000)
    alive = {200: ("S", 7000)}

    def probe(pid: int) -> tuple[str, int] | None:
        return alive.get(pid)

    assert known_dead(replace(me, run="x"), me, probe) is None  # this very process
    assert known_dead(other, me, probe) is None  # alive on this machine
    alive[200] = ("Z", 7000)
    assert "has exited" in str(known_dead(other, me, probe))
    alive[200] = ("S", 9999)
    assert "reused" in str(known_dead(other, me, probe))
    assert known_dead(replace(other, start=-1), me, probe) is None  # its start was unknown
    del alive[200]
    assert "is gone" in str(known_dead(other, me, probe))
    # Another machine, boot or pid namespace: cannot tell from here.
    for moved in ({"host": "h2"}, {"boot": "boot2"}, {"pidns": "pid:[2]"}, {"boot": ""}):
        assert known_dead(replace(other, **moved), me, probe) is None  # type: ignore[arg-type]
    # A named replica restarted: its old instance is dead wherever it ran.
    named = replace(me, replica="orch-0")
    assert "restarted" in str(known_dead(replace(other, replica="orch-0", host="h9"), named))
    assert known_dead(replace(other, replica="orch-1", host="h9"), named) is None
    assert Instance.parse(str(other)) == other
    assert Instance.parse("host:123:abc") is None


async def one_stress_round(tmp_path: Path, round_: int) -> None:
    rec = Receiver()
    server = ServerThread(rec.app())
    server.start()
    try:
        sys = await build_system("sqlite", tmp_path / str(round_),
                                 webhook_url=server.base_url + "/recover")  # fmt: skip
        await add_tenant(sys)
        i = await validated_incident(sys)
        link = await sys.authorizer.issue("acme", i, ALICE)
        executor = sys.executor
        assert executor is not None
        stop = asyncio.Event()

        async def sweep() -> None:  # the orchestrator's tick, as fast as it can go
            while not stop.is_set():
                await executor.resume(["acme"])
                await asyncio.sleep(0)

        sweepers = [asyncio.create_task(sweep()) for _ in range(2)]
        results = await asyncio.gather(*(sys.authorizer.confirm(link.token) for _ in range(1000)))
        assert sum(r.authorized for r in results) == 1
        for t in list(sys.tasks):
            await asyncio.wait_for(t, 30)
        stop.set()
        await asyncio.gather(*sweepers)
        await sys.engine.refresh("acme")
        state = await sys.engine.get("acme", i)
        assert state is not None and state.stage is Stage.EXECUTED
        assert len(rec.requests) == 1, f"round {round_}: {len(rec.requests)} POSTs"
        await assert_executed_once(sys, i)
        await sys.close()
    finally:
        server.stop()


async def test_stress_1000_concurrent_confirms_with_sweeps_execute_once(tmp_path: Path) -> None:
    """The reported run: 1,000 confirms of one token at once on SQLite, the scheduled run
    racing the sweep's resume. Repeated; never two executions."""
    for round_ in range(4):
        await one_stress_round(tmp_path, round_)
