"""Person tokens at scale, on a SQLite state store: the time to revoke one person's tokens
(``SignIns.revoke_all``, the operator's ``DELETE /people/{id}/tokens`` and the removal hook)
with ``--tokens`` stored for ``--people`` people, and one pruning run over a backlog of dead
tokens (at most its batch of 200 deleted).

``--src`` runs the same against another source tree (e.g. the code before the per-person
index: ``git archive 0d8c2c6 src | tar -x -C /tmp/old-signingc``), which scans every token.

    .venv/bin/python bench/signin_store.py --tokens 20000 --people 1000 --runs 5
    .venv/bin/python bench/signin_store.py --tokens 20000 --people 1000 --runs 5 \\
        --src /tmp/old-signingc/src
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


async def one_run(tokens: int, people: int, db: Path) -> dict[str, float]:
    from alertengine.clock import VirtualClock
    from alertengine.people import PersonRegistry
    from alertengine.people import signin as si
    from alertengine.stores.sqlite import SqliteStateStore

    clock = VirtualClock(1_700_000_000.0)
    store = SqliteStateStore(db, clock=clock)
    indexed = hasattr(si, "tokens_of")

    async def record(*_: Any) -> None:
        return None

    async def send(*_: Any) -> list[str]:
        return []

    signins = si.SignIns(store, clock, PersonRegistry(store), record, send)
    now = clock.now()
    for i in range(tokens):
        th = f"{i:064x}"
        pid = f"p{i % people}"
        # Half are long dead (revoked 30 days ago): what pruning finds.
        dead = i % 2 == 1
        doc = {
            "tenant": "acme", "person": pid, "issued_at": now - 40 * 86400,
            "expires_at": now + 86400, "client": "cli", "revoked": dead,
            "revoked_at": now - 30 * 86400,
        }  # fmt: skip
        await store.put(si.TOKENS, th, doc)
        if indexed:
            await store.put(si.tokens_of("acme", pid), th, {"expires_at": doc["expires_at"]})
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    n = await signins.revoke_all("acme", "p0", actor="operator:bench")
    out["revoke_all_ms"] = (time.perf_counter() - t0) * 1000
    out["revoked"] = n
    if indexed:
        from alertengine.people.signin_prune import SignInPruner

        pruner = SignInPruner(store, clock)
        await pruner.prune()  # the one-time index backfill check
        t0 = time.perf_counter()
        _, pruned = await pruner.prune()
        out["prune_run_ms"] = (time.perf_counter() - t0) * 1000
        out["pruned"] = pruned
    await store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=20000)
    ap.add_argument("--people", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--src", default=str(ROOT / "src"))
    a = ap.parse_args()
    sys.path.insert(0, a.src)
    runs = []
    for _ in range(a.runs):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(asyncio.run(one_run(a.tokens, a.people, Path(tmp) / "s.db")))
    for key in runs[0]:
        vals = [r[key] for r in runs]
        each = ", ".join(f"{v:.2f}" for v in vals)
        print(f"{key}: median {statistics.median(vals):.2f} ({each})")


if __name__ == "__main__":
    main()
