"""The refusal gate: anonymous refusals reach the ledger through the :mod:`.budget`.

Call sites keep writing their entries exactly as before, through the gate:

- ``await gate.record(category, tenant, incident, kind="refused", ...)``: ``engine.record``'s
  arguments after a bounded ``category`` (a code constant: "forged", "replayed message");
- ``gate.wrap(on_refused)``: an ``on_refused(path, why)`` webhook callback (Twilio's, Slack's)
  whose entries go through the budget, keyed by (``_system``, path, why);
- ``gate.webhook_refusal("telegram")``: such a callback that writes the standard entry.

The first ``per_window`` refusals of a key and window are written as they come; the rest are
counted and written as ONE summary entry (``decision="refused (coalesced)"``) when the window
closes: at the key's next refusal, at :meth:`RefusalGate.flush` (the orchestrator's loop
tick) or at :meth:`RefusalGate.flush_all` (graceful shutdown). A summary that cannot be
written (ledger down) waits, merged per key, and is retried: never dropped. Each process
counts its own refusals (replicas do not share windows); :mod:`.keeper` keeps a copy of the
counts in the state store so that a SIGKILL loses at most one loop tick of them.

Only refusals that name nobody go through a gate: a refusal tied to a tenant's key, a valid
signature or a person keeps its own entry (docs/ledger.md lists which are which).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alertengine.clock import Clock, SystemClock
from alertengine.refusals.budget import Limits, RefusalBudget, RefusalKey, Summary

log = logging.getLogger("alertengine.refusals")

#: ``IncidentEngine.record``'s shape: (tenant, incident, *, kind, actor, decision, ...).
Record = Callable[..., Awaitable[Any]]
#: A webhook route's refusal callback: (request path, why).
OnRefused = Callable[[str, str], Awaitable[None]]
#: The ledger of refusals no tenant can be named for.
SYSTEM_TENANT = "_system"

_source: contextvars.ContextVar[str] = contextvars.ContextVar("refusal_source", default="")
_path: contextvars.ContextVar[str] = contextvars.ContextVar("refusal_path", default="")


def current_source() -> str:
    """The client address of the HTTP request being handled ('' outside one)."""
    return _source.get()


def current_path() -> str:
    """The path of the HTTP request being handled ('' outside one)."""
    return _path.get()


class RequestOrigin:
    """Pure ASGI: remembers the request's client address and path for the refusals it causes,
    so callbacks that only get (path, why) still let a summary name a few sources. The
    address is uvicorn's (``--forwarded-allow-ips`` decides whether a proxy's header counts).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        source = _source.set(str(client[0])[:64] if client else "")
        path = _path.set(str(scope.get("path", ""))[:200])
        try:
            await self.app(scope, receive, send)
        finally:
            _source.reset(source)
            _path.reset(path)


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def summary_reason(s: Summary) -> str:
    noun = "request" if s.count == 1 else "requests"
    return (
        f"{s.count} more {noun} refused on {s.key.route} ({s.key.reason}) "
        f"between {_utc(s.first_at)} and {_utc(s.last_at)}"
    )


