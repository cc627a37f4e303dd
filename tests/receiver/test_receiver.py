"""alertengine.receiver against a real transparency log: signatures, replays, witnessing.

Every promise attacked: a forged or stale call is refused; a replayed Idempotency-Key runs
once (also after the receiver restarts on its SQLite file); a rolled-back, forked, forged
or foreign checkpoint is refused with 409 and a signed ``refused`` receipt; a lying proof
server is not believed; a receipt says exactly what was received, under the receiver's key.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from alertengine.execute.signing import IDEMPOTENCY_HEADER, sign
from alertengine.ledger.checkpoint import NoteSigner
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.tlog import ConsistencyProof, TransparencyLog
from alertengine.receiver import (
    CHECKPOINT_HEADER,
    MemoryWitnessStore,
    Receiver,
    SqliteWitnessStore,
    WitnessStore,
    open_receipt,
)
from alertengine.receiver.receipt import body_sha256
from tests.ledger.conftest import KEY, draft

SECRET = "whsec-receiver-test-0123456789abcdefghij"
LOG = NoteSigner.generate("test-log")
ME = NoteSigner.generate("tenant-receiver")


async def grown(n: int, tag: str = "") -> tuple[MemoryLedgerStore, TransparencyLog]:
    store = MemoryLedgerStore(KEY)
    for i in range(n):
        await store.append("acme", [draft("acme", i, reason=f"entry {i}{tag}")])
    return store, TransparencyLog(store, LOG)


def call(
    checkpoint: str | None, key: str = "ae-1", *, secret: str = SECRET, at: float | None = None,
    body: dict[str, object] | None = None,
) -> tuple[dict[str, str], bytes]:  # fmt: skip
    raw = json.dumps(
        body or {"tenant_id": "acme", "incident_id": "inc-1", "idempotency_key": key},
        sort_keys=True,
    ).encode()
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: key,
        **sign(secret, raw, time.time() if at is None else at),
    }
    if checkpoint is not None:
        headers[CHECKPOINT_HEADER] = base64.b64encode(checkpoint.encode()).decode()
    return headers, raw


def receiver(log: TransparencyLog | None, store: WitnessStore | None = None) -> Receiver:
    async def fetch(tenant: str, a: int, b: int) -> ConsistencyProof:
        assert log is not None
        return await log.consistency_proof(tenant, a, b)

    return Receiver(
        secret=SECRET,
        log_keys=[LOG.verifier.vkey],
        signer=ME,
        store=store or MemoryWitnessStore(),
        fetch_consistency=fetch if log is not None else None,
    )


async def test_an_accepted_call_runs_and_its_receipt_says_what_was_received() -> None:
    _, log = await grown(7)
    rec = receiver(log)
    headers, body = call(await log.checkpoint("acme"))
    answer = await rec.receive(headers, body)
    assert answer.status == 200 and answer.run and answer.body["duplicate"] is False
    receipt = open_receipt(answer.body["receipt"], [ME.verifier])
    head = await log.tree_head("acme")
    assert receipt.key == "ae-1" and receipt.body_sha256 == body_sha256(body)
    assert receipt.checkpoint == head and receipt.verdict == "accepted"
    assert answer.body["receiver_key"] == ME.verifier.vkey
    # Anyone else's key does not open it; a changed byte does not verify.
    with pytest.raises(ValueError):
        open_receipt(answer.body["receipt"], [NoteSigner.generate("tenant-receiver").verifier])
    with pytest.raises(ValueError):
        open_receipt(answer.body["receipt"].replace("accepted", "refused"), [ME.verifier])


async def test_a_replayed_call_runs_once_even_after_a_restart(tmp_path: Path) -> None:
    _, log = await grown(3)
    path = tmp_path / "witness.db"
    rec = receiver(log, SqliteWitnessStore(path))
    headers, body = call(await log.checkpoint("acme"))
    first = await rec.receive(headers, body)
    again = await rec.receive(headers, body)
    assert first.run and not again.run
    assert again.body["duplicate"] is True and again.body["receipt"] == first.body["receipt"]
    await rec.store.close()
    restarted = receiver(log, SqliteWitnessStore(path))
    third = await restarted.receive(*call(await log.checkpoint("acme")))
    assert not third.run and third.body["receipt"] == first.body["receipt"]
    assert await restarted.store.receipts() == [first.body["receipt"]]
    # The same key with another body is not a replay: refused, not run.
    other = await restarted.receive(
        *call(
            await log.checkpoint("acme"),
            body={"tenant_id": "acme", "incident_id": "inc-2", "idempotency_key": "ae-1"},
        )
    )
    assert other.status == 422 and not other.run
    await restarted.store.close()


async def test_forged_or_stale_signatures_are_refused_before_anything_else() -> None:
    _, log = await grown(3)
    store = MemoryWitnessStore()
    rec = receiver(log, store)
    note = await log.checkpoint("acme")
    forged = await rec.receive(*call(note, secret="whsec-attacker-0123456789abcdefghijkl"))
    headers, body = call(note)
    tampered = await rec.receive(headers, body.replace(b"inc-1", b"inc-9"))
    stale = await rec.receive(*call(note, at=time.time() - 3600))
    for answer in (forged, tampered, stale):
        assert answer.status == 401 and not answer.run
        assert answer.body["error"] == "bad_signature" and "receipt" not in answer.body
    assert await store.receipts() == [] and await store.witnessed("alertengine/ledger/acme") is None


async def test_a_rolled_back_checkpoint_is_refused_with_a_signed_reason() -> None:
    store, log = await grown(20)
    rec = receiver(log)
    old = await log.checkpoint("acme", 12)
    assert (await rec.receive(*call(await log.checkpoint("acme"), "ae-1"))).run
    answer = await rec.receive(*call(old, "ae-2"))
    assert answer.status == 409 and not answer.run
    assert answer.body["error"] == "checkpoint_rollback"
    assert "already witnessed size 20" in answer.body["reason"]
    receipt = open_receipt(answer.body["receipt"], [ME.verifier])
    assert receipt.verdict == "refused" and receipt.checkpoint is not None
    assert receipt.checkpoint.size == 12 and "rolled back" in receipt.reason
    # Refused calls are not claimed: the key can still run once the log is sound again.
    assert len(await rec.store.receipts()) == 1


async def test_a_forked_log_is_refused_at_the_same_size_and_when_it_grows() -> None:
    _, honest = await grown(10)
    _, forked = await grown(14, tag=" (rewritten)")  # same key, other history
    rec = receiver(forked)  # the orchestrator now serves the forked tree and its proofs
    assert (await rec.receive(*call(await honest.checkpoint("acme"), "ae-1"))).run
    same_size = await rec.receive(*call(await forked.checkpoint("acme", 10), "ae-2"))
    assert same_size.status == 409 and same_size.body["error"] == "checkpoint_fork"
    grew = await rec.receive(*call(await forked.checkpoint("acme"), "ae-3"))
    assert grew.status == 409 and grew.body["error"] == "checkpoint_fork"
    assert not same_size.run and not grew.run


async def test_an_honest_log_that_grew_is_accepted_and_witnessed_further() -> None:
    store, log = await grown(10)
    rec = receiver(log)
    assert (await rec.receive(*call(await log.checkpoint("acme"), "ae-1"))).run
    for i in range(10, 15):
        await store.append("acme", [draft("acme", i)])
    answer = await rec.receive(*call(await log.checkpoint("acme"), "ae-2"))
    assert answer.run
    witnessed = await rec.store.witnessed("alertengine/ledger/acme")
    assert witnessed is not None and "\n15\n" in witnessed


async def test_a_lying_proof_server_is_not_believed() -> None:
    _, log = await grown(10)
    _, other = await grown(12, tag=" (other)")

    async def lie(tenant: str, a: int, b: int) -> ConsistencyProof:
        return await other.consistency_proof(tenant, a, b)  # a proof for another tree

    async def wrong_sizes(tenant: str, a: int, b: int) -> ConsistencyProof:
        return await log.consistency_proof(tenant, a - 1, a)  # a true proof, other sizes

    for fetch in (lie, wrong_sizes):
        store, grown_log = await grown(12)
        rec = Receiver(
            secret=SECRET, log_keys=[LOG.verifier], signer=ME, store=MemoryWitnessStore(),
            fetch_consistency=fetch,
        )  # fmt: skip
        assert (await rec.receive(*call(await grown_log.checkpoint("acme", 10), "ae-1"))).run
        answer = await rec.receive(*call(await grown_log.checkpoint("acme"), "ae-2"))
        assert answer.status == 409 and answer.body["error"] == "checkpoint_fork", fetch


async def test_forged_foreign_or_missing_checkpoints_are_refused() -> None:
    _, log = await grown(5)
    rec = receiver(log)
    impostor = TransparencyLog(log.store, NoteSigner.generate("test-log"))  # same name
    forged = await rec.receive(*call(await impostor.checkpoint("acme"), "ae-1"))
    assert forged.status == 409 and forged.body["error"] == "checkpoint_invalid"
    await log.store.append("other", [draft("other", 0)])  # type: ignore[attr-defined]
    foreign = await rec.receive(*call(await log.checkpoint("other"), "ae-2"))
    assert foreign.status == 409 and "not 'alertengine/ledger/acme'" in foreign.body["reason"]
    missing = await rec.receive(*call(None, "ae-3"))
    assert missing.status == 428 and missing.body["error"] == "checkpoint_missing"
    assert not (forged.run or foreign.run or missing.run)


async def test_when_the_proof_cannot_be_fetched_the_call_waits_for_a_retry() -> None:
    _, log = await grown(8)

    async def down(tenant: str, a: int, b: int) -> ConsistencyProof:
        raise ConnectionError("orchestrator unreachable")

    rec = Receiver(
        secret=SECRET, log_keys=[LOG.verifier], signer=ME, store=MemoryWitnessStore(),
        fetch_consistency=down,
    )  # fmt: skip
    assert (await rec.receive(*call(await log.checkpoint("acme", 4), "ae-1"))).run
    answer = await rec.receive(*call(await log.checkpoint("acme"), "ae-2"))
    assert answer.status == 503 and answer.body["error"] == "consistency_unavailable"
    assert not answer.run
