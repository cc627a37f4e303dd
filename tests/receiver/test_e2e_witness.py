"""End to end: a real orchestrator runtime calls a real receiver app (FastAPI, uvicorn on
127.0.0.1) that witnesses our log through a consistency-proof route over HTTP.

1. An approved recovery runs once at the receiver; its signed receipt is ledgered; the same
   request replayed (same Idempotency-Key) is answered with the first receipt, not run.
2. The orchestrator's store is replaced with an older copy (a rollback) and restarted: the
   next call is refused by the receiver (409, reason), and the orchestrator ledgers the
   refusal, logs it at ERROR, does not count the execution, dead-letters it with the reason.
3. ``ledger reconcile --receipts`` with the receiver's own receipts finds the rollback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from alertengine.cli import app as cli_app
from alertengine.demo import _serve
from alertengine.engine import Change
from alertengine.execute import dlq_list
from alertengine.incidents import Stage
from alertengine.ledger.base import TreeStore
from alertengine.ledger.checkpoint import NoteSigner
from alertengine.ledger.keys import load_signer
from alertengine.ledger.tlog import (
    ConsistencyProof,
    TransparencyLog,
    check_witnessed,
    parse_witness_file,
)
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import Runtime, build_runtime, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.receiver import (
    Answer,
    HttpConsistencyFetcher,
    Receiver,
    SqliteWitnessStore,
    fastapi_dependency,
    open_receipt,
)
from alertengine.receiver.web import CONSISTENCY_ROUTE
from alertengine.stores.factory import open_stores
from tests.support.redis_server import free_port

SECRET = "whsec-e2e-witness-0123456789abcdefghijkl"
LEDGER_KEY = b"e2e-ledger-key-0123456789abcdefgh"
ALICE = "engineer:web:alice@example.com"
PROOF_API_KEY = "tenant-api-key-for-proofs"
ME = NoteSigner.generate("acme-recovery")


def config(receiver_port: int) -> Any:
    return parse_config(
        {
            "tenants": [
                {"id": "acme", "approvers": [{"channel": "web", "address": "alice@example.com"}]}
            ],
            "targets": [
                {
                    "tenant": "acme",
                    "service": "checkout",
                    "health_url": "http://127.0.0.1:9/health/alerts",
                    "recovery_webhook": f"http://127.0.0.1:{receiver_port}/recover",
                    "webhook_secret_env": "ACME_RECOVERY_SECRET",
                }
            ],
        }
    )


async def start(db: Path, receiver_port: int) -> Runtime:
    ledger, store = open_stores(f"sqlite:///{db}", ledger_key=LEDGER_KEY)
    rt = await build_runtime(
        config(receiver_port),
        ledger=ledger,
        store=store,
        settings=Settings.from_env({"ALERT_SECRET": "s" * 40}),
        environ={},
    )
    await sync_tenants(rt)
    return rt


async def stop(rt: Runtime) -> None:
    await rt.drain()
    await rt.http.aclose()
    await rt.ledger.close()
    await rt.store.close()


async def approve(rt: Runtime) -> str:
    state, _ = await rt.engine.open(
        "acme", "checkout", reason="error rate 30%",
        snapshot={"score": 31.0, "status": "critical", "error_rate": 0.3, "p95_ms": 2400.0,
                  "sample_size": 500, "source": "poll"},
    )  # fmt: skip
    i = state.incident_id
    await rt.engine.transition(
        "acme", i, Change(Stage.PROPOSED, "policy", "degraded", data={"action": "restart"})
    )
    await rt.engine.transition("acme", i, Change(Stage.VALIDATED, "policy", "real"))
    link = await rt.authorizer.issue("acme", i, ALICE)
    assert (await rt.authorizer.confirm(link.token)).authorized  # schedules the execution
    await rt.drain()
    return i


async def kinds(rt: Runtime, kind: str) -> list[Any]:
    return [e async for e in rt.ledger.scan("acme") if e.kind == kind]


async def test_replay_runs_once_and_a_rolled_back_log_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ACME_RECOVERY_SECRET", SECRET)
    db = tmp_path / "orchestrator" / "ae.db"
    db.parent.mkdir()
    receiver_port, proof_port = free_port(), free_port()
    current: dict[str, TransparencyLog] = {}

    # The orchestrator's consistency-proof route, as the tenant API serves it.
    async def consistency(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {PROOF_API_KEY}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        q = request.query_params
        proof = await current["log"].consistency_proof(
            "acme", int(q["from_size"]), int(q["to_size"])
        )
        return JSONResponse({"proof": proof.to_dict()})  # the tenant API's answer shape

    proofs = Starlette(routes=[Route(CONSISTENCY_ROUTE, consistency)])

    rt = await start(db, receiver_port)
    assert isinstance(rt.ledger, TreeStore)
    log_signer = load_signer({}, state_dir=db.parent, create=False)
    current["log"] = TransparencyLog(rt.ledger, log_signer)

    # The tenant's own service.
    witness_db = tmp_path / "receiver" / "witness.db"
    receiver = Receiver(
        secret=SECRET,
        log_keys=[log_signer.verifier.vkey],
        signer=ME,
        store=SqliteWitnessStore(witness_db),
        fetch_consistency=HttpConsistencyFetcher(f"http://127.0.0.1:{proof_port}", PROOF_API_KEY),
        tenant_id="acme",
    )
    ran: list[str] = []
    requests: list[tuple[dict[str, str], bytes]] = []
    service = FastAPI()

    @service.middleware("http")
    async def keep(request: Request, call_next: Any) -> Any:
        requests.append((dict(request.headers), await request.body()))
        return await call_next(request)

    @service.post("/recover")
    async def recover(call: Answer = Depends(fastapi_dependency(receiver))) -> dict[str, Any]:
        if call.run:
            ran.append(str(call.payload["incident_id"]))
        return call.body

    async with _serve(service, receiver_port), _serve(proofs, proof_port):
        first = await approve(rt)
        state = await rt.engine.get("acme", first)
        assert state is not None and state.stage is Stage.EXECUTED and ran == [first]
        (receipt_entry,) = await kinds(rt, "receipt")
        assert receipt_entry.decision == "accepted" and receipt_entry.data["valid"] is True
        receipt = open_receipt(receipt_entry.data["receipt"], [ME.verifier])
        assert receipt.key == state.execution["idempotency_key"]  # type: ignore[index]

        # A replay of the very same request: answered with the first receipt, not run.
        headers, body = requests[-1]
        async with httpx.AsyncClient() as c:
            replayed = await c.post(
                f"http://127.0.0.1:{receiver_port}/recover", content=body, headers=headers
            )
        assert replayed.status_code == 200 and replayed.json()["duplicate"] is True
        assert replayed.json()["receipt"] == receipt_entry.data["receipt"]
        assert ran == [first]

        # Keep a copy of the store now; run one more recovery the receiver witnesses.
        snapshot = tmp_path / "old.db"
        src, dst = sqlite3.connect(db), sqlite3.connect(snapshot)
        src.backup(dst)
        src.close()
        dst.close()
        second = await approve(rt)
        for n in range(6):  # more history after the copy (what the rollback will erase)
            await rt.engine.record("acme", second, kind="note", actor="policy", reason=f"{n}")
        third = await approve(rt)
        assert ran == [first, second, third]
        await stop(rt)

        # The rollback: the older, internally consistent copy replaces the store.
        for suffix in ("-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)
        shutil.copy(snapshot, db)
        rt = await start(db, receiver_port)
        assert isinstance(rt.ledger, TreeStore)
        assert (await rt.ledger.verify("acme")).ok  # the hash chain alone cannot tell
        current["log"] = TransparencyLog(rt.ledger, log_signer)
        with caplog.at_level(logging.ERROR, logger="alertengine.execute.receipts"):
            fourth = await approve(rt)
        assert ran == [first, second, third]  # refused: not run
        state = await rt.engine.get("acme", fourth)
        assert state is not None and state.stage is Stage.WEBHOOK_FAILED
        refusal = (await kinds(rt, "receipt"))[-1]
        assert refusal.incident_id == fourth and refusal.decision == "refused"
        assert refusal.data["error"] in ("checkpoint_rollback", "checkpoint_fork")
        assert refusal.data["status_code"] == 409
        assert open_receipt(refusal.data["receipt"], [ME.verifier]).verdict == "refused"
        (dead,) = [d for d in await dlq_list(rt.store) if d["incident_id"] == fourth]
        assert dead["last_status"] == 409 and dead["last_error"].startswith("witness_refused")
        assert any("WITNESS REFUSED OUR CHECKPOINT" in r.getMessage() for r in caplog.records)
        assert rt.orch.status_sections["witnesses"]()["refused_checkpoints"] == 1
        await stop(rt)

    # The receiver's own records, exported as an auditor gets them.
    await receiver.store.close()
    exported = {}
    for what in ("receipts", "checkpoints"):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "alertengine.receiver", what, str(witness_db),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        exported[what] = tmp_path / f"{what}.json"
        exported[what].write_bytes(out)
    path = exported["receipts"]
    assert len(json.loads(path.read_text())) == 3  # three calls ran at the receiver
    env = {
        "ALERTENGINE_LEDGER_KEY": LEDGER_KEY.decode(),
        "ALERTENGINE_STORE_URL": f"sqlite:///{db}",
    }
    res = await asyncio.to_thread(
        CliRunner().invoke,
        cli_app,
        ["ledger", "reconcile", "--tenant", "acme", "--receipts", str(path), "--json"],
        env=env,
    )
    assert res.exit_code == 1, res.output
    found = {m["kind"] for m in json.loads(res.output)["mismatches"]}
    assert "receipt_without_execution" in found  # the second and third calls were received
    assert found & {"receipt_checkpoint_ahead", "receipt_checkpoint_inconsistent"}
    assert "checkpoint_refused" in found

    # What the receiver witnessed catches it too (the file `ledger verify --witness` reads).
    ledger, store = open_stores(f"sqlite:///{db}", ledger_key=LEDGER_KEY)
    assert isinstance(ledger, TreeStore)
    log = TransparencyLog(ledger, log_signer)
    notes = parse_witness_file(exported["checkpoints"].read_text())
    assert len(notes) == 1

    async def proof(a: int, b: int) -> ConsistencyProof:
        return await log.consistency_proof("acme", a, b)

    found = await check_witnessed(
        "acme", notes, await log.tree_head("acme"), [log_signer.verifier], proof
    )
    assert [f.ok for f in found] == [False] and "rolled back" in found[0].problem
    await ledger.close()
    await store.close()
