"""Receiver and reconcile benchmark: what witnessing and double entry cost.

* ``receive``: one call through :class:`alertengine.receiver.Receiver` on its SQLite store
  (HMAC, Ed25519 checkpoint check, a consistency proof fetched in process and verified
  against the witnessed root, the claim, a signed receipt), the log growing by one entry
  between calls; median and p95 of ``--calls``.
* ``reconcile``: ``alertengine.ledger.reconcile`` over a tenant with ``--executions``
  executions (each DETECTED … AUTHORIZED, a receipt, EXECUTED) on an in-memory ledger.

    .venv/bin/python bench/receiver.py [--calls 500] [--executions 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tests.ledger.conftest import KEY, draft
from tests.ledger.test_reconcile import books, executed

from alertengine.execute.signing import IDEMPOTENCY_HEADER, sign
from alertengine.ledger.checkpoint import NoteSigner
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.tlog import ConsistencyProof, TransparencyLog
from alertengine.receiver import CHECKPOINT_HEADER, Receiver, SqliteWitnessStore

SECRET = "whsec-bench-0123456789abcdefghijklmnopqrstuv"


async def bench_receive(calls: int) -> list[float]:
    store = MemoryLedgerStore(KEY)
    log = TransparencyLog(store, NoteSigner.generate("alertengine"))

    async def fetch(tenant: str, a: int, b: int) -> ConsistencyProof:
        return await log.consistency_proof(tenant, a, b)

    with tempfile.TemporaryDirectory() as tmp:
        rec = Receiver(
            secret=SECRET, log_keys=[log.verifier], signer=NoteSigner.generate("receiver"),
            store=SqliteWitnessStore(Path(tmp) / "w.db"), fetch_consistency=fetch,
        )  # fmt: skip
        times = []
        for i in range(calls):
            await store.append("acme", [draft("acme", i)])
            key = f"ae-{i:032x}"
            body = json.dumps({"tenant_id": "acme", "idempotency_key": key}).encode()
            headers = {
                IDEMPOTENCY_HEADER: key,
                **sign(SECRET, body, time.time()),
                CHECKPOINT_HEADER: base64.b64encode(
                    (await log.checkpoint("acme")).encode()
                ).decode(),
            }
            t = time.perf_counter()
            answer = await rec.receive(headers, body)
            times.append(time.perf_counter() - t)
            assert answer.run, answer.body
        await rec.store.close()
    return times


async def bench_reconcile(executions: int) -> tuple[float, int]:
    store = MemoryLedgerStore(KEY)
    for i in range(executions):
        await executed(store, f"inc-{i}")
    t = time.perf_counter()
    r = await books(store)
    elapsed = time.perf_counter() - t
    assert r.balanced and r.executions == executions
    return elapsed, await store.count("acme")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--executions", type=int, default=5000)
    args = ap.parse_args()
    times = asyncio.run(bench_receive(args.calls))
    ms = sorted(x * 1000 for x in times)
    print(
        f"receive: {args.calls} calls, median {statistics.median(ms):.2f} ms, "
        f"p95 {ms[int(len(ms) * 0.95) - 1]:.2f} ms"
    )
    elapsed, entries = asyncio.run(bench_reconcile(args.executions))
    print(f"reconcile: {args.executions} executions ({entries} entries) in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
