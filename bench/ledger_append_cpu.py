"""CPU per appended entry (batched appends of 500), for comparing two source trees.

Runs one backend in this process against the ``alertengine`` package found under SRC (e.g.
this checkout's ``src``, or an older commit extracted with ``git archive <rev> src | tar -x
-C /tmp/base``), so the same machine, minutes apart, measures both: alternate the runs.

    .venv/bin/python bench/ledger_append_cpu.py SRC sqlite|redis [REDIS_URL] [--entries N]

Prints entries/s (wall) and process CPU µs per entry (the caller, the SQLite writer thread;
not the Redis server).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from typing import Any


async def run(backend: str, url: str | None, n: int) -> tuple[float, float]:
    from alertengine.ledger.chain import EntryDraft

    store: Any
    if backend == "sqlite":
        from alertengine.ledger.sqlite import SqliteLedgerStore

        store = SqliteLedgerStore(tempfile.mkdtemp() + "/ledger.db", key=b"k" * 32)
    else:
        from alertengine.ledger.redis import RedisLedgerStore

        store = RedisLedgerStore(str(url), key=b"k" * 32, prefix=f"cpu{time.time_ns()}:")
    try:
        t, cpu = time.perf_counter(), time.process_time()
        for b in range(0, n, 500):
            await store.append(
                "t",
                [
                    EntryDraft(
                        "t",
                        "transition",
                        "policy",
                        1.7e9 + i,
                        incident_id=f"inc-{i // 6}",
                        stage="DETECTED",
                        decision="open",
                        reason=f"entry {i}",
                        confidence=0.5,
                        policy_version="1.0.0",
                        data={"i": i, "score": 70 + i % 30},
                    )
                    for i in range(b, b + 500)
                ],
            )
        return time.perf_counter() - t, time.process_time() - cpu
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("backend", choices=["sqlite", "redis"])
    parser.add_argument("redis_url", nargs="?")
    parser.add_argument("--entries", type=int, default=50_000)
    args = parser.parse_args()
    sys.path.insert(0, args.src)
    wall, cpu = asyncio.run(run(args.backend, args.redis_url, args.entries))
    print(
        f"{args.src} {args.backend}: {args.entries / wall:,.0f}/s wall, "
        f"{cpu / args.entries * 1e6:.1f} us CPU/entry"
    )


if __name__ == "__main__":
    main()
