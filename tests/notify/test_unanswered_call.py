"""The pure decision after a call nobody answered: the person's later channels, then the next
person; never someone escalation already asked, never the same call again (a chain of
unanswered calls ends)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alertengine.notify.delivery import Recipient
from alertengine.notify.escalation import (
    UNANSWERED,
    FallOver,
    after_unanswered,
    escalation_levels,
)

KINDS = ("voice", "telegram", "whatsapp", "slack")
NUMBERS = ("+15550001111", "+1 555 000 2222", "+15550003333")


@st.composite
def routes(draw: st.DrawFn) -> list[list[Recipient]]:
    people = draw(st.integers(1, 4))
    route: list[Recipient] = []
    for p in range(people):
        n = draw(st.integers(1, 4))
        for _ in range(n):
            kind = draw(st.sampled_from(KINDS))
            address = draw(st.sampled_from(NUMBERS)) if kind == "voice" else f"chat-{p}"
            route.append(Recipient(kind, address, f"person:p{p}"))
    return escalation_levels(route)


def voice(levels: list[list[Recipient]]) -> st.SearchStrategy[tuple[int, int]]:
    calls = [
        (i, j) for i, lv in enumerate(levels) for j, r in enumerate(lv) if r.channel == "voice"
    ]
    return st.sampled_from(calls) if calls else st.nothing()


@given(st.data())
def test_only_later_channels_of_the_same_person_then_a_later_person(data: st.DataObject) -> None:
    levels = data.draw(routes())
    at, j = data.draw(voice(levels))
    escalations = data.draw(st.integers(0, len(levels)))
    called = levels[at][j]
    plan = after_unanswered(levels, called.identity, "voice", called.address, escalations)
    mine = levels[at]
    # A suffix of the person's own channels, none before the call.
    assert plan.channels == tuple(mine[len(mine) - len(plan.channels) :])
    assert all(r.identity == called.identity for r in plan.channels)
    assert len(plan.channels) <= len(mine) - 1 - j
    if plan.next_level is not None:
        # Someone not yet asked: after the caller and after whoever escalation asked last.
        assert at >= escalations and plan.next_level == at + 1 < len(levels)
    else:
        assert at < escalations or at == len(levels) - 1


@given(st.data())
def test_a_chain_of_unanswered_calls_ends(data: st.DataObject) -> None:
    """Each unanswered call falls over to strictly later channels: following every call in
    the fall-over (each unanswered too) stops within the person's channel count."""
    levels = data.draw(routes())
    at, j = data.draw(voice(levels))
    called = levels[at][j]
    steps = 0
    while True:
        plan = after_unanswered(levels, called.identity, "voice", called.address, at)
        nxt = next((r for r in plan.channels if r.channel == "voice"), None)
        if nxt is None:
            break
        called, steps = nxt, steps + 1
        assert steps < len(levels[at])


@given(routes(), st.integers(0, 5))
def test_someone_off_the_route_hands_over_to_whoever_escalation_asks_next(
    levels: list[list[Recipient]], escalations: int
) -> None:
    plan = after_unanswered(levels, "person:gone", "voice", NUMBERS[0], escalations)
    expected = escalations + 1 if escalations + 1 < len(levels) else None
    assert plan == FallOver((), expected)


def test_the_number_called_picks_the_call_among_two_voice_channels() -> None:
    levels = escalation_levels(
        [
            Recipient("voice", "+15550001111", "person:alice"),
            Recipient("voice", "+15550002222", "person:alice"),
            Recipient("telegram", "42", "person:alice"),
            Recipient("telegram", "43", "person:bob"),
        ]
    )
    first = after_unanswered(levels, "person:alice", "voice", "+1 555 000 1111", 0)
    assert [r.address for r in first.channels] == ["+15550002222", "42"]
    second = after_unanswered(levels, "person:alice", "voice", "+15550002222", 0)
    assert [r.address for r in second.channels] == ["42"]
    # An unknown number: after her last call, never back to the start.
    unknown = after_unanswered(levels, "person:alice", "voice", "+19999999999", 0)
    assert [r.address for r in unknown.channels] == ["42"]
    assert first.next_level == second.next_level == 1


def test_escalation_already_past_the_caller_asks_nobody_new() -> None:
    levels = escalation_levels(
        [
            Recipient("voice", "+15550001111", "person:alice"),
            Recipient("telegram", "42", "person:alice"),
            Recipient("telegram", "43", "person:bob"),
            Recipient("telegram", "44", "person:carol"),
        ]
    )
    plan = after_unanswered(levels, "person:alice", "voice", "+15550001111", 1)
    assert plan == FallOver((levels[0][1],), None)
    last = after_unanswered(levels[:1], "person:alice", "voice", "+15550001111", 0)
    assert last.next_level is None


def test_only_final_statuses_of_an_unanswered_call() -> None:
    assert UNANSWERED == {"busy", "no-answer", "failed", "canceled"}
    assert not UNANSWERED & {"completed", "in-progress", "ringing", "queued", "initiated"}
