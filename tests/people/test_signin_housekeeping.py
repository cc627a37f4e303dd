"""Sign-in housekeeping on every state backend (memory, SQLite, Redis): finished requests and
dead tokens are pruned after their grace period, in bounded batches; a person's tokens are
found through their own index (never by listing every token); a person who leaves the
registry loses their tokens at once, ledgered once. What is due is pure: Hypothesis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertengine.clock import VirtualClock
from alertengine.people import Channel, Person, PersonRegistry
from alertengine.people.signin import (
    CONFIRM_INDEX,
    REQUESTS,
    TOKENS,
    SignInError,
    SignIns,
    secret_hash,
    tokens_of,
)
from alertengine.people.signin_prune import (
    REQUEST_GRACE_S,
    TOKEN_GRACE_S,
    SignInPruner,
    pick_due,
    request_due,
    token_due,
)
from alertengine.stores.base import StateStore
from tests.stores.conftest import StateBackend, state_backend

__all__ = ["state_backend"]  # the fixture, run on memory, SQLite and Redis

# -- the pure part -----------------------------------------------------------------------------

times = st.floats(min_value=0, max_value=1e10, allow_nan=False)


@given(times, times, st.floats(min_value=0, max_value=1e7))
def test_a_request_is_due_only_after_its_grace(expires_at: float, now: float, grace: float) -> None:
    assert request_due({"expires_at": expires_at}, now, grace) == (expires_at + grace <= now)
    assert not request_due({}, now, grace)  # unreadable: never deleted
    assert not request_due({"expires_at": "soon"}, now, grace)


@given(times, st.one_of(st.none(), times), times)
def test_a_token_is_due_a_grace_after_it_died(
    expires_at: float, revoked_at: float | None, now: float
) -> None:
    doc: dict[str, Any] = {"expires_at": expires_at, "revoked": revoked_at is not None}
    if revoked_at is not None:
        doc["revoked_at"] = revoked_at
    died = expires_at if revoked_at is None else min(expires_at, revoked_at)
    assert token_due(doc, now) == (died + TOKEN_GRACE_S <= now)
    # A live token (not revoked, not expired) is never due, whatever the clock says.
    if revoked_at is None and expires_at > now:
        assert not token_due(doc, now)


@given(
    st.dictionaries(st.text(min_size=1, max_size=8), times, max_size=40),
    times,
    st.integers(min_value=-1, max_value=50),
)
def test_pick_due_is_bounded_and_picks_only_due_documents(
    expiries: dict[str, float], now: float, limit: int
) -> None:
    docs = {k: {"expires_at": v} for k, v in expiries.items()}
    picked = pick_due(docs, now, request_due, limit)
    due = sorted(k for k, d in docs.items() if request_due(d, now))
    assert len(picked) <= max(limit, 0)
    assert picked == due[: max(limit, 0)]  # the first due keys, in a stable order


# -- on each backend ---------------------------------------------------------------------------


class Listing:
    """Delegates to the real store; remembers which collections were listed whole."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.listed: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def list(self, collection: str) -> dict[str, dict[str, Any]]:
        self.listed.append(collection)
        return await self.inner.list(collection)


class World:
    def __init__(self, store: StateStore, clock: VirtualClock) -> None:
        self.store, self.clock = store, clock
        self.ledger: list[tuple[str, str, str, str, dict[str, Any]]] = []

        async def record(
            tenant: str, kind: str, actor: str, decision: str, reason: str, data: Mapping[str, Any]
        ) -> None:
            self.ledger.append((kind, actor, decision, reason, dict(data)))

        async def people_record(*_: Any) -> None:
            return None

        async def send(tenant: str, person: Person, url: str, code: str) -> list[str]:
            self.links.append(url.rsplit("=", 1)[1])
            return ["telegram"]

        self.links: list[str] = []
        self.people = PersonRegistry(store, people_record)
        self.signins = SignIns(store, clock, self.people, record, send)
        self.people.removal_hooks.append(self.signins.person_removed)

    async def add(self, pid: str, chat: str, tenant: str = "acme") -> None:
        person = Person(pid, pid.title(), (Channel("telegram", chat),))
        await self.people.add(tenant, person, actor="operator:t")

    async def token(self, pid: str, tenant: str = "acme") -> str:
        pending = await self.signins.request(
            tenant, pid, requester=f"tenant:{tenant}", client="cli", describe="t",
            confirm_url=lambda c: f"https://x/confirm?c={c}",
        )  # fmt: skip
        await self.signins.answer(self.links[-1], confirm=True)
        out = await self.signins.poll(pending.device_code, tenant, f"tenant:{tenant}")
        return out.token


@pytest.fixture
async def world(state_backend: StateBackend) -> Any:
    store = state_backend.open()
    # The sign-in's own clock: document times are ours on every backend.
    yield World(store, VirtualClock(1_700_000_000.0))
    await store.close()


async def refusal(coro: Any) -> str:
    with pytest.raises(SignInError) as err:
        await coro
    return err.value.message


