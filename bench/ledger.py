"""Ledger benchmark: durable append throughput, then verify and replay of a large chain.

For SQLite (a temp file, WAL, synchronous=FULL) and Redis (a redis-server this script
starts on a free loopback port and stops at the end):

* group commit — many concurrent tasks, one entry per append call;
* batched — sequential append calls of 500 entries each;
* single — one task, one entry per call, each waiting for its commit;
* verify and replay (scan + fold into incident states) of ``--entries`` (default
  1 000 000) entries of one tenant;
* on that tenant's Merkle tree: inclusion and consistency proof generation (store reads +
  assembly) and verification (pure), medians of ``--proofs`` random ones, signing and
  checking a checkpoint, and ``verify --tree`` (recompute the tree, compare every node).

    .venv/bin/python bench/ledger.py [--entries N] [--skip-redis]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tests.support.redis_server import RedisServer

from alertengine.ledger.base import LedgerQuery, LedgerStore, TreeStore
from alertengine.ledger.chain import EntryDraft, entry_leaf
from alertengine.ledger.checkpoint import NoteSigner, open_checkpoint
from alertengine.ledger.merkle import verify_consistency, verify_inclusion
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.replay import replay
from alertengine.ledger.sqlite import SqliteLedgerStore
from alertengine.ledger.tlog import TransparencyLog, verify_tree

KEY = b"bench-ledger-key"
console = Console()


def draft(tenant: str, i: int) -> EntryDraft:
    return EntryDraft(
        tenant_id=tenant,
        kind="transition",
        actor="policy",
        timestamp=1_717_344_000.0 + i * 0.001,
        incident_id=f"inc-{i // 6}",
        stage=("DETECTED", "PROPOSED", "VALIDATED", "AUTHORIZED", "EXECUTED", "RESOLVED")[i % 6],
        decision="advance",
        reason="p95 latency 812 ms over the 500 ms threshold for 3 windows",
        confidence=0.87,
        policy_version="1.0.0",
        data={"score": 72, "p95_ms": 812.5, "error_rate": 0.012},
    )


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


async def group_commit(store: LedgerStore, tenant: str, n: int, workers: int = 256) -> float:
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await store.append(tenant, [draft(tenant, i)])

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return n / (time.perf_counter() - t)


async def batched(
    store: LedgerStore,
    tenant: str,
    n: int,
    size: int = 500,
    tick: Callable[[int], None] | None = None,
) -> float:
    t = time.perf_counter()
    for start in range(0, n, size):
        count = min(size, n - start)
        await store.append(tenant, [draft(tenant, start + j) for j in range(count)])
        if tick is not None:
            tick(count)
    return n / (time.perf_counter() - t)


async def single(store: LedgerStore, tenant: str, n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        await store.append(tenant, [draft(tenant, i)])
    return n / (time.perf_counter() - t)


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.2f} ms"


async def proofs(store: LedgerStore, tenant: str, n: int, count: int) -> dict[str, str]:
    """Median generation and verification times of ``count`` random proofs of each kind."""
    assert isinstance(store, TreeStore)
    log = TransparencyLog(store, NoteSigner.generate("bench"))
    rng = random.Random(7)
    head = await log.tree_head(tenant)
    t = time.perf_counter()
    note = await log.checkpoint(tenant)
    sign_s = time.perf_counter() - t
    t = time.perf_counter()
    open_checkpoint(note, [log.verifier])
    check_s = time.perf_counter() - t
    gen_i, ver_i, gen_c, ver_c = [], [], [], []
    for _ in range(count):
        seq = rng.randint(1, n)
        (entry,) = await store.read(LedgerQuery(tenant_id=tenant, after_seq=seq - 1, limit=1))
        t = time.perf_counter()
        p = await log.inclusion_proof(tenant, seq)
        gen_i.append(time.perf_counter() - t)
        t = time.perf_counter()
        verify_inclusion(seq - 1, n, entry_leaf(entry), p.hashes, head.root)
        ver_i.append(time.perf_counter() - t)
        old = rng.randint(1, n)
        old_head = await log.tree_head(tenant, old)
        t = time.perf_counter()
        c = await log.consistency_proof(tenant, old, n)
        gen_c.append(time.perf_counter() - t)
        t = time.perf_counter()
        verify_consistency(old, n, old_head.root, head.root, c.hashes)
        ver_c.append(time.perf_counter() - t)
    t, cpu = time.perf_counter(), time.process_time()
    problem = await verify_tree(store, store.scan(tenant), tenant)
    tree_s, tree_cpu = time.perf_counter() - t, time.process_time() - cpu
    if problem:
        raise SystemExit(f"verify --tree failed: {problem}")
    return {
        "tree check (verify --tree)": f"{tree_s:.1f} s ({tree_cpu:.1f} s CPU)",
        "inclusion": f"{_ms(gen_i)} / {_ms(ver_i)}",
        "consistency": f"{_ms(gen_c)} / {_ms(ver_c)}",
        "checkpoint": f"{sign_s * 1000:.2f} ms / {check_s * 1000:.2f} ms",
    }


async def run_backend(
    name: str, store: LedgerStore, entries: int, table: Table, n_proofs: int = 200
) -> None:
    with progress_bar() as bar:
        task = bar.add_task(f"{name}: group commit", total=None)
        rate_group = await group_commit(store, "bench-group", 20_000)
        bar.update(task, description=f"{name}: batched appends")
        rate_batch = await batched(store, "bench-batch", 100_000)
        bar.update(task, description=f"{name}: single appends")
        rate_single = await single(store, "bench-single", 2_000)
        bar.remove_task(task)

        fill = bar.add_task(f"{name}: fill {entries:,}", total=entries)
        await batched(store, "bench-big", entries, size=1000, tick=lambda k: bar.advance(fill, k))
        bar.remove_task(fill)

        check = bar.add_task(f"{name}: verify {entries:,}", total=entries)
        t, cpu = time.perf_counter(), time.process_time()
        result = await store.verify("bench-big", progress=lambda k: bar.advance(check, k))
        verify_s, verify_cpu = time.perf_counter() - t, time.process_time() - cpu
        bar.remove_task(check)
        if not result.ok or result.count != entries:
            raise SystemExit(f"{name}: verify failed: {result}")

        fold = bar.add_task(f"{name}: replay {entries:,}", total=entries)
        t, cpu = time.perf_counter(), time.process_time()
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            bar.advance(fold, n - done)
            done = n

        states = await replay(store, "bench-big", progress=tick)
        replay_s, replay_cpu = time.perf_counter() - t, time.process_time() - cpu
        bar.remove_task(fold)
        if done != entries or len(states) != -(-entries // 6):
            raise SystemExit(f"{name}: replay saw {done} entries, {len(states)} incidents")
    timings = await proofs(store, "bench-big", entries, n_proofs) if n_proofs else {}

    table.add_row(
        name,
        f"{rate_group:,.0f}",
        f"{rate_batch:,.0f}",
        f"{rate_single:,.0f}",
        f"{verify_s:.1f} s ({verify_cpu:.1f} s CPU)",
        f"{replay_s:.1f} s ({replay_cpu:.1f} s CPU)",
        timings.get("inclusion", "-"),
        timings.get("consistency", "-"),
    )
    console.print(
        f"{name}: group {rate_group:,.0f}/s, batched {rate_batch:,.0f}/s, single "
        f"{rate_single:,.0f}/s, verify {entries:,} in {verify_s:.1f} s ({verify_cpu:.1f} s CPU"
        f" in this process), replay in {replay_s:.1f} s ({replay_cpu:.1f} s CPU); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; proofs (generate / verify, "
        f"medians): {timings}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--proofs", type=int, default=200, help="proofs timed (0: none)")
    args = parser.parse_args()

    table = Table(title=f"Ledger ({args.entries:,} entries for verify/replay)")
    for col in (
        "backend",
        "group commit /s",
        "batched /s",
        "single /s",
        "verify",
        "replay",
        "inclusion gen/verify",
        "consistency gen/verify",
    ):
        table.add_column(col, justify="right")

    with tempfile.TemporaryDirectory(prefix="ae-bench-") as tmp:
        if not args.skip_sqlite:
            sqlite_store = SqliteLedgerStore(Path(tmp) / "ledger.db", key=KEY)
            try:
                await run_backend(
                    "sqlite (FULL sync)", sqlite_store, args.entries, table, args.proofs
                )
                console.print(
                    f"sqlite: {sqlite_store.groups_committed:,} write transactions in all"
                )
            finally:
                await sqlite_store.close()

    if not args.skip_redis:
        server = RedisServer()
        server.start()
        try:
            redis_store = RedisLedgerStore(server.url, key=KEY)
            try:
                await run_backend(
                    "redis (no persistence)", redis_store, args.entries, table, args.proofs
                )
            finally:
                await redis_store.close()
        finally:
            server.stop()
    console.print(table)


if __name__ == "__main__":
    asyncio.run(main())
