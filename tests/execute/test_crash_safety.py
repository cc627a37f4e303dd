"""Kill the executing process between AUTHORIZED and EXECUTED; a restart executes once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.clock import SystemClock
from alertengine.engine import IncidentEngine
from alertengine.execute import verify
from alertengine.incidents import Stage
from alertengine.policy import Policy
from alertengine.stores.factory import open_stores
from tests.authorize.harness import LEDGER_KEY, WEBHOOK_SECRET
from tests.support.servers import ServerThread

ROOT = Path(__file__).resolve().parents[2]


class SlowFirstReceiver:
    """Executes (dedup by Idempotency-Key), but the first answer never arrives in time."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.executed: dict[str, int] = {}

    def app(self) -> Starlette:
        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            assert verify(WEBHOOK_SECRET, dict(request.headers), body)
            key = request.headers["idempotency-key"]
            self.calls.append(key)
            if key in self.executed:
                return JSONResponse({"duplicate": True})
            self.executed[key] = len(self.calls)
            if len(self.calls) == 1:
                await asyncio.sleep(3)  # the sender is killed while waiting
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/recover", hook, methods=["POST"])])


def worker(db: Path, url: str, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.execute.crash_worker", str(db), url, mode],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_kill_between_authorized_and_executed_then_resume_executes_once(tmp_path: Path) -> None:
    rec = SlowFirstReceiver()
    server = ServerThread(rec.app())
    server.start()
    url = server.base_url + "/recover"
    try:
        first = worker(tmp_path, url, "authorize")
        assert first.stdout is not None
        line = first.stdout.readline()
        assert line, first.stderr.read() if first.stderr else ""
        incident = json.loads(line)["incident"]
        deadline = time.monotonic() + 20
        while not rec.calls:
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)

        second = worker(tmp_path, url, "resume")
        out, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == ["executed"]
        third = worker(tmp_path, url, "resume")  # nothing left to do
        out3, _ = third.communicate(timeout=30)
        assert json.loads(out3.strip().splitlines()[-1]) == []
    finally:
        server.stop()

    assert len(rec.calls) == 2 and len(set(rec.calls)) == 1  # same key, sent twice
    assert len(rec.executed) == 1  # the receiver executed it once

    async def check() -> None:
        ledger, store = open_stores(f"sqlite:///{tmp_path / 'ae.db'}", ledger_key=LEDGER_KEY)
        engine = IncidentEngine(ledger, SystemClock(), lambda _t: Policy())
        state = await engine.get("acme", incident)
        assert state is not None and state.stage is Stage.EXECUTED
        log = [e async for e in ledger.scan("acme")]
        executed = [e for e in log if e.kind == "transition" and e.stage == "EXECUTED"]
        assert len(executed) == 1
        assert executed[0].data["idempotency_key"] == rec.calls[0]
        assert (await ledger.verify("acme")).ok
        await store.close()
        await ledger.close()

    asyncio.run(check())