async def test_revoking_a_persons_tokens_reads_only_their_index(world: World) -> None:
    await world.add("alice", "1001")
    await world.add("bob", "1002")
    alice = [await world.token("alice") for _ in range(2)]
    bob = await world.token("bob")
    spy = Listing(world.store)
    world.signins.store = spy  # type: ignore[assignment]
    assert await world.signins.revoke_all("acme", "alice", actor="tenant:acme") == 2
    assert TOKENS not in spy.listed and tokens_of("acme", "alice") in spy.listed
    for t in alice:
        assert "revoked" in await refusal(world.signins.verify(t))
    assert (await world.signins.verify(bob)).person == "bob"  # nobody else's
    # Verifying a token lists nothing at all (one get by hash, one registry get).
    spy.listed.clear()
    await world.signins.verify(bob)
    assert spy.listed == []


async def test_a_removed_person_loses_their_tokens_at_once_ledgered_once(world: World) -> None:
    await world.add("alice", "1001")
    await world.add("bob", "1002")
    tokens = [await world.token("alice") for _ in range(2)]
    bob = await world.token("bob")
    await world.people.remove("acme", "alice", actor="operator:ann")
    revoked = [e for e in world.ledger if e[2] == "tokens revoked"]
    assert len(revoked) == 1
    kind, actor, _, reason, data = revoked[0]
    assert (kind, actor, data["person"], data["count"]) == ("signin", "operator:ann", "alice", 2)
    assert reason.startswith("tokens revoked: person removed")
    for t in tokens:
        doc = await world.store.get(TOKENS, secret_hash(t))
        assert doc is not None and doc["revoked"] is True
    # Back in the registry under the same id: the old tokens stay dead.
    await world.add("alice", "1001")
    for t in tokens:
        assert "revoked" in await refusal(world.signins.verify(t))
    assert (await world.signins.verify(bob)).person == "bob"


async def test_config_sync_removal_revokes_too(world: World) -> None:
    carol = Person("carol", "Carol", (Channel("telegram", "3003"),))
    await world.people.sync("acme", [carol], actor="config")
    token = await world.token("carol")
    await world.people.sync("acme", [], actor="config")
    assert [(e[1], e[4]["count"]) for e in world.ledger if e[2] == "tokens revoked"] == [
        ("config", 1)
    ]
    assert "revoked" in await refusal(world.signins.verify(token))


async def test_finished_requests_and_dead_tokens_are_pruned_after_their_grace(
    world: World,
) -> None:
    await world.add("alice", "1001")
    await world.add("bob", "1002")
    revoked = await world.token("alice")
    await world.signins.revoke(revoked)
    live = await world.token("bob")
    pruner = SignInPruner(world.store, world.clock)
    assert len(await world.store.list(REQUESTS)) == 2
    # Within the grace: nothing goes, and a revoked token is still told "revoked".
    await world.clock.advance(REQUEST_GRACE_S / 2)
    assert await pruner.prune() == (0, 0)
    assert "revoked" in await refusal(world.signins.verify(revoked))
    # A day after the requests ended: both requests and their confirm links go.
    await world.clock.advance(REQUEST_GRACE_S)
    assert await pruner.prune() == (2, 0)
    assert await world.store.list(REQUESTS) == {}
    assert await world.store.list(CONFIRM_INDEX) == {}
    assert "unknown" in await refusal(world.signins.answer(world.links[0], confirm=True))
    # A week after the revocation: the revoked token goes, with its index entry; the live one
    # stays (30 days).
    await world.clock.advance(TOKEN_GRACE_S)
    assert await pruner.prune() == (0, 1)
    assert await world.store.get(TOKENS, secret_hash(revoked)) is None
    assert await world.store.list(tokens_of("acme", "alice")) == {}
    assert "unknown" in await refusal(world.signins.verify(revoked))
    assert (await world.signins.verify(live)).person == "bob"


async def test_a_backlog_is_pruned_a_bounded_batch_per_run(world: World) -> None:
    await world.add("alice", "1001")
    for i in range(7):  # old finished requests, as many earlier rounds left them
        await world.store.put(REQUESTS, f"{i:064x}", {"expires_at": 0.0, "confirm_hash": ""})
    pruner = SignInPruner(world.store, world.clock, batch=3, every_s=0)
    runs = [await pruner.prune() for _ in range(4)]
    assert runs == [(3, 0), (3, 0), (1, 0), (0, 0)]


async def test_tokens_issued_before_the_index_are_indexed_by_the_first_run(world: World) -> None:
    await world.add("alice", "1001")
    token = await world.token("alice")
    th = secret_hash(token)
    # As a store written by the previous version holds it: the token, no index entry.
    assert await world.store.delete(tokens_of("acme", "alice"), th)
    await SignInPruner(world.store, world.clock).prune()
    assert th in await world.store.list(tokens_of("acme", "alice"))
    assert await world.signins.revoke_all("acme", "alice", actor="tenant:acme") == 1
    assert "revoked" in await refusal(world.signins.verify(token))
