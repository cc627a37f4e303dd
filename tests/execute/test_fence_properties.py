"""The ledger's execution fence, as pure functions: whatever order several runs' steps
interleave in, the guards let at most one success through for one authorization."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from alertengine.execute.executor import may_record, may_start
from alertengine.incidents import IncidentState, Stage, apply
from alertengine.ledger import Entry


def entry(
    seq: int, kind: str, stage: str | None, decision: str, actor: str, **data: object
) -> Entry:
    return Entry(
        seq=seq, timestamp=1000.0 + seq, tenant_id="acme", incident_id="inc-1", kind=kind,
        stage=stage, actor=actor, decision=decision, reason="", confidence=None,
        policy_version="1", data=dict(data), prev_hash="", hash="",
    )  # fmt: skip


def authorized() -> tuple[IncidentState, int]:
    steps = [
        entry(1, "transition", "DETECTED", "open", "policy", service="checkout"),
        entry(2, "transition", "PROPOSED", "", "orchestrator"),
        entry(3, "transition", "VALIDATED", "", "policy"),
        entry(4, "transition", "AUTHORIZED", "", "engineer:web:alice"),
    ]
    state: IncidentState | None = None
    for e in steps:
        state = apply(state, e)
    assert state is not None and state.stage is Stage.AUTHORIZED
    return state, 4


@dataclass
class Run:
    last_start: int = 0  # seq of this run's latest started entry
    stopped: bool = False


@settings(max_examples=300, deadline=None)
@given(
    runs=st.integers(min_value=2, max_value=4),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=3), st.sampled_from(["start", "ok", "fail"])),
        max_size=40,
    ),
)
def test_at_most_one_success_whatever_the_interleaving(
    runs: int, steps: list[tuple[int, str]]
) -> None:
    state, auth_seq = authorized()
    seq = auth_seq
    rs = [Run() for _ in range(runs)]
    successes = 0
    for who, step in steps:
        r = rs[who % runs]
        if r.stopped:
            continue
        if step == "start":
            if may_start(auth_seq, r.last_start)(state) is not None:
                r.stopped = True  # fenced off (or done): the run stops
                continue
            seq += 1
            state = apply(state, entry(seq, "execution", "AUTHORIZED", "started",
                                       "orchestrator", attempt=1, holder=f"r{who}"))  # fmt: skip
            r.last_start = seq
        elif r.last_start:  # an outcome, only after a start of its own
            if may_record(auth_seq, r.last_start)(state) is not None:
                r.stopped = True
                continue
            seq += 1
            decision = "succeeded" if step == "ok" else "attempt_failed"
            state = apply(state, entry(seq, "execution", "AUTHORIZED", decision,
                                       "orchestrator", attempt=1))  # fmt: skip
            successes += step == "ok"
        assert state is not None
    assert successes <= 1
    assert state is not None and state.progress.succeeded is (successes == 1)
