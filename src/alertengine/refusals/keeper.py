"""Counted refusals outlive a SIGKILL: each process keeps a copy of what it counted but has
not ledgered yet in the state store, and a later process ledgers a dead one's copy.

The copy is one document per process instance (``refusal_counts/<instance>``), written at the
loop tick when the counts changed (and at least every ``heartbeat_s`` while there are any),
deleted once they are all ledgered. So a process killed with open windows loses at most the
refusals of its last tick, not its windows. At start-up and then every ``adopt_every_s``, a
process ledgers the copies of instances that are certainly dead (:func:`known_dead`: the same
replica restarted, or a pid gone on this machine) or silent for ``stale_after_s``, one
summary entry per key, and removes them; a claim in the store makes one process do it. A
process that dies between ledgering a copy and removing it leaves it to be ledgered again
after the claim lapses: counted twice rather than lost.
"""

from __future__ import annotations

import logging
from typing import Any

from alertengine.clock import Clock
from alertengine.execute.instance import Instance, known_dead
from alertengine.refusals.budget import RefusalKey, Summary
from alertengine.refusals.gate import RefusalGate
from alertengine.stores.base import StateStore

log = logging.getLogger("alertengine.refusals")

COUNTS = "refusal_counts"
#: How long one process has to ledger a dead one's copy before another may try.
ADOPT_CLAIM_S = 300.0


def _doc(s: Summary) -> dict[str, Any]:
    return {
        "tenant": s.key.tenant,
        "route": s.key.route,
        "reason": s.key.reason,
        "count": s.count,
        "first_at": s.first_at,
        "last_at": s.last_at,
        "sources": list(s.sources),
        "folded": [list(p) for p in s.folded],
    }


def _summary(d: dict[str, Any]) -> Summary:
    return Summary(
        RefusalKey.of(str(d["tenant"]), str(d["route"]), str(d["reason"])),
        int(d["count"]),
        float(d["first_at"]),
        float(d["last_at"]),
        tuple(str(x) for x in d.get("sources", ()))[:16],
        tuple((str(p[0]), str(p[1])) for p in d.get("folded", ()))[:16],
    )


class CountKeeper:
    def __init__(
        self,
        gate: RefusalGate,
        store: StateStore,
        me: Instance,
        clock: Clock,
        *,
        heartbeat_s: float = 30.0,
        stale_after_s: float = 600.0,
        adopt_every_s: float = 60.0,
    ) -> None:
        self.gate, self.store, self.me, self.clock = gate, store, me, clock
        self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
        self.adopt_every_s = adopt_every_s
        self._saved: list[dict[str, Any]] = []
        self._saved_at = 0.0
        self._adopted_at: float | None = None

    async def save(self) -> None:
        """The loop tick: the store's copy follows what is counted and not yet ledgered."""
        now = self.clock.now()
        docs = [_doc(s) for s in self.gate.pending_summaries()]
        if docs == self._saved and (not docs or now - self._saved_at < self.heartbeat_s):
            return
        if docs:
            body = {"holder": str(self.me), "at": now, "summaries": docs}
            await self.store.put(COUNTS, self.me.instance, body)
        else:
            await self.store.delete(COUNTS, self.me.instance)
        self._saved, self._saved_at = docs, now

    async def tick(self) -> None:
        await self.save()
        now = self.clock.now()
        if self._adopted_at is None or now - self._adopted_at >= self.adopt_every_s:
            await self.adopt()

    async def adopt(self) -> int:
        """Ledger the copies of dead processes; how many refusals that accounted for."""
        self._adopted_at = now = self.clock.now()
        total = 0
        for key, doc in sorted((await self.store.list(COUNTS)).items()):
            holder = Instance.parse(str(doc.get("holder", "")))
            if holder is None or holder.same_process(self.me):
                continue
            why = known_dead(holder, self.me)
            if why is None and now - float(doc.get("at", now)) >= self.stale_after_s:
                why = f"its copy was not refreshed for {now - float(doc['at']):.0f} s"
            if why is None:
                continue
            if not await self.store.claim(f"{COUNTS}:{key}:{doc.get('at')}", ADOPT_CLAIM_S):
                continue  # another process is ledgering it
            left = list(doc.get("summaries", ()))
            while left:
                s = _summary(left[0])
                await self.gate.write_summary(
                    s,
                    counted_by=holder.describe(),
                    recovered=f"counted by a process that stopped without ledgering them ({why})",
                )
                total += s.count
                left.pop(0)
                if left:  # what is ledgered leaves the copy at once
                    await self.store.put(COUNTS, key, {**doc, "summaries": left})
            await self.store.delete(COUNTS, key)
            log.warning(
                "ledgered the refusals counted by %s, which stopped before it could (%s)",
                holder.describe(),
                why,
            )
        return total
