"""Issue 10, disk full under the SQLite ledger, with a real ``alertengine serve``.

The ledger lives on a small tmpfs; the test fills it while an incident waits for approval.
The orchestrator must say so at once and keep saying so: EMERGENCY in ``/healthz`` (503) and
the status, with the cause ("disk full", "database or disk is full") in both and in its log;
one mode change for the whole outage, not one per tick; nothing moves while nothing can be
recorded (an approval tried meanwhile changes nothing); once space returns it comes back by
itself, ledgering the EMERGENCY and the NORMAL entries then, and the same link runs the
recovery webhook exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.demo import _serve
from alertengine.ledger import LedgerQuery
from alertengine.ledger.sqlite import SqliteLedgerStore
from tests.faults.ledger_fs import (
    TENANT,
    config,
    fill,
    health,
    healthz,
    status,
    system_modes,
    tmpfs,
)
from tests.scale.cluster import SECRETS, Proc, Receiver, until, wait_http
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.slow]


def target_app(score: dict[str, float]) -> Starlette:
    async def alerts(_: Request) -> JSONResponse:
        return JSONResponse(health(score["v"]))

    return Starlette(routes=[Route("/health/alerts", alerts)])


def truncate_wal(db: Path) -> None:
    """Empty the WAL, so the orchestrator's next write needs fresh space (a real disk's
    WAL reaches that point by itself once its reusable room is used up)."""
    con = sqlite3.connect(str(db), timeout=10)
    try:
        deadline = time.monotonic() + 10
        while con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] != 0:
            assert time.monotonic() < deadline, "could not checkpoint the WAL"
            time.sleep(0.05)
    finally:
        con.close()


def serve(cfg: Path, log: Path) -> Proc:
    return Proc(
        [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg),
         "--log-level", "warning"],
        env=SECRETS,
        log=log,
    )  # fmt: skip


async def ticks_pass(c: httpx.AsyncClient, base: str, n: int, check: Any) -> None:
    """Watch ``n`` loop ticks go by, calling ``check(code, body)`` on /healthz all along."""
    start = (await status(c, base))["stats"]["ticks"]
    deadline = time.monotonic() + 60
    while (await status(c, base))["stats"]["ticks"] < start + n:
        assert time.monotonic() < deadline, "the loop stopped ticking"
        check(*(await healthz(c, base)))
        await asyncio.sleep(0.1)


@dataclass
class Serving:
    """A running orchestrator (see ``serving``), its target's score, receiver and a client."""

    proc: Proc
    c: httpx.AsyncClient
    base: str
    rx: Receiver
    score: dict[str, float]

    async def normal(self) -> bool:
        code, body = await healthz(self.c, self.base)
        return code == 200 and body["mode"] == "NORMAL"


def still_emergency(code: int, body: dict[str, Any]) -> None:
    assert (code, body["mode"]) == (503, "EMERGENCY"), body


@contextlib.asynccontextmanager
async def serving(db: Path, tmp_path: Path) -> AsyncIterator[Serving]:
    """``alertengine serve`` with its ledger at ``db``, a healthy target and a receiver,
    yielded once it polled the target three times in NORMAL; stopped by its pid after."""
    port, app_port, rx_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    score = {"v": 97.0}
    rx = Receiver()
    cfg = tmp_path / "alertengine.toml"
    cfg.write_text(
        config(
            db,
            port=port,
            health_url=f"http://127.0.0.1:{app_port}/health/alerts",
            receiver=f"http://127.0.0.1:{rx_port}",
        )
    )
    proc = serve(cfg, tmp_path / "orch.log")
    try:
        async with (
            _serve(target_app(score), app_port),
            _serve(rx.app(), rx_port),
            httpx.AsyncClient(timeout=5) as c,
        ):
            await wait_http(f"{base}/healthz", 60, [proc])

            async def polled() -> bool:
                st = await status(c, base)
                return st["stats"]["polls"] >= 3 and st["mode"] == "NORMAL"

            await until(polled, 30, "the orchestrator never polled its target")
            yield Serving(proc, c, base, rx, score)
    finally:
        proc.stop()


