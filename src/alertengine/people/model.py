"""People: who may approve, and the channels that reach them. Pure: no I/O, no clock.

A person has a slug id (``alice``), a display name, channel addresses and optional GitHub
logins. The ledger names a person as ``person:<id>``; the channel an approval came through is
data on the entry. Addresses (a WhatsApp number above all) never enter the ledger: a channel
is ledgered as its kind plus :func:`channel_marker`, a keyed hash that tells two addresses
apart without revealing either.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

PERSON_PREFIX = "person:"
#: The channel kinds a person can be reached (and approve) through.
CHANNEL_KINDS = ("telegram", "whatsapp", "slack", "web", "webhook", "voice")

_PERSON_ID = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
#: A numeric user/chat id, or a public @channel / handle.
_TELEGRAM = re.compile(r"^(?:-?\d{1,20}|@?[A-Za-z][A-Za-z0-9_]{0,63})$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
#: A user id (U…/W…), a #channel or @name, or a handle.
_SLACK = re.compile(r"^[#@]?[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_EMAIL = re.compile(r"^[^@\s:]{1,64}@[^@\s:]{1,190}\.[^@\s:.]{1,63}$")
_HANDLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$")
_GITHUB = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


class PersonError(ValueError):
    """A person or channel is invalid, unknown or duplicated. The message says which."""


def person_actor(person_id: str) -> str:
    """The ledger actor of a person: ``person:<id>``."""
    return PERSON_PREFIX + person_id


def parse_person_actor(actor: str) -> str | None:
    """``person:<id>`` -> ``<id>``; None for any other actor (or a malformed id)."""
    if not actor.startswith(PERSON_PREFIX):
        return None
    pid = actor[len(PERSON_PREFIX) :]
    return pid if _PERSON_ID.match(pid) else None


def person_id_problem(person_id: str) -> str | None:
    """Why ``person_id`` cannot name a person (None when it can)."""
    if not _PERSON_ID.match(person_id):
        return (
            f"invalid person id {person_id!r}: use 1-63 of a-z 0-9 . _ - starting with a "
            "letter (e.g. alice)"
        )
    return None


def normalize_whatsapp(address: str) -> str:
    """``whatsapp:+263 77-123 4567`` -> ``+263771234567``."""
    t = address.strip().lower().removeprefix("whatsapp:").strip()
    return "".join(c for c in t if c not in " -.()")


def channel_problem(kind: str, address: str) -> str | None:
    """Why ``address`` is not a usable address on ``kind`` (None when it is)."""
    if kind not in CHANNEL_KINDS:
        return f"unknown channel kind {kind!r} (one of: {', '.join(CHANNEL_KINDS)})"
    a = address.strip()
    if not a:
        return f"the {kind} address is empty"
    if kind == "telegram" and not _TELEGRAM.match(a):
        return f"a Telegram address is a numeric user or chat id (or @name), got {a!r}"
    if kind == "whatsapp" and not _E164.match(normalize_whatsapp(a)):
        return "a WhatsApp address is a phone number in E.164 form (+ and 7-15 digits)"
    if kind == "voice" and not _E164.match(normalize_whatsapp(a)):
        return "a voice address is a phone number in E.164 form (+ and 7-15 digits)"
    if kind == "slack" and not _SLACK.match(a):
        return f"a Slack address is a user id (U…/W…) or #channel/@name, got {a!r}"
    if kind == "web" and not (_EMAIL.match(a) or _HANDLE.match(a)):
        return f"a web address is an e-mail address or a handle, got {a!r}"
    if kind == "webhook":
        parts = urlsplit(a)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "a webhook address is the URL to POST to (http:// or https://)"
    return None


@dataclass(frozen=True, slots=True)
class Channel:
    """One way to reach a person. ``address`` is where messages go (chat id, phone number,
    Slack user, e-mail, URL); ``user_id`` is how the channel names the person when they act
    (a Telegram ``from.id``, a Slack user id) when that differs from the address."""

    kind: str
    address: str
    user_id: str = ""

    def __post_init__(self) -> None:
        problem = channel_problem(self.kind, self.address)
        if problem:
            raise PersonError(problem)
        if self.kind in ("whatsapp", "voice"):
            object.__setattr__(self, "address", normalize_whatsapp(self.address))
        else:
            object.__setattr__(self, "address", self.address.strip())
        object.__setattr__(self, "user_id", self.user_id.strip())
        if ":" in self.user_id or len(self.user_id) > 200:
            raise PersonError(f"invalid {self.kind} user id {self.user_id!r}")

    def names(self, kind: str, sender: str) -> bool:
        """Is ``sender`` (an id reported by channel ``kind``) this channel's person?"""
        if kind != self.kind or not sender:
            return False
        s = sender.strip()
        return any(hmac.compare_digest(s, x) for x in (self.address, self.user_id) if x)

    def same_address(self, other: Channel) -> bool:
        return self.kind == other.kind and self.address == other.address

    def to_doc(self) -> dict[str, str]:
        doc = {"kind": self.kind, "address": self.address}
        if self.user_id:
            doc["user_id"] = self.user_id
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Channel:
        return cls(str(doc["kind"]), str(doc["address"]), str(doc.get("user_id", "")))


