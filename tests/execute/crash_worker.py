"""A separate process for the crash-safety test: approve-and-execute, or resume.

usage: python -m tests.execute.crash_worker <db-path> <webhook-url> authorize|resume
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.authorize.harness import ALICE, add_tenant, build_system, validated_incident


async def main(db: Path, url: str, mode: str) -> None:
    system = await build_system("sqlite", db, webhook_url=url, execute_on_authorize=False,
                                holder="replica-1")  # fmt: skip
    assert system.executor is not None
    if mode == "authorize":
        await add_tenant(system)
        i = await validated_incident(system)
        link = await system.authorizer.issue("acme", i, ALICE)
        result = await system.authorizer.confirm(link.token)
        print(json.dumps({"incident": i, "authorized": result.authorized}), flush=True)
        await system.executor.run("acme", i)  # the test kills us while the webhook answers
    else:
        outcomes = await system.executor.resume()
        print(json.dumps([o.result for o in outcomes]), flush=True)
    await system.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
