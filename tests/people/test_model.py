"""The pure people model: ids, channel addresses, legacy migration, ledger view."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertengine.people import (
    Channel,
    LegacyApprover,
    Person,
    PersonError,
    channel_marker,
    ledger_view,
    parse_person_actor,
    people_from_legacy,
    person_actor,
    shared_addresses,
)

ids = st.from_regex(r"[a-z][a-z0-9._-]{0,20}", fullmatch=True)
phones = st.from_regex(r"\+[1-9][0-9]{7,13}", fullmatch=True)


@given(ids)
def test_person_actor_round_trips(pid: str) -> None:
    assert parse_person_actor(person_actor(pid)) == pid


@pytest.mark.parametrize(
    "actor", ["engineer:web:alice", "person:", "person:Alice", "person:a:b", "policy", "alice"]
)
def test_other_actors_are_not_people(actor: str) -> None:
    assert parse_person_actor(actor) is None


@pytest.mark.parametrize("bad", ["", "Alice", "1alice", "a" * 64, "al ice", "person:x"])
def test_a_person_id_is_a_slug(bad: str) -> None:
    with pytest.raises(PersonError, match="person id"):
        Person(bad)


@pytest.mark.parametrize(
    ("kind", "address"),
    [
        ("telegram", "12 34"),
        ("whatsapp", "0771234567"),
        ("whatsapp", "ana"),
        ("webhook", "inbox"),
        ("slack", "has space"),
        ("fax", "123"),
        ("web", ""),
    ],
)
def test_addresses_are_validated_per_kind(kind: str, address: str) -> None:
    with pytest.raises(PersonError):
        Channel(kind, address)


def test_a_whatsapp_number_is_normalized_and_one_address_is_listed_once() -> None:
    assert Channel("whatsapp", "whatsapp:+263 77-123 4567").address == "+263771234567"
    with pytest.raises(PersonError, match="twice"):
        Person("ana", channels=(Channel("whatsapp", "+15550001111"),) * 2)


@given(phones)
def test_the_ledger_view_never_holds_an_address(phone: str) -> None:
    p = Person(
        "ana",
        "Ana",
        (Channel("whatsapp", phone), Channel("telegram", "424242"), Channel("web", "a@b.io")),
    )
    view = json.dumps(ledger_view(p, b"k" * 32))
    assert phone not in view and phone[1:] not in view
    assert "424242" not in view and "a@b.io" not in view
    assert [c["kind"] for c in json.loads(view)["channels"]] == ["whatsapp", "telegram", "web"]


@given(phones, phones)
def test_markers_tell_addresses_apart_and_depend_on_the_key(a: str, b: str) -> None:
    ca, cb = Channel("whatsapp", a), Channel("whatsapp", b)
    assert (channel_marker(b"k" * 32, ca) == channel_marker(b"k" * 32, cb)) == (a == b)
    assert channel_marker(b"k" * 32, ca) != channel_marker(b"j" * 32, ca)


def test_legacy_entries_sharing_an_identity_are_one_person_in_first_appearance_order() -> None:
    people = people_from_legacy(
        [
            LegacyApprover("webhook", "https://x.test/dave", "dave"),
            LegacyApprover("telegram", "4242"),
            LegacyApprover("telegram", "222222", "dave"),
            LegacyApprover("web", "carol"),
        ]
    )
    assert [(p.id, [c.kind for c in p.channels]) for p in people] == [
        ("dave", ["webhook", "telegram"]),
        ("telegram-4242", ["telegram"]),
        ("web-carol", ["web"]),
    ]
    dave = people[0]
    # The old identity still names the person on its channel (older links, chat users).
    assert dave.reached_by("webhook", "dave") and dave.reached_by("telegram", "222222")
    assert not dave.reached_by("telegram", "4242")


def test_a_legacy_identity_naming_a_declared_person_joins_that_person() -> None:
    alice = Person("alice", "Alice", (Channel("telegram", "1"),), ("alice-gh",))
    (merged,) = people_from_legacy([LegacyApprover("slack", "U1", "alice")], [alice])
    assert [c.kind for c in merged.channels] == ["telegram", "slack"]
    assert merged.github_logins == ("alice-gh",)


def test_shared_addresses_are_found() -> None:
    a = Person("a", channels=(Channel("telegram", "1"),))
    b = Person("b", channels=(Channel("telegram", "1"),))
    c = Person("c", channels=(Channel("telegram", "2"),))
    assert shared_addresses([a, b, c]) == [("telegram", "a", "b")]


def test_author_names_cover_github_logins_and_web_emails() -> None:
    p = Person("ana", channels=(Channel("web", "Ana@Example.com"),), github_logins=("Ana-GH",))
    assert p.author_names() == {"ana", "ana-gh", "ana@example.com"}
