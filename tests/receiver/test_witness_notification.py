"""``Receiver.witness``: a checkpoint carried by a notification (not a recovery call) is
witnessed like a call's: verified, checked for consistency, remembered; so the next call's
larger tree must extend it, and a rolled-back or forged one is refused."""

from __future__ import annotations

import pytest

from alertengine.ledger.checkpoint import NoteSigner
from alertengine.ledger.tlog import ConsistencyProof, TransparencyLog, origin_for
from alertengine.receiver import MemoryWitnessStore, Receiver
from alertengine.receiver.core import Inconsistent
from tests.ledger.conftest import draft
from tests.receiver.test_receiver import LOG, ME, SECRET, call, grown


def receiver_counting(log: TransparencyLog, fetched: list[tuple[int, int]]) -> Receiver:
    async def fetch(tenant: str, a: int, b: int) -> ConsistencyProof:
        fetched.append((a, b))
        return await log.consistency_proof(tenant, a, b)

    return Receiver(
        secret=SECRET,
        log_keys=[LOG.verifier.vkey],
        signer=ME,
        store=MemoryWitnessStore(),
        fetch_consistency=fetch,
        tenant_id="acme",
    )


async def test_a_witnessed_notification_checkpoint_is_what_the_next_call_must_extend() -> None:
    store, log = await grown(5)
    fetched: list[tuple[int, int]] = []
    rec = receiver_counting(log, fetched)
    head = await rec.witness("acme", await log.checkpoint("acme"))
    assert head.size == 5 and fetched == []  # the first one: nothing to be consistent with
    assert await rec.store.witnessed(origin_for("acme")) == await log.checkpoint("acme", 5)

    for i in range(5, 9):
        await store.append("acme", [draft("acme", i, reason=f"entry {i}")])
    answer = await rec.receive(*call(await log.checkpoint("acme")))
    assert answer.status == 200 and answer.run
    assert fetched == [(5, 9)]  # the call's tree was checked against the witnessed one

    # An older checkpoint shown afterwards (a rollback) is refused, and not remembered.
    with pytest.raises(Inconsistent) as rolled_back:
        await rec.witness("acme", await log.checkpoint("acme", 5))
    assert rolled_back.value.error == "checkpoint_rollback"
    assert (await rec.witness("acme", await log.checkpoint("acme"))).size == 9


async def test_a_checkpoint_signed_by_another_key_is_not_witnessed() -> None:
    store, log = await grown(3)
    rec = receiver_counting(log, [])
    forged = await TransparencyLog(store, NoteSigner.generate(LOG.name)).checkpoint("acme")
    with pytest.raises(Inconsistent) as bad:
        await rec.witness("acme", forged)
    assert bad.value.error == "checkpoint_invalid"
    assert await rec.store.witnessed(origin_for("acme")) is None