class RefusalGate:
    def __init__(self, record: Record, clock: Clock, limits: Limits | None = None) -> None:
        """``limits=None``: a pass-through (every refusal written as it comes, nothing
        counted), the default of collaborators built without the orchestrator."""
        self._record = record
        self.clock = clock
        self.budget = RefusalBudget(limits) if limits is not None else None
        self._unwritten: dict[RefusalKey, Summary] = {}
        #: One writer of summaries at a time: two flushes must not write one twice.
        self._lock = asyncio.Lock()

    @classmethod
    def passthrough(cls, record: Record) -> RefusalGate:
        return cls(record, SystemClock(), None)

    # -- refusing -----------------------------------------------------------------------------

    async def refuse(
        self, key: RefusalKey, write: Callable[[], Awaitable[object]], *, source: str | None = None
    ) -> None:
        """One anonymous refusal under ``key``: ``write()`` writes its own entry if the
        budget allows; otherwise it is counted into the window's summary."""
        if self.budget is None:
            await write()
            return
        now = self.clock.now()
        src = current_source() if source is None else source
        a = self.budget.admit(key, now, src)
        if a.warn:
            lim = self.budget.limits
            log.warning(
                "more than %d refusals in %.0f s on %s (%s, ledger %s): counting the rest "
                "into one ledger entry when the window closes",
                lim.per_window,
                lim.window_s,
                a.key.route,
                a.key.reason,
                a.key.tenant,
            )
        try:
            if a.closed:
                await self._write(a.closed)
            if a.ledger:
                await write()
        except BaseException:  # cancelled too: better counted twice than not at all
            if a.ledger:  # never written: its window's summary counts it instead
                self.budget.unledger(a.key, now, src)
            raise

    async def record(
        self,
        category: str,
        tenant_id: str,
        incident_id: str | None,
        /,
        *,
        route: str | None = None,
        **entry: Any,
    ) -> None:
        """``engine.record(tenant_id, incident_id, **entry)`` through the budget, keyed by
        (tenant_id, route or the request's path, category)."""
        key = RefusalKey.of(tenant_id, route or current_path() or "-", category)
        await self.refuse(key, lambda: self._record(tenant_id, incident_id, **entry))

    def recorder(self, category: str, *, route: str | None = None) -> Record:
        """:meth:`record` with ``category`` bound: ``engine.record``'s own signature."""

        async def record(tenant_id: str, incident_id: str | None, /, **entry: Any) -> None:
            await self.record(category, tenant_id, incident_id, route=route, **entry)

        return record

    def wrap(self, on_refused: OnRefused, *, tenant_id: str = SYSTEM_TENANT) -> OnRefused:
        """An ``on_refused(path, why)`` callback whose entries go through the budget, keyed
        by (tenant_id, path, why): ``why`` is one of the route's own constants, optionally
        followed by ``": <detail>"`` (a parse error's text), which is not part of the key."""

        async def gated(path: str, why: str) -> None:
            key = RefusalKey.of(tenant_id, path, why.partition(":")[0])
            await self.refuse(key, lambda: on_refused(path, why))

        return gated

    def webhook_refusal(self, via: str) -> OnRefused:
        """The standard ``_system`` entry for a request that is not the provider's (a bad
        signature or secret, a wrong shape), through the budget."""

        async def refused(path: str, why: str) -> None:
            await self._record(
                SYSTEM_TENANT,
                None,
                kind="refused",
                actor="anonymous",
                decision="refused",
                reason=f"{via} webhook {path}: {why}",
                data={"via": via, "path": path},
            )

        return self.wrap(refused)

    # -- summaries ----------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write the summaries of windows that have ended (the loop tick), and any that
        waited for the ledger."""
        if self.budget is not None:
            await self._write(self.budget.due(self.clock.now()))

    async def flush_all(self) -> None:
        """Close every window now and write its summary (graceful shutdown)."""
        if self.budget is not None:
            await self._write(self.budget.drain())

    async def _write(self, fresh: Iterable[Summary]) -> None:
        assert self.budget is not None
        cap = self.budget.limits.max_sources
        async with self._lock:
            for s in fresh:
                before = self._unwritten.get(s.key)
                self._unwritten[s.key] = before.merged(s, cap) if before is not None else s
            for key in sorted(self._unwritten):
                await self._record_summary(self._unwritten[key])  # raises: it stays, retried
                del self._unwritten[key]

    def pending_summaries(self) -> list[Summary]:
        """Every refusal counted but not ledgered yet, as summaries (for the store's copy)."""
        if self.budget is None:
            return []
        cap = self.budget.limits.max_sources
        out = dict(self._unwritten)
        for s in self.budget.open_summaries():
            out[s.key] = out[s.key].merged(s, cap) if s.key in out else s
        return [out[k] for k in sorted(out)]

    async def write_summary(self, s: Summary, **extra: Any) -> None:
        """Ledger one summary now (one another process counted): raises if it cannot."""
        await self._record_summary(s, **extra)

    async def _record_summary(self, s: Summary, **extra: Any) -> None:
        lim = self.budget.limits if self.budget is not None else Limits()
        data: dict[str, Any] = {
            "coalesced": True,
            "count": s.count,
            "first_at": s.first_at,
            "last_at": s.last_at,
            "route": s.key.route,
            "reason": s.key.reason,
            "sources": list(s.sources),
            "per_window": lim.per_window,
            "window_s": lim.window_s,
        }
        if s.folded:
            data["folded"] = [{"route": r, "reason": why} for r, why in s.folded]
        data.update(extra)
        await self._record(
            s.key.tenant,
            None,
            kind="refused",
            actor="anonymous",
            decision="refused (coalesced)",
            reason=summary_reason(s),
            data=data,
        )
        log.info(
            "%d refusals on %s (%s) ledgered as one entry in %s",
            s.count,
            s.key.route,
            s.key.reason,
            s.key.tenant,
        )

    # -- what an operator sees ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For ``/__alertengine/status`` (admin): limits, and per key what was ledgered,
        counted and is waiting."""
        if self.budget is None:
            return {"coalescing": False}
        lim = self.budget.limits
        pending = self.pending()
        keys = [
            {
                "tenant": k.tenant,
                "route": k.route,
                "reason": k.reason,
                "ledgered": t.ledgered,
                "coalesced": t.coalesced,
                "summaries": t.summaries,
                "pending": pending.get(k, 0),
            }
            for k, t in sorted(self.budget.totals.items())
        ]
        return {
            "coalescing": True,
            "per_window": lim.per_window,
            "window_s": lim.window_s,
            "max_keys": lim.max_keys,
            "ledgered": sum(k["ledgered"] for k in keys),
            "coalesced": sum(k["coalesced"] for k in keys),
            "pending": sum(k["pending"] for k in keys),
            "unwritten_summaries": len(self._unwritten),
            "keys": keys,
        }

    def pending(self) -> dict[RefusalKey, int]:
        """Refusals counted but in no ledger entry yet: open windows, and summaries waiting
        for the ledger."""
        out = self.budget.pending() if self.budget is not None else {}
        for k, s in self._unwritten.items():
            out[k] = out.get(k, 0) + s.count
        return out

    def collector(self) -> Collector:
        return _RefusalCollector(self)


class _RefusalCollector(Collector):
    """``alertengine_refusals_total{tenant,route,reason,outcome}`` (outcome ``ledgered``:
    an entry of its own; ``coalesced``: counted into a summary), the summaries written, and
    the refusals counted but not in the ledger yet. This process's own counts."""

    def __init__(self, gate: RefusalGate) -> None:
        self.gate = gate

    def collect(self) -> Iterator[Metric]:
        budget = self.gate.budget
        labels = ["tenant", "route", "reason"]
        refused = CounterMetricFamily(
            "alertengine_refusals",
            "Refused requests that named nobody (bad signature, forged link, unknown button), "
            "by what happened to their ledger entry.",
            labels=[*labels, "outcome"],
        )
        summaries = CounterMetricFamily(
            "alertengine_refusal_summaries",
            "Windows closed with coalesced refusals: one summary entry each (written, or "
            "waiting for the ledger: see alertengine_refusals_pending).",
            labels=labels,
        )
        pending = GaugeMetricFamily(
            "alertengine_refusals_pending",
            "Refusals counted in open windows, not yet in any ledger entry.",
            labels=labels,
        )
        if budget is not None:
            waiting = self.gate.pending()
            for k, t in sorted(budget.totals.items()):
                names = [k.tenant, k.route, k.reason]
                refused.add_metric([*names, "ledgered"], t.ledgered)
                refused.add_metric([*names, "coalesced"], t.coalesced)
                summaries.add_metric(names, t.summaries)
                pending.add_metric(names, waiting.get(k, 0))
        yield refused
        yield summaries
        yield pending
