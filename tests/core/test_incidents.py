"""The transition table and fold, including property tests over random event sequences."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from alertengine.incidents import (
    OPEN_STAGES,
    TRANSITIONS,
    IncidentState,
    Stage,
    apply,
    check_transition,
    fold,
)
from alertengine.ledger.chain import GENESIS_HASH, EntryDraft, seal_many

ACTORS = [
    "policy",
    "orchestrator",
    "engineer:telegram:1",
    "engineer:web:bob",
    "diagnosis:rules",
    "x",
]


def draft(stage: Stage | str, actor: str, kind: str = "transition", **data) -> EntryDraft:
    return EntryDraft(
        tenant_id="t",
        kind=kind,
        actor=actor,
        timestamp=1.0,
        incident_id="inc-1",
        stage=str(stage),
        data={"service": "api", **data},
    )


def run(*ds: EntryDraft) -> IncidentState | None:
    return fold(seal_many(ds, 0, GENESIS_HASH)).get("t/inc-1")


def test_happy_path():
    s = run(
        draft(Stage.DETECTED, "policy"),
        draft(Stage.PROPOSED, "orchestrator", action="restart"),
        draft(Stage.VALIDATED, "policy"),
        draft(Stage.AUTHORIZED, "engineer:telegram:42"),
        draft(Stage.EXECUTED, "orchestrator"),
        draft(Stage.RESOLVED, "policy"),
    )
    assert s is not None and s.stage is Stage.RESOLVED and not s.is_open
    assert s.action == "restart"
    assert [h.stage for h in s.history][-2:] == [Stage.EXECUTED, Stage.RESOLVED]


def test_diagnosis_never_moves_a_stage():
    s = run(
        draft(Stage.DETECTED, "policy"),
        draft(Stage.AUTHORIZED, "diagnosis:claude"),
        draft(Stage.RESOLVED, "diagnosis:claude"),
        draft("VALIDATED", "diagnosis:rules", kind="diagnosis", cause="db"),
    )
    assert s is not None and s.stage is Stage.DETECTED
    assert s.diagnosis is not None and s.diagnosis["cause"] == "db"


def test_only_engineers_authorize_and_only_from_validated():
    base = IncidentState("t", "i", "api", Stage.VALIDATED, 0, 0, "v", 1)
    assert check_transition(base, Stage.AUTHORIZED, "engineer:web:alice") is None
    assert check_transition(base, Stage.AUTHORIZED, "orchestrator") is not None
    assert check_transition(base, Stage.AUTHORIZED, "engineer:web:") is not None
    proposed = IncidentState("t", "i", "api", Stage.PROPOSED, 0, 0, "v", 1)
    assert check_transition(proposed, Stage.AUTHORIZED, "engineer:web:alice") is not None


def test_two_person_rule():
    s = run(
        draft(Stage.DETECTED, "policy", approvals_required=2),
        draft(Stage.PROPOSED, "orchestrator"),
        draft(Stage.VALIDATED, "policy"),
        draft(Stage.VALIDATED, "engineer:web:alice", kind="approval"),
        draft(Stage.AUTHORIZED, "engineer:web:alice"),  # same person again: not enough
    )
    assert s is not None and s.stage is Stage.VALIDATED and s.approvers == ("engineer:web:alice",)
    assert check_transition(s, Stage.AUTHORIZED, "engineer:web:alice") is not None
    assert check_transition(s, Stage.AUTHORIZED, "engineer:web:bob") is None


def test_recovered_only_by_policy():
    s = run(draft(Stage.DETECTED, "policy"), draft(Stage.RECOVERED, "orchestrator"))
    assert s is not None and s.stage is Stage.DETECTED
    s = run(draft(Stage.DETECTED, "policy"), draft(Stage.RECOVERED, "policy"))
    assert s is not None and s.stage is Stage.RECOVERED


events = st.lists(
    st.tuples(
        st.sampled_from(list(Stage)),
        st.sampled_from(ACTORS),
        st.sampled_from(["transition", "approval", "diagnosis"]),
    ),
    max_size=30,
)


@given(events)
def test_any_sequence_folds_to_a_legal_state(evts):
    ds = [draft(stage, actor, kind) for stage, actor, kind in evts]
    entries = seal_many(ds, 0, GENESIS_HASH)
    state: IncidentState | None = None
    for e in entries:
        before = state
        state = apply(state, e)
        if e.kind == "transition" and state is not before and state is not None:
            # every applied move is in the table (or opens the incident) and was allowed
            assert before is None or state.stage in TRANSITIONS[before.stage]
            assert check_transition(before, state.stage, e.actor) is None
        if e.kind == "transition" and check_transition(before, Stage(str(e.stage)), e.actor):
            # a refused transition never changes state
            assert state == before
    if state is not None:
        assert state.history[0].stage is Stage.DETECTED
        assert state.stage is state.history[-1].stage
        assert (state.stage in OPEN_STAGES) == state.is_open
    assert fold(entries).get("t/inc-1") == state


def test_a_new_authorization_starts_with_no_execution_progress():
    """After EXECUTED -> PROPOSED -> ... -> AUTHORIZED again, the executor owes a new call:
    the first round's success must not make it skip the second (found by the receiver's
    end-to-end test, where a re-proposed incident was marked EXECUTED without any call)."""

    def execution(decision: str) -> EntryDraft:
        d = draft(Stage.AUTHORIZED, "orchestrator", kind="execution", attempt=1, status_code=200)
        return dataclasses.replace(d, decision=decision)

    first_round = (
        draft(Stage.DETECTED, "policy"),
        draft(Stage.PROPOSED, "policy", action="restart"),
        draft(Stage.VALIDATED, "policy"),
        draft(Stage.AUTHORIZED, "engineer:web:bob"),
        execution("started"),
        execution("succeeded"),
    )
    done = run(*first_round)
    assert done is not None and done.progress.succeeded and done.progress.started_seq == 5
    again = run(
        *first_round,
        draft(Stage.EXECUTED, "orchestrator"),
        draft(Stage.PROPOSED, "policy", action="restart"),
        draft(Stage.VALIDATED, "policy"),
        draft(Stage.AUTHORIZED, "engineer:web:bob"),
    )
    assert again is not None and again.stage is Stage.AUTHORIZED
    assert not again.progress.succeeded and again.progress.attempts == 0
    assert again.progress.started_seq == 0
