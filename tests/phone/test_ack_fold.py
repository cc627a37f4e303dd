"""The fold of ``ack`` entries (pure): an acknowledgement holds escalation, never counts as an
approval or moves a stage, whatever sequence of acks arrives."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from alertengine.incidents import IncidentState, Stage, fold
from alertengine.ledger.chain import GENESIS_HASH, EntryDraft, seal_many


def draft(kind: str, actor: str, *, stage: Stage | None = None, decision: str = "") -> EntryDraft:
    return EntryDraft(
        tenant_id="t",
        kind=kind,
        actor=actor,
        timestamp=1.0,
        incident_id="inc-1",
        stage=str(stage) if stage else None,
        decision=decision,
        data={"service": "api"},
    )


OPEN = [
    draft("transition", "policy", stage=Stage.DETECTED),
    draft("transition", "orchestrator", stage=Stage.PROPOSED),
    draft("transition", "policy", stage=Stage.VALIDATED),
]
ACKS = st.lists(
    st.tuples(
        st.sampled_from(["person:alice", "person:bob", "policy", "engineer:telegram:1"]),
        st.sampled_from(["acknowledged", "expired", "ack refused", "approve"]),
    ),
    max_size=12,
)


def run(*ds: EntryDraft) -> IncidentState:
    s = fold(seal_many(ds, 0, GENESIS_HASH)).get("t/inc-1")
    assert s is not None
    return s


@given(ACKS)
def test_acks_never_approve_or_move_a_stage(acks: list[tuple[str, str]]) -> None:
    before = run(*OPEN)
    after = run(*OPEN, *(draft("ack", a, decision=d) for a, d in acks))
    assert after.stage is Stage.VALIDATED and after.approvals == ()
    assert dataclasses.replace(after, acked_by="", acked_at=None, last_seq=before.last_seq) == (
        dataclasses.replace(before, acked_by="", acked_at=None)
    )
    # The first acknowledgement since the last expiry holds.
    holder = ""
    for actor, decision in acks:
        if decision == "acknowledged" and not holder:
            holder = actor
        elif decision == "expired":
            holder = ""
    assert after.acked_by == holder


def test_a_new_round_forgets_the_acknowledgement() -> None:
    s = run(
        *OPEN,
        draft("ack", "person:alice", decision="acknowledged"),
        draft("transition", "engineer:web:bob", stage=Stage.AUTHORIZED),
        draft("transition", "orchestrator", stage=Stage.WEBHOOK_FAILED),
        draft("transition", "policy", stage=Stage.VALIDATED),
    )
    assert s.stage is Stage.VALIDATED and s.acked_by == "" and s.acked_at is None
