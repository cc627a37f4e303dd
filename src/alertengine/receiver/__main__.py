"""``python -m alertengine.receiver receipts FILE.db``: print a receiver's receipts as JSON.

The output is what ``alertengine ledger reconcile --receipts`` reads; ``keygen NAME``
prints a new receiver signing key (keep it secret) and its verifier key.
"""

from __future__ import annotations

import asyncio
import json
import sys

from alertengine.ledger.checkpoint import NoteSigner
from alertengine.receiver.store import SqliteWitnessStore


async def _receipts(path: str) -> list[str]:
    store = SqliteWitnessStore(path)
    try:
        return await store.receipts()
    finally:
        await store.close()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "receipts":
        print(json.dumps(asyncio.run(_receipts(argv[1])), indent=1))
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
