"""Pruning of finished sign-in requests and dead person tokens, so the store does not grow
forever.

A request is kept :data:`REQUEST_GRACE_S` after it expires (a late poll or a reused link is
still told "expired" / "already issued", not "unknown"); a token :data:`TOKEN_GRACE_S` after
it expired or was revoked (a revoked token is still answered "revoked" for a while; then it
is "unknown"). Deciding what is due is pure (:func:`request_due`, :func:`token_due`,
:func:`pick_due`); :class:`SignInPruner` runs it from the orchestrator's loop under the sweep
lease (one replica prunes), at most :data:`PRUNE_BATCH` deletions per run so a backlog never
stalls a tick. Pruning is bookkeeping, not an event: the ledger already holds the request,
issue and revoke entries, so deletions are counted in the log, not ledgered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from alertengine.clock import Clock
from alertengine.people.signin import CONFIRM_INDEX, REQUESTS, TOKENS, tokens_of
from alertengine.stores.base import StateStore

log = logging.getLogger(__name__)

REQUEST_GRACE_S = 86400.0
TOKEN_GRACE_S = 7 * 86400.0
#: At most this many documents deleted per run (requests and tokens together).
PRUNE_BATCH = 200
#: Runs at most this often (each run lists the two collections once).
PRUNE_EVERY_S = 300.0
#: Where the one-time backfill of the per-person token index is marked done.
META = "person_signin_meta"
INDEX_DONE = "token-index-v1"

Doc = Mapping[str, Any]


def _num(doc: Doc, field: str) -> float | None:
    try:
        return float(doc[field])
    except (KeyError, TypeError, ValueError):
        return None


def request_due(doc: Doc, now: float, grace_s: float = REQUEST_GRACE_S) -> bool:
    """A request of any state ends at ``expires_at`` at the latest; due ``grace_s`` later.
    A document without a readable expiry is left alone (never delete what we cannot read)."""
    exp = _num(doc, "expires_at")
    return exp is not None and exp + grace_s <= now


def token_due(doc: Doc, now: float, grace_s: float = TOKEN_GRACE_S) -> bool:
    """A token is dead at expiry or revocation, whichever comes first; due ``grace_s`` later."""
    exp = _num(doc, "expires_at")
    if exp is None:
        return False
    revoked_at = _num(doc, "revoked_at") if doc.get("revoked") else None
    end = exp if revoked_at is None else min(exp, revoked_at)
    return end + grace_s <= now


def pick_due(
    docs: Mapping[str, Doc], now: float, is_due: Callable[[Doc, float], bool], limit: int
) -> list[str]:
    """At most ``limit`` keys of due documents, in key order (stable across replicas)."""
    if limit <= 0:
        return []
    out: list[str] = []
    for key in sorted(docs):
        if is_due(docs[key], now):
            out.append(key)
            if len(out) >= limit:
                break
    return out


class SignInPruner:
    """The loop's tick hook: deletes due requests (with their confirm index entry) and due
    tokens (with their per-person index entry)."""

    def __init__(
        self,
        store: StateStore,
        clock: Clock,
        *,
        batch: int = PRUNE_BATCH,
        every_s: float = PRUNE_EVERY_S,
    ) -> None:
        self.store, self.clock = store, clock
        self.batch, self.every_s = batch, every_s
        self._last = float("-inf")
        self._indexed = False

    async def tick(self) -> None:
        now = self.clock.now()
        if now - self._last < self.every_s:
            return
        self._last = now
        await self.prune()

    async def backfill_index(self, tokens: Mapping[str, Doc]) -> int:
        """Tokens issued before the per-person index existed get their entry (idempotent
        puts; marked done once all are written, so a crash midway simply redoes it)."""
        if await self.store.get(META, INDEX_DONE) is not None:
            return 0
        for th, doc in tokens.items():
            tenant, person = str(doc.get("tenant", "")), str(doc.get("person", ""))
            if tenant and person:
                await self.store.put(
                    tokens_of(tenant, person), th, {"expires_at": doc.get("expires_at", 0)}
                )
        await self.store.put(META, INDEX_DONE, {"tokens": len(tokens), "at": self.clock.now()})
        if tokens:
            log.info("indexed %d person tokens issued before the per-person index", len(tokens))
        return len(tokens)

    async def prune(self) -> tuple[int, int]:
        """One bounded run: (requests, tokens) deleted."""
        now = self.clock.now()
        if self._indexed is False:
            await self.backfill_index(await self.store.list(TOKENS))
            self._indexed = True
        requests = await self.store.list(REQUESTS)
        due_r = pick_due(requests, now, request_due, self.batch)
        for dh in due_r:
            ch = requests[dh].get("confirm_hash")
            if isinstance(ch, str) and ch:
                await self.store.delete(CONFIRM_INDEX, ch)
            await self.store.delete(REQUESTS, dh)
        due_t: list[str] = []
        if len(due_r) < self.batch:
            tokens = await self.store.list(TOKENS)
            due_t = pick_due(tokens, now, token_due, self.batch - len(due_r))
            for th in due_t:
                doc = tokens[th]
                # Index first: a crash in between leaves a token without an index entry
                # (harmless: it is dead), never an index entry pointing nowhere for ever.
                tenant, person = str(doc.get("tenant", "")), str(doc.get("person", ""))
                await self.store.delete(tokens_of(tenant, person), th)
                await self.store.delete(TOKENS, th)
        if due_r or due_t:
            log.info(
                "pruned %d finished sign-in requests and %d dead person tokens%s",
                len(due_r),
                len(due_t),
                " (more left for the next run)" if len(due_r) + len(due_t) >= self.batch else "",
            )
        return len(due_r), len(due_t)
