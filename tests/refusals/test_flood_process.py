"""A real ``alertengine serve`` flooded with unsigned Twilio webhooks and forged approval
links: the ledger grows by a handful of entries, not by one per request; the counts add up
exactly to what was sent; the server keeps answering during the flood; SIGTERM writes the
open windows' counts; after a SIGKILL the next process ledgers the count the dead one kept
in the store (what came after its last loop tick is lost)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from alertengine.ledger import Entry, LedgerQuery
from alertengine.refusals.keeper import COUNTS
from alertengine.stores.factory import open_ledger, open_state_store
from tests.scale.cluster import ADMIN, ROOT, SECRETS, Proc, until, wait_http
from tests.support.redis_server import free_port

pytestmark = pytest.mark.slow

N = 10
UNSIGNED, FORGED = 2000, 400
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def config(port: int, db: Path) -> str:
    return f"""
[orchestrator]
store_url = "sqlite:///{db}"
base_url = "http://127.0.0.1:{port}"
port = {port}
loop_interval_s = 0.2

[[tenants]]
id = "t1"
[[tenants.people]]
id = "alice"
channels = [{{ channel = "whatsapp", address = "+15550001111" }}]

[[targets]]
tenant = "t1"
service = "shop"
recovery_webhook = "http://127.0.0.1:9/recover"
webhook_secret_env = "SCALE_RECOVERY_SECRET"
"""


def proc_env(window_s: float) -> dict[str, str]:
    return {
        **SECRETS,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "twilio-auth-token",
        "TWILIO_WHATSAPP_FROM": "whatsapp:+15550000000",
        "TWILIO_API_BASE": "http://127.0.0.1:9",
        "ALERTENGINE_REFUSALS_PER_WINDOW": str(N),
        "ALERTENGINE_REFUSALS_WINDOW_S": str(window_s),
    }


def start(tmp: Path, window_s: float) -> tuple[Proc, str, Path]:
    port = free_port()
    db = tmp / "ae.db"
    cfg = tmp / "alertengine.toml"
    cfg.write_text(config(port, db))
    env = proc_env(window_s)
    argv = [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg)]
    proc = Proc([*argv, "--log-level", "warning"], env=env, log=tmp / "serve.log")
    return proc, f"http://127.0.0.1:{port}", db


def forged_link(i: int) -> str:
    now = int(time.time())
    claims = {
        "iss": "alertengine",
        "tenant": "t1",
        "incident": f"inc-{i}",
        "action": "recover",
        "approver": "person:mallory",
        "jti": f"jti-{i:06d}",
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, "not-the-orchestrators-secret-" * 2, algorithm="HS256")


async def refused(db: Path, tenant: str) -> list[Entry]:
    ledger = open_ledger(f"sqlite:///{db}", key=None)
    try:
        q = LedgerQuery(tenant_id=tenant, kinds=frozenset({"refused"}), limit=1_000_000)
        return list(await ledger.read(q))
    finally:
        await ledger.close()


def counted(entries: list[Entry]) -> int:
    return sum(int(e.data["count"]) if e.data.get("coalesced") else 1 for e in entries)


def cli(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertengine", *args, "--store-url", f"sqlite:///{db}"],
        cwd=ROOT,
        env={**os.environ, **SECRETS},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def flood(base: str) -> dict[str, Any]:
    """UNSIGNED bad-signature webhooks and FORGED links, 100 in flight; meanwhile a health
    request every 0.2 s from another thread (its own connection, not queued behind ours).
    Returns the statuses and the slowest health answer."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    statuses: dict[int, int] = {}
    slowest: list[float] = [0.0]
    done = threading.Event()

    def health() -> None:
        with httpx.Client(base_url=base, timeout=60) as h:
            while not done.is_set():
                t0 = time.monotonic()
                assert h.get("/healthz").status_code == 200
                slowest[0] = max(slowest[0], time.monotonic() - t0)
                done.wait(0.2)

    jobs = [("webhook", i) for i in range(UNSIGNED)] + [("link", i) for i in range(FORGED)]
    random.Random(7).shuffle(jobs)
    todo = iter(jobs)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:

        async def worker() -> None:
            for what, i in todo:
                if what == "webhook":
                    r = await c.post(
                        "/twilio/whatsapp",
                        content=f"Body=approve+{i}&From=whatsapp%3A%2B15550009999",
                        headers={**FORM, "X-Twilio-Signature": "Zm9yZ2Vk"},
                    )
                else:
                    r = await c.post("/action/recover/confirm", json={"token": forged_link(i)})
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        watcher = threading.Thread(target=health, daemon=True)
        watcher.start()
        try:
            await asyncio.gather(*(worker() for _ in range(100)))
        finally:
            done.set()
            watcher.join(timeout=60)
    return {"statuses": statuses, "slowest_health_s": slowest[0]}