@pytest.mark.timeout(180)
async def test_full_disk_is_one_honest_emergency_that_ends_by_itself(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "32m") as disk:
        db = disk / "ae.db"
        async with serving(db, tmp_path) as s:
            c, base, rx, score = s.c, s.base, s.rx, s.score
            score["v"] = 10.0  # the target breaks: an incident, and a person is asked

            async def asked() -> list[dict[str, Any]]:
                return rx.messages

            (msg,) = await until(asked, 30, "nobody was asked to approve")
            token = parse_qs(urlsplit(str(msg["approve_url"])).query)["token"][0]

            truncate_wal(db)
            filler = disk / "filler"
            fill(filler)
            filled = time.monotonic()

            async def emergency() -> tuple[int, dict[str, Any]] | None:
                code, body = await healthz(c, base)
                return (code, body) if code == 503 else None

            code, body = await until(emergency, 20, "/healthz never said the disk is full")
            noticed_after = time.monotonic() - filled
            assert body["mode"] == "EMERGENCY" and not body["ok"], body
            assert body["causes"]["ledger"] == "disk full", body
            st = await status(c, base)
            assert st["mode"] == "EMERGENCY" and "ledger" in st["mode_reasons"], st
            assert "database or disk is full" in st["causes"]["ledger"], st

            # It stays EMERGENCY for as long as the disk is full: no flapping per tick.
            await ticks_pass(c, base, 6, still_emergency)
            # Its own connection: on main a 500 here also closes the keep-alive one.
            async with httpx.AsyncClient(timeout=10) as once:
                r = await once.post(f"{base}/action/recover/confirm", data={"token": token})
            assert r.status_code != 200, r.text  # nothing can be recorded: nothing runs
            await ticks_pass(c, base, 6, still_emergency)
            assert len(rx.messages) == 1 and rx.recoveries == []  # nothing moved

            filler.unlink()
            freed = time.monotonic()

            await until(s.normal, 40, "the orchestrator did not come back by itself")
            back_after = time.monotonic() - freed

            def stays_normal(code: int, body: dict[str, Any]) -> None:
                assert (code, body["mode"]) == (200, "NORMAL"), body

            r = await c.post(f"{base}/action/recover/confirm", data={"token": token})
            assert r.status_code == 200, r.text  # the same link, now that it can be kept

            async def recovered() -> list[str]:
                return rx.recoveries

            await until(recovered, 30, "the recovery webhook did not run")
            score["v"] = 97.0
            await ticks_pass(c, base, 6, stays_normal)
            assert (await status(c, base))["pending_system_entries"] == 0
        log = s.proc.tail(200_000)
        assert "EMERGENCY" in log and "database or disk is full" in log, log[-3000:]
        modes = await system_modes(db)  # also: every chain in the file verifies
        ledger = SqliteLedgerStore(db, key=None)
        try:
            stages = [
                e.stage
                for e in await ledger.read(LedgerQuery(tenant_id=TENANT))
                if e.kind == "transition"
            ]
        finally:
            await ledger.close()
    assert len(rx.recoveries) == 1, rx.recoveries  # exactly one webhook call
    assert stages[:5] == ["DETECTED", "PROPOSED", "VALIDATED", "AUTHORIZED", "EXECUTED"], stages
    # One outage, one change each way, ledgered once the disk had room again.
    assert [e.decision for e in modes] == ["EMERGENCY", "NORMAL"], [e.reason for e in modes]
    assert "database or disk is full" in modes[0].reason
    assert modes[1].timestamp > modes[0].timestamp
    print(f"disk full: EMERGENCY after {noticed_after:.1f} s, NORMAL {back_after:.1f} s later")
