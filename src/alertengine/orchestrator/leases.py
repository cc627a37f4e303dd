"""Which replica drives what: per-target leases in the shared state store.

Every orchestrator replica has a stable id (``host:pid:random``) for its lifetime. Each tick
it asks for the lease of every polled target (``target:<tenant>/<service>``) and of the sweep
(``sweep``: expiry, escalation, the execution sweep). ``SET NX PX`` gives a free lease to one
asker; a lease it already holds is renewed (compare-and-set); on a clean stop it is released
(compare-and-delete). A replica that dies stops renewing, so its leases lapse within
``ttl_s`` and the next tick of another replica takes them.

Work is spread, not grabbed: each tick a replica also writes a heartbeat (collection
``replicas``) and counts the live ones; with ``n`` live it holds at most a fair share,
``ceil(leases / n)``, preferring the leases it ranks highest (rendezvous hashing) and
handing back any surplus. Every replica still asks for every lease, so a lease is never
left unheld while some replica has room; when one dies, the others' shares grow as its
heartbeat goes stale (within ``ttl_s``, like its leases). Heartbeats compare wall clocks,
so replicas on several machines need NTP.

A lease only says *who should do the work*; it is not what makes the work happen once. That
is the engine's compare-and-append (two replicas cannot both move an incident from the same
stage), the single-use token claim, and the executor's lease plus ``Idempotency-Key``. So a
replica that merely *believes* it still holds a lease (a paused process, a store outage) can
cost a ledgered refusal, never a second incident or a second webhook.

While the store cannot be reached, a replica keeps what it held until the lease would have
lapsed anyway (its local monotonic deadline), then holds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable

from alertengine.stores.base import StateStore

SWEEP = "sweep"


def replica_id() -> str:
    """A stable id for this process: host, pid and a random suffix (pids get reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def target_lease(tenant_id: str, service: str) -> str:
    return f"target:{tenant_id}/{service}"


def lease_ttl_for(loop_interval_s: float, poll_timeout_s: float = 3.0) -> float:
    """Long enough to outlive one slow tick; short enough for a quick takeover."""
    return max(3.0 * loop_interval_s, 2.0 * poll_timeout_s + loop_interval_s, 2.0)


#: Where replicas announce themselves (state store collection), to size a fair share.
REPLICAS = "replicas"
#: A replica not heard from for this many lease times is forgotten (its entry deleted).
FORGET_AFTER_TTLS = 10.0


def preference(holder: str, name: str) -> int:
    """Rendezvous weight: each replica ranks the leases differently, and stably."""
    digest = hashlib.blake2b(f"{holder}|{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class Leases:
    def __init__(
        self,
        store: StateStore,
        holder: str,
        ttl_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("lease ttl must be positive")
        self.store = store
        self.holder = holder
        self.ttl_s = ttl_s
        self._now = monotonic
        self._wall = wall
        #: lease name -> local deadline (monotonic) until which we may act on it.
        self._until: dict[str, float] = {}
        self.peers = 1  # live replicas (this one included) at the last heartbeat
        self.share = 0  # most leases this replica takes: its fair share
        self.acquired = 0  # leases newly taken (a takeover shows here)
        self.lost = 0  # leases we held and found held by someone else
        self.released = 0  # leases handed back because we held more than our share
        self.errors = 0  # store calls that failed
        self.last_error: str | None = None

    @property
    def held(self) -> frozenset[str]:
        now = self._now()
        return frozenset(n for n, until in self._until.items() if until > now)

    async def hold(self, names: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
        """Renew or take leases, up to a fair share. Returns (held now, newly taken this call).

        Never raises. A lease not asked for any more is released (e.g. a target removed from
        the config). With ``n`` live replicas each takes at most ``ceil(len(names) / n)``,
        preferring the leases it ranks highest, and hands back the rest, so work spreads over
        the replicas instead of going to whichever started first; every replica still asks
        for every lease, so none is left unheld while some replica has room.
        """
        wanted = list(dict.fromkeys(names))
        for name in list(self._until):
            if name not in wanted:
                await self._release(name)
        self.peers = await self._heartbeat()
        self.share = -(-len(wanted) // self.peers)
        ranked = sorted(wanted, key=lambda n: preference(self.holder, n), reverse=True)
        held = self.held
        mine = [n for n in ranked if n in held]
        for name in mine[self.share :]:  # more than our share: hand the surplus over
            self.released += 1
            await self._release(name)
        renewed = await asyncio.gather(*(self._one(n) for n in mine[: self.share]))
        taken: set[str] = {n for n, t in zip(mine[: self.share], renewed, strict=True) if t}
        candidates = [n for n in ranked if n not in held]
        while candidates and (room := self.share - len(self.held)) > 0:
            batch, candidates = candidates[:room], candidates[room:]
            got = await asyncio.gather(*(self._one(n) for n in batch))
            taken |= {n for n, t in zip(batch, got, strict=True) if t}
        return self.held, frozenset(taken)

    async def _heartbeat(self) -> int:
        """Announce this replica; count the live ones. On a store error: the last count."""
        now = self._wall()
        try:
            await self.store.put(REPLICAS, self.holder, {"seen": now, "ttl_s": self.ttl_s})
            seen = await self.store.list(REPLICAS)
        except Exception as exc:
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return self.peers
        live = 0
        for holder, doc in seen.items():
            age = now - float(doc.get("seen", 0.0))
            ttl = float(doc.get("ttl_s", self.ttl_s))
            if holder == self.holder or age <= ttl:
                live += 1
            elif age > FORGET_AFTER_TTLS * ttl:
                with contextlib.suppress(Exception):  # if not now, another replica will
                    await self.store.delete(REPLICAS, holder)
        return max(1, live)

    async def _one(self, name: str) -> bool:
        """Renew or take one lease; True when it was newly taken."""
        started = self._now()
        mine = name in self._until and self._until[name] > started
        try:
            ok = mine and await self.store.renew_lease(name, self.holder, self.ttl_s)
            if not ok:
                ok = await self.store.acquire_lease(name, self.holder, self.ttl_s)
        except Exception as exc:  # an outage: keep acting until the lease would lapse
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return False
        if ok:
            self._until[name] = started + self.ttl_s
            if not mine:
                self.acquired += 1
            return not mine
        if self._until.pop(name, None) is not None:
            self.lost += 1
        return False

    async def _release(self, name: str) -> None:
        self._until.pop(name, None)
        try:
            await self.store.release_lease(name, self.holder)
        except Exception as exc:  # it lapses on its own
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]

    async def release_all(self) -> None:
        """On a clean stop: let another replica take over at once instead of after ``ttl_s``."""
        for name in list(self._until):
            await self._release(name)
        with contextlib.suppress(Exception):  # forgotten after FORGET_AFTER_TTLS lease times
            await self.store.delete(REPLICAS, self.holder)

    def status(self) -> dict[str, object]:
        return {
            "replica": self.holder,
            "ttl_s": self.ttl_s,
            "held": sorted(self.held),
            "peers": self.peers,
            "share": self.share,
            "acquired": self.acquired,
            "released": self.released,
            "lost": self.lost,
            "errors": self.errors,
            "last_error": self.last_error,
        }
