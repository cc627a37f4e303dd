"""The executor's side: the checkpoint rides on every call, the receipt is ledgered, and a
receiver that refuses our checkpoint is loud (ERROR log, receipt entry ``refused``, no
success, dead letter with the reason, the status section). A real receiver over HTTP."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from alertengine.execute import dlq_list
from alertengine.execute.receipts import ReceiptBook
from alertengine.incidents import Stage
from alertengine.ledger.base import TreeStore
from alertengine.ledger.checkpoint import NoteSigner, TreeHead, open_checkpoint, sign_checkpoint
from alertengine.ledger.tlog import TransparencyLog, origin_for
from alertengine.receiver import CHECKPOINT_HEADER, MemoryWitnessStore, Receiver, open_receipt
from alertengine.receiver.receipt import body_sha256
from alertengine.receiver.web import starlette_endpoint
from tests.authorize.harness import (
    ALICE,
    WEBHOOK_SECRET,
    System,
    add_tenant,
    build_system,
    entries,
    validated_incident,
)
from tests.support.servers import ServerThread

LOG = NoteSigner.generate("alertengine")
ME = NoteSigner.generate("acme-recovery")


@dataclass
class Served:
    receiver: Receiver
    url: str
    ran: list[dict[str, Any]] = field(default_factory=list)
    seen_headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def served() -> Iterator[Served]:
    rec = Receiver(
        secret=WEBHOOK_SECRET, log_keys=[LOG.verifier], signer=ME, store=MemoryWitnessStore()
    )
    box: list[Served] = []

    def action(payload: dict[str, Any]) -> None:
        box[0].ran.append(payload)

    endpoint = starlette_endpoint(rec, action)

    async def hook(request: Any) -> Any:
        box[0].seen_headers.append(dict(request.headers))
        return await endpoint(request)

    server = ServerThread(Starlette(routes=[Route("/recover", hook, methods=["POST"])]))
    server.start()
    box.append(Served(rec, server.base_url + "/recover"))
    yield box[0]
    server.stop()


async def system_for(served: Served) -> tuple[System, ReceiptBook]:
    sys = await build_system(webhook_url=served.url, execute_on_authorize=False)
    assert sys.executor is not None and isinstance(sys.ledger, TreeStore)
    book = ReceiptBook(sys.engine, TransparencyLog(sys.ledger, LOG).checkpoint)
    sys.executor.receipts = book
    await add_tenant(sys)
    return sys, book


async def authorize(sys: System) -> str:
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, ALICE)
    assert (await sys.authorizer.confirm(link.token)).authorized
    return i


async def test_the_call_carries_our_checkpoint_and_its_receipt_is_ledgered(
    served: Served,
) -> None:
    sys, _ = await system_for(served)
    i = await authorize(sys)
    assert sys.executor is not None
    out = await sys.executor.run("acme", i)
    assert out.result == "executed" and len(served.ran) == 1
    sent = served.seen_headers[0][CHECKPOINT_HEADER.lower()]
    head = open_checkpoint(base64.b64decode(sent).decode(), [LOG.verifier])
    assert head.origin == origin_for("acme") and head.size > 0
    (entry,) = await entries(sys, "acme", "receipt")
    assert entry.decision == "accepted" and entry.data["valid"] is True
    assert entry.data["idempotency_key"] == out.idempotency_key
    receipt = open_receipt(entry.data["receipt"], [ME.verifier])
    # Each attempt is ledgered as `started` before the call (the fence), then its outcome.
    (request,) = [e for e in await entries(sys, "acme", "execution") if e.decision != "started"]
    assert receipt.key == out.idempotency_key and receipt.checkpoint == head
    assert entry.data["body_sha256"] == receipt.body_sha256 and request.data["status_code"] == 200
    state = await sys.engine.get("acme", i)
    assert state is not None and state.stage is Stage.EXECUTED
    await sys.close()


async def test_a_refused_checkpoint_is_ledgered_loudly_and_dead_lettered(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    sys, book = await system_for(served)
    # The receiver once witnessed a much larger tree of our log: the store we run on now
    # is an older copy (a rollback).
    bigger = sign_checkpoint(TreeHead(origin_for("acme"), 500, os.urandom(32)), LOG)
    await served.receiver.store.witness(origin_for("acme"), bigger, 500)
    i = await authorize(sys)
    assert sys.executor is not None
    with caplog.at_level(logging.ERROR, logger="alertengine.execute.receipts"):
        out = await sys.executor.run("acme", i)
    assert served.ran == []  # the receiver did not run the recovery
    assert out.result == "failed" and out.status_code == 409 and out.attempts == 1
    state = await sys.engine.get("acme", i)
    assert state is not None and state.stage is Stage.WEBHOOK_FAILED
    (refusal,) = await entries(sys, "acme", "receipt")
    assert refusal.decision == "refused" and refusal.data["error"] == "checkpoint_rollback"
    assert "already witnessed size 500" in refusal.reason
    assert open_receipt(refusal.data["receipt"], [ME.verifier]).verdict == "refused"
    (attempt,) = [e for e in await entries(sys, "acme", "execution") if e.decision != "started"]
    assert attempt.decision == "attempt_failed"
    assert attempt.data["error"].startswith("witness_refused: checkpoint_rollback")
    (doc,) = await dlq_list(sys.store)
    assert doc["last_status"] == 409 and "rolled back" in doc["last_error"]
    assert any(
        r.levelno == logging.ERROR and "WITNESS REFUSED OUR CHECKPOINT" in r.getMessage()
        for r in caplog.records
    )
    assert book.status()["refused_checkpoints"] == 1
    assert book.status()["recent"][0]["incident_id"] == i
    await sys.close()


async def test_a_receipt_for_another_body_is_ledgered_as_invalid(served: Served) -> None:
    """A receiver (or something in between) that signs a receipt for other bytes."""
    sys, _ = await system_for(served)
    i = await authorize(sys)
    original = served.receiver._signed

    def lying(receipt: Any) -> dict[str, Any]:
        from dataclasses import replace

        return original(replace(receipt, body_sha256=body_sha256(b"something else")))

    served.receiver._signed = lying  # type: ignore[method-assign]
    assert sys.executor is not None
    await sys.executor.run("acme", i)
    (entry,) = await entries(sys, "acme", "receipt")
    assert entry.decision == "invalid" and entry.data["valid"] is False
    assert "body hash" in entry.reason
    await sys.close()


async def test_a_receiver_that_cannot_check_yet_is_retried_not_refused(served: Served) -> None:
    """503 consistency_unavailable is "retry later", never a verdict on the log."""
    import time

    from alertengine.clock import VirtualClock
    from tests.execute.test_executor import run_with_virtual_time

    clock = VirtualClock(start=time.time())
    sys = await build_system(clock=clock, webhook_url=served.url, execute_on_authorize=False)
    assert sys.executor is not None and isinstance(sys.ledger, TreeStore)
    log = TransparencyLog(sys.ledger, LOG)
    sys.executor.receipts = ReceiptBook(sys.engine, log.checkpoint)
    await add_tenant(sys)
    i = await authorize(sys)
    # The receiver witnessed an earlier, smaller tree and has no way to fetch proofs.
    await served.receiver.store.witness(origin_for("acme"), await log.checkpoint("acme", 1), 1)
    out = await run_with_virtual_time(sys, clock, i)
    assert out.result == "failed" and out.attempts == 3 and out.status_code == 503
    assert served.ran == [] and await entries(sys, "acme", "receipt") == []
    (doc,) = await dlq_list(sys.store)
    assert not doc["last_error"].startswith("witness_refused")
    await sys.close()
