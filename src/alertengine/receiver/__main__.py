"""``python -m alertengine.receiver receipts|checkpoints FILE.db`` and ``keygen NAME``.

``receipts`` prints a receiver's receipts as JSON (what ``alertengine ledger reconcile
--receipts`` reads); ``checkpoints`` prints the latest checkpoint it witnessed of each log
as a JSON list (what ``alertengine ledger verify --witness`` reads); ``keygen NAME`` prints
a new receiver signing key (keep it secret) and its verifier key.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from alertengine.ledger.checkpoint import NoteSigner
from alertengine.receiver.store import SqliteWitnessStore


async def _read(path: str, what: str) -> list[str]:
    store = SqliteWitnessStore(path)
    try:
        return await (store.receipts() if what == "receipts" else store.all_witnessed())
    finally:
        await store.close()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] in ("receipts", "checkpoints"):
        if not Path(argv[1]).exists():
            print(f"no receiver store at {argv[1]}", file=sys.stderr)
            return 2
        print(json.dumps(asyncio.run(_read(argv[1], argv[0])), indent=1))
        return 0
    if len(argv) == 2 and argv[0] == "keygen":
        signer = NoteSigner.generate(argv[1])
        print(signer.skey)
        print(signer.verifier.vkey)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
