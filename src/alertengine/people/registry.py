"""The person registry: each tenant's people in a :class:`StateStore`, every change ledgered.

Documents live in collection ``people`` under ``<tenant>/<person id>``; ``rank`` keeps the
escalation order (config order first, then people added by the CLI in the order added). A
change to the registry is a governance event: it is ledgered (kind ``people``, no incident)
with the operator as actor, and a channel appears there only as its kind and a keyed marker
(:func:`~alertengine.people.model.channel_marker`), whose key is a random per-tenant salt
kept in the state store, never in the ledger.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from alertengine.clock import Clock, SystemClock
from alertengine.ledger.base import LedgerStore
from alertengine.ledger.chain import EntryDraft
from alertengine.people.model import (
    Channel,
    Person,
    PersonError,
    channel_marker,
    find_by_channel,
    ledger_view,
    normalize_whatsapp,
    person_id_problem,
)
from alertengine.stores.base import StateStore

PEOPLE = "people"
MARKER_KEYS = "people_marker_keys"
#: Ranks of people added outside the config start here, so config order stays first.
CLI_RANK_BASE = 1_000_000

#: Ledgers one governance event: (tenant, actor, decision, reason, data).
Record = Callable[[str, str, str, str, Mapping[str, Any]], Awaitable[None]]


def ledger_recorder(ledger: LedgerStore, clock: Clock | None = None) -> Record:
    """A :data:`Record` appending straight to a ledger (the CLI's way)."""
    c: Clock = clock or SystemClock()

    async def record(
        tenant_id: str, actor: str, decision: str, reason: str, data: Mapping[str, Any]
    ) -> None:
        draft = EntryDraft(
            tenant_id=tenant_id,
            kind="people",
            actor=actor,
            timestamp=c.now(),
            decision=decision,
            reason=reason,
            data=dict(data),
        )
        await ledger.append(tenant_id, [draft])

    return record


def _key(tenant_id: str, person_id: str) -> str:
    return f"{tenant_id}/{person_id}"


class PersonRegistry:
    """People per tenant. Reads need only the store; changes need ``record`` (ledgering)."""

    def __init__(
        self, store: StateStore, record: Record | None = None, *, marker_key: bytes | None = None
    ) -> None:
        self.store = store
        self.record = record
        #: Fixed key for channel markers (the simulator's seeded runs); else one per tenant.
        self._fixed_key = marker_key
        #: Called as ``hook(tenant_id, person_id, actor)`` after a person left the registry
        #: (``remove`` or a config ``sync``): the sign-in service ends their tokens there.
        #: Passed in, so the registry knows nothing of tokens (no import cycle).
        self.removal_hooks: builtins.list[Callable[[str, str, str], Awaitable[object]]] = []

    # -- reads ------------------------------------------------------------------------------

    async def get(self, tenant_id: str, person_id: str) -> Person | None:
        if person_id_problem(person_id):
            return None
        doc = await self.store.get(PEOPLE, _key(tenant_id, person_id))
        return Person.from_doc(doc) if doc is not None else None

    async def _docs(self, tenant_id: str) -> list[dict[str, Any]]:
        prefix = tenant_id + "/"
        docs = [d for k, d in (await self.store.list(PEOPLE)).items() if k.startswith(prefix)]
        return sorted(docs, key=lambda d: (int(d.get("rank", CLI_RANK_BASE)), str(d["id"])))

    async def list(self, tenant_id: str) -> list[Person]:
        """The tenant's people in escalation order."""
        return [Person.from_doc(d) for d in await self._docs(tenant_id)]

    async def find_by_channel(self, tenant_id: str, kind: str, sender: str) -> Person | None:
        """The person a channel reports as ``sender`` (e.g. a Telegram ``from.id``)."""
        return find_by_channel(await self.list(tenant_id), kind, sender)

    async def sender_marker(self, tenant_id: str, kind: str, sender: str) -> str | None:
        """The keyed marker of a sender who is no person (what the ledger names instead of
        their number or user id); None when ``sender`` is no valid ``kind`` address."""
        try:
            channel = Channel(kind, sender)
        except PersonError:
            return None
        return channel_marker(await self.marker_key(tenant_id), channel)

    async def marker_key(self, tenant_id: str) -> bytes:
        if self._fixed_key is not None:
            return self._fixed_key
        doc = await self.store.get(MARKER_KEYS, tenant_id)
        if doc is None:
            # Two writers racing here both write a random key; the claim decides one.
            fresh = secrets.token_hex(32)
            if await self.store.claim(f"{MARKER_KEYS}:{tenant_id}", 10 * 365 * 86400.0, fresh):
                await self.store.put(MARKER_KEYS, tenant_id, {"key": fresh})
                return bytes.fromhex(fresh)
            won = await self.store.claimed(f"{MARKER_KEYS}:{tenant_id}")
            return bytes.fromhex(won or fresh)
        return bytes.fromhex(str(doc["key"]))

    # -- changes (each ledgered) ------------------------------------------------------------

    async def _ledger(
        self, tenant_id: str, actor: str, decision: str, person: Person, **extra: Any
    ) -> None:
        if self.record is None:
            raise PersonError("the registry was opened read-only: changes must be ledgered")
        view = ledger_view(person, await self.marker_key(tenant_id))
        reason = f"{decision}: {person.actor} ({person.name}) by {actor}"
        await self.record(tenant_id, actor, decision, reason, {**view, **extra})

    async def _check_unique(self, tenant_id: str, person: Person) -> None:
        for other in await self.list(tenant_id):
            if other.id == person.id:
                continue
            for ch in person.channels:
                if any(ch.same_address(o) for o in other.channels):
                    raise PersonError(
                        f"that {ch.kind} address already belongs to person {other.id!r}: one "
                        "address may name only one person"
                    )

    async def _put(self, tenant_id: str, person: Person, rank: int, source: str) -> None:
        doc = {**person.to_doc(), "tenant_id": tenant_id, "rank": rank, "source": source}
        await self.store.put(PEOPLE, _key(tenant_id, person.id), doc)

    async def add(self, tenant_id: str, person: Person, *, actor: str) -> Person:
        if await self.store.get(PEOPLE, _key(tenant_id, person.id)) is not None:
            raise PersonError(f"person {person.id!r} already exists in tenant {tenant_id!r}")
        await self._check_unique(tenant_id, person)
        docs = await self._docs(tenant_id)
        rank = max([CLI_RANK_BASE - 1, *(int(d.get("rank", 0)) for d in docs)]) + 1
        await self._ledger(tenant_id, actor, "person added", person)
        await self._put(tenant_id, person, rank, "cli")
        return person

    async def remove(self, tenant_id: str, person_id: str, *, actor: str) -> Person:
        person = await self._require(tenant_id, person_id)
        await self._ledger(tenant_id, actor, "person removed", person)
        await self.store.delete(PEOPLE, _key(tenant_id, person_id))
        await self._removed(tenant_id, person_id, actor)
        return person

    async def _removed(self, tenant_id: str, person_id: str, actor: str) -> None:
        for hook in self.removal_hooks:
            await hook(tenant_id, person_id, actor)

    async def _require(self, tenant_id: str, person_id: str) -> Person:
        problem = person_id_problem(person_id)
        if problem:
            raise PersonError(problem)
        person = await self.get(tenant_id, person_id)
        if person is None:
            raise PersonError(f"no person {person_id!r} in tenant {tenant_id!r}")
        return person

    async def _replace(self, tenant_id: str, person: Person) -> None:
        doc = await self.store.get(PEOPLE, _key(tenant_id, person.id)) or {}
        await self._put(
            tenant_id, person, int(doc.get("rank", CLI_RANK_BASE)), str(doc.get("source", "cli"))
        )

    async def _channel_changed(
        self, tenant_id: str, actor: str, what: str, updated: Person, channel: Channel
    ) -> Person:
        """Ledger ``what`` happened to ``channel`` (its kind and marker, never the address),
        then store ``updated``."""
        marker = channel_marker(await self.marker_key(tenant_id), channel)
        await self._ledger(
            tenant_id, actor, what, updated, channel={"kind": channel.kind, "marker": marker}
        )
        await self._replace(tenant_id, updated)
        return updated

    async def add_channel(
        self, tenant_id: str, person_id: str, channel: Channel, *, actor: str
    ) -> Person:
        person = await self._require(tenant_id, person_id)
        updated = Person(person.id, person.name, (*person.channels, channel), person.github_logins)
        await self._check_unique(tenant_id, updated)
        return await self._channel_changed(tenant_id, actor, "channel added", updated, channel)

    async def remove_channel(
        self, tenant_id: str, person_id: str, kind: str, address: str | None, *, actor: str
    ) -> Person:
        """Remove the person's ``kind`` channel (the one at ``address`` if they have several)."""
        person = await self._require(tenant_id, person_id)
        matching = [
            c
            for c in person.channels
            if c.kind == kind and (address is None or c.names(kind, _normal(kind, address)))
        ]
        if not matching:
            raise PersonError(f"person {person_id!r} has no such {kind} channel")
        if len(matching) > 1:
            raise PersonError(f"person {person_id!r} has several {kind} channels: name the address")
        gone = matching[0]
        updated = Person(
            person.id,
            person.name,
            tuple(c for c in person.channels if c is not gone),
            person.github_logins,
        )
        return await self._channel_changed(tenant_id, actor, "channel removed", updated, gone)

    async def sync(
        self, tenant_id: str, people: Sequence[Person], *, actor: str
    ) -> builtins.list[str]:
        """Make the registry hold the config's ``people`` (in that order). Only differences
        are ledgered, so a restart with the same config writes nothing. People added by the
        CLI are kept. Returns what changed ("added alice", …)."""
        changes: builtins.list[str] = []
        current = {d["id"]: d for d in await self._docs(tenant_id)}
        wanted = {p.id for p in people}
        for d in current.values():
            if d.get("source") == "config" and d["id"] not in wanted:
                gone = Person.from_doc(d)
                await self._ledger(tenant_id, actor, "person removed", gone)
                await self.store.delete(PEOPLE, _key(tenant_id, gone.id))
                await self._removed(tenant_id, gone.id, actor)
                changes.append(f"removed {gone.id}")
        for rank, p in enumerate(people):
            doc = current.get(p.id)
            if doc is not None and Person.from_doc(doc) == p and doc.get("rank") == rank:
                continue
            if doc is None or Person.from_doc(doc) != p:
                decision = "person added" if doc is None else "person changed"
                await self._ledger(tenant_id, actor, decision, p)
                changes.append(f"{decision.split()[1]} {p.id}")
            await self._put(tenant_id, p, rank, "config")
        return changes


def _normal(kind: str, address: str) -> str:
    if kind == "whatsapp":
        return normalize_whatsapp(address)
    return address.strip()
