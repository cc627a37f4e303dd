"""The interaction parser: Slack's real ``block_actions`` shape is read; anything else, of
any bytes or any JSON, is a :class:`MalformedInteraction` (a 400) or None, never a crash."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertengine.notify.slack_webhook import Interaction, MalformedInteraction, parse_interaction
from tests.support.fakes.slack import FakeSlack

MESSAGE = {
    "text": "checkout degraded",
    "ts": "1700000000.000001",
    "blocks": [
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "ae_ack",
                    "value": "jti-123",
                    "text": {"type": "plain_text", "text": "I'm on it"},
                }
            ],
        }
    ],
}


def _form(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_slacks_block_actions_payload_is_read() -> None:
    fake = FakeSlack(team_id="T9TEAM")
    signed = fake.press(MESSAGE, "ae_ack", "U0ALICE", hooks_base="https://hooks.slack.com")
    got = parse_interaction(signed.body)
    assert isinstance(got, Interaction)
    assert (got.user_id, got.team_id) == ("U0ALICE", "T9TEAM")
    assert (got.action.action_id, got.action.value, got.action.type) == (
        "ae_ack",
        "jti-123",
        "button",
    )
    assert got.action.action_ts == signed.payload["actions"][0]["action_ts"]
    assert got.response_url.startswith("https://hooks.slack.com/actions/T9TEAM/")


def test_other_interaction_types_are_none() -> None:
    for kind in ("shortcut", "message_action", "view_submission", "interactive_message"):
        assert parse_interaction(_form({"type": kind})) is None


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "block_actions"},
        {"type": "block_actions", "user": {"id": "U1"}, "actions": []},
        {"type": "block_actions", "user": {"id": 5}, "actions": [{"action_id": "a"}]},
        {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "a"}]},
        {"type": "block_actions", "user": "U1", "actions": [{}]},
        {
            "type": "block_actions",
            "user": {"id": "U1"},
            "actions": [{"action_id": "a", "action_ts": "1", "value": "x" * 2001}],
        },
    ],
)
def test_incomplete_payloads_are_malformed(payload: Any) -> None:
    with pytest.raises(MalformedInteraction):
        parse_interaction(_form(payload))


def test_payload_must_be_strict_json_once() -> None:
    deep = "[" * 100 + "]" * 100
    for body in (
        b"payload=" + quote(deep).encode(),
        b"payload=%7B%22a%22%3ANaN%7D",
        b"payload=%22%5Cud800%22",
        b"payload=1&payload=2",
        b"\xff\xfe",
        b"",
    ):
        with pytest.raises(MalformedInteraction):
            parse_interaction(body)


@given(st.binary(max_size=400))
def test_any_bytes_never_crash(body: bytes) -> None:
    try:
        parse_interaction(body)
    except MalformedInteraction:
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
_field = st.one_of(_json, st.text(max_size=30))
_payload = st.fixed_dictionaries(
    {"type": st.sampled_from(["block_actions", "shortcut"]) | _json},
    optional={
        "user": st.fixed_dictionaries({}, optional={"id": _field, "team_id": _field}) | _json,
        "team": _json,
        "actions": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "action_id": _field,
                    "value": _field,
                    "action_ts": _field,
                    "block_id": _field,
                    "type": _field,
                },
            )
            | _json,
            max_size=3,
        )
        | _json,
        "response_url": _field,
    },
)


@given(_payload)
def test_any_payload_is_read_or_refused_never_a_crash(payload: Any) -> None:
    try:
        got = parse_interaction(_form(payload))
    except MalformedInteraction:
        return
    if got is not None:
        assert payload["type"] == "block_actions"
        assert got.user_id and got.action.action_id and got.action.action_ts
        assert all(isinstance(v, str) for v in (got.team_id, got.response_url, got.action.value))