async def test_a_flood_grows_the_ledger_by_a_handful_and_sigterm_writes_the_counts(
    tmp_path: Path,
) -> None:
    proc, base, db = start(tmp_path, window_s=3600.0)  # the window outlives the test
    try:
        await wait_http(base + "/healthz", 60, [proc])
        before = len(await refused(db, "_system")) + len(await refused(db, "t1"))
        got = await flood(base)
        assert got["statuses"] == {403: UNSIGNED, 401: FORGED}, got
        # Generous for a loaded 2-core box: the point is that it answers during the flood.
        assert got["slowest_health_s"] < 15.0, got
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            status = (await c.get("/__alertengine/status", headers=ADMIN)).json()["refusals"]
        assert (status["ledgered"], status["coalesced"]) == (2 * N, UNSIGNED + FORGED - 2 * N)
        # During the flood: N entries per key, the rest only counted.
        assert len(await refused(db, "_system")) + len(await refused(db, "t1")) == before + 2 * N
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.p.wait(timeout=60)
        proc.stop()
    log = proc.tail(20_000)
    assert "counting the rest into one ledger entry" in log, log
    system, tenant = await refused(db, "_system"), await refused(db, "t1")
    # Graceful shutdown wrote one summary per key: N + 1 entries each, counts exact.
    assert (len(system), counted(system)) == (N + 1, UNSIGNED), [e.reason for e in system]
    assert (len(tenant), counted(tenant)) == (N + 1, FORGED)
    (summary,) = [e for e in system if e.data.get("coalesced")]
    assert summary.data["route"] == "/twilio/whatsapp"
    assert summary.data["sources"] == ["127.0.0.1"]
    verified = cli(db, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def burst(base: str, n: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        for i in range(n):
            r = await c.post(
                "/twilio/whatsapp",
                content=f"Body=x{i}",
                headers={**FORM, "X-Twilio-Signature": "x"},
            )
            assert r.status_code == 403


async def test_the_loop_tick_writes_the_summary_of_an_ended_window(tmp_path: Path) -> None:
    proc, base, db = start(tmp_path, window_s=1.0)
    try:
        await wait_http(base + "/healthz", 60, [proc])
        await burst(base, 60)

        async def summarized() -> list[Entry]:
            es = await refused(db, "_system")
            return es if counted(es) == 60 else []

        # No shutdown and no further refusal: the orchestrator's loop tick closed the window.
        es = await until(summarized, 30, "the loop tick never wrote the summary")
        assert any(e.data.get("coalesced") for e in es)
        assert len(es) <= 2 * (N + 1)  # the burst may have straddled two windows
    finally:
        proc.stop()
    verified = cli(db, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_sigkill_loses_at_most_a_tick_and_the_next_process_ledgers_the_rest(
    tmp_path: Path,
) -> None:
    proc, base, db = start(tmp_path, window_s=3600.0)
    store = open_state_store(f"sqlite:///{db}")
    try:
        await wait_http(base + "/healthz", 60, [proc])
        await burst(base, 40)

        async def copied() -> bool:  # the loop tick (0.2 s) saved the count in the store
            docs = await store.list(COUNTS)
            return any(s["count"] == 40 - N for d in docs.values() for s in d["summaries"])

        await until(copied, 30, "the counted refusals never reached the store")
        os.kill(proc.pid, signal.SIGKILL)
        proc.p.wait(timeout=30)
    finally:
        proc.stop()
        await store.close()
    killed = await refused(db, "_system")
    # The first N are in the ledger and verify; the 30 counted are not (yet).
    assert (len(killed), counted(killed)) == (N, N)
    assert "counting the rest into one ledger entry" in proc.tail(20_000)
    verified = cli(db, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # The next process on the same store sees that instance is dead and ledgers its count.
    argv = [str(a) for a in proc.p.args]  # type: ignore[union-attr]
    again = Proc(argv, env=proc_env(window_s=3600.0), log=tmp_path / "again.log")
    try:
        await wait_http(base + "/healthz", 60, [again])

        async def adopted() -> list[Entry]:
            es = await refused(db, "_system")
            return es if counted(es) == 40 else []

        es = await until(adopted, 30, "the dead process's count was never ledgered")
    finally:
        again.stop()
    (summary,) = [e for e in es if e.data.get("coalesced")]
    assert (
        summary.data["count"] == 40 - N and "stopped without ledgering" in summary.data["recovered"]
    )
    assert len(es) == N + 1
    verified = cli(db, "ledger", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