def github_login_problem(login: str) -> str | None:
    if _GITHUB.match(login) or _EMAIL.match(login):
        return None
    return f"invalid GitHub login or commit e-mail {login!r}"


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str = ""
    channels: tuple[Channel, ...] = ()
    github_logins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = person_id_problem(self.id)
        if problem:
            raise PersonError(problem)
        if len(self.name) > 200:
            raise PersonError(f"person {self.id}: the name is longer than 200 characters")
        seen: list[Channel] = []
        for ch in self.channels:
            if any(ch.same_address(s) for s in seen):
                raise PersonError(f"person {self.id}: {ch.kind} channel listed twice")
            seen.append(ch)
        logins: list[str] = []
        for raw in self.github_logins:
            login = raw.strip().lower()
            problem = github_login_problem(login)
            if problem:
                raise PersonError(f"person {self.id}: {problem}")
            if login not in logins:
                logins.append(login)
        object.__setattr__(self, "github_logins", tuple(logins))
        object.__setattr__(self, "name", self.name.strip() or self.id)

    @property
    def actor(self) -> str:
        return person_actor(self.id)

    def reached_by(self, kind: str, sender: str) -> bool:
        return any(ch.names(kind, sender) for ch in self.channels)

    def author_names(self) -> set[str]:
        """Names a commit may carry for this person (lower-case): GitHub logins, e-mails of
        their web channels and their id; used by the deployer rule."""
        names = {self.id, *self.github_logins}
        names |= {c.address.lower() for c in self.channels if c.kind == "web" and "@" in c.address}
        return names

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "channels": [c.to_doc() for c in self.channels],
            "github_logins": list(self.github_logins),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Person:
        return cls(
            id=str(doc["id"]),
            name=str(doc.get("name", "")),
            channels=tuple(Channel.from_doc(c) for c in doc.get("channels") or ()),
            github_logins=tuple(str(g) for g in doc.get("github_logins") or ()),
        )


def channel_marker(key: bytes, channel: Channel) -> str:
    """A keyed hash naming an address without revealing it (for the ledger)."""
    mac = hmac.new(key, f"{channel.kind}\x00{channel.address}".encode(), hashlib.sha256)
    return mac.hexdigest()[:16]


def ledger_view(person: Person, key: bytes) -> dict[str, Any]:
    """What the ledger may hold about a person: never an address."""
    return {
        "person": person.actor,
        "name": person.name,
        "channels": [{"kind": c.kind, "marker": channel_marker(key, c)} for c in person.channels],
        "github_logins": list(person.github_logins),
    }


def find_by_channel(people: Iterable[Person], kind: str, sender: str) -> Person | None:
    """The person channel ``kind`` reports as ``sender`` (first match), or None."""
    return next((p for p in people if p.reached_by(kind, sender)), None)


def shared_addresses(people: Sequence[Person]) -> list[tuple[str, str, str]]:
    """(kind, person a, person b) for every address two people share: one address would let
    one human act as two people (or be mistaken for the other)."""
    out: list[tuple[str, str, str]] = []
    for i, a in enumerate(people):
        for b in people[i + 1 :]:
            for ca in a.channels:
                if any(ca.same_address(cb) for cb in b.channels):
                    out.append((ca.kind, a.id, b.id))
    return out


def slug_person_id(text: str) -> str:
    """A person id derived from a legacy approver identity or address (``Dave`` -> ``dave``)."""
    s = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower()).strip("-._")
    if not s or not s[0].isalpha():
        s = "p-" + s
    return s[:63].rstrip("-._") or "p"


@dataclass(frozen=True, slots=True)
class LegacyApprover:
    """One flat ``approvers`` entry of an older config."""

    channel: str
    address: str
    identity: str = ""


@dataclass(slots=True)
class _Draft:
    id: str
    name: str
    channels: list[Channel] = field(default_factory=list)


def people_from_legacy(
    entries: Sequence[LegacyApprover], existing: Sequence[Person] = ()
) -> list[Person]:
    """People derived from a flat approver list, in order of first appearance: entries that
    share an ``identity`` are one person; an entry without one is a person of its own. An
    identity naming an ``existing`` person adds the channel to that person."""
    drafts: dict[str, _Draft] = {p.id: _Draft(p.id, p.name, list(p.channels)) for p in existing}
    order: list[str] = [p.id for p in existing]
    for e in entries:
        if e.identity:
            pid = slug_person_id(e.identity)
            name = e.identity
        else:
            pid = slug_person_id(f"{e.channel}-{e.address}")
            name = pid
        user_id = e.identity if e.identity and e.identity != e.address else ""
        ch = Channel(e.channel, e.address, "" if ":" in user_id else user_id)
        d = drafts.get(pid)
        if d is None:
            d = drafts[pid] = _Draft(pid, name)
            order.append(pid)
        if not any(ch.same_address(c) for c in d.channels):
            d.channels.append(ch)
    github = {p.id: p.github_logins for p in existing}
    return [
        Person(drafts[i].id, drafts[i].name, tuple(drafts[i].channels), github.get(i, ()))
        for i in order
    ]
