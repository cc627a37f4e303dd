"""``ledger reconcile`` counts people (``person:<id>``) toward the quorum, as the incident
fold does: an execution approved by people balances, one approved by too few does not."""

from __future__ import annotations

from alertengine.ledger.memory import MemoryLedgerStore
from tests.ledger.conftest import KEY
from tests.ledger.test_reconcile import books, executed, kinds

ALICE = "person:alice"
BOB = "person:bob"


async def test_executions_approved_by_people_balance() -> None:
    store = MemoryLedgerStore(KEY)
    await executed(store, "inc-1", approvers=(ALICE,))
    await executed(store, "inc-2", required=2, approvers=(ALICE, "engineer:web:bob@example.com"))
    r = await books(store)
    assert r.balanced, r.mismatches
    assert (r.authorizations, r.executions, r.receipts) == (2, 2, 2)


async def test_a_quorum_of_two_is_not_met_by_one_person_twice_or_a_malformed_id() -> None:
    store = MemoryLedgerStore(KEY)
    _, _, seq = await executed(store, "inc-1", required=2, approvers=(ALICE, ALICE))
    _, _, seq2 = await executed(store, "inc-2", required=2, approvers=(BOB, "person:x:y"))
    r = await books(store)
    assert kinds(r) == [("execution_without_quorum", seq), ("execution_without_quorum", seq2)]
    assert "1 of 2 distinct approvers (person:alice)" in r.mismatches[0].detail
    assert "1 of 2 distinct approvers (person:bob)" in r.mismatches[1].detail
