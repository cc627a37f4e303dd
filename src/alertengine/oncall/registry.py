"""Schedules and silences per tenant, kept in the state store; every change ledgered.

Documents: collection ``oncall_schedules:<tenant>`` (key: schedule name) and
``oncall_silences:<tenant>`` (key: silence id). The ledger gets one entry per change, with
no incident: ``kind="schedule"`` (decision ``set``/``removed``, data: the schedule) and
``kind="silence"`` (decision ``created``/``expired``/``deleted``, data: the silence), each
naming its actor (``operator:<name>`` from the CLI, ``tenant:<id>`` or ``admin`` from the
API and the dashboard, ``config`` when a start-up's config differs from the store).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from alertengine.clock import Clock, SystemClock
from alertengine.oncall.schedule import (
    Schedule,
    ScheduleError,
    order,
    schedule_from_dict,
    schedule_to_dict,
    utc_at,
)
from alertengine.oncall.silences import (
    Matcher,
    Silence,
    SilenceError,
    silence_from_dict,
    silencing,
)
from alertengine.people import PersonRegistry
from alertengine.stores.base import StateStore
from alertengine.tenants import TenantRegistry

#: Ledgers one change: (tenant_id, kind, actor, decision, reason, data).
Record = Callable[[str, str, str, str, str, Mapping[str, Any]], Awaitable[None]]

CONFIG_ACTOR = "config"


def schedules_collection(tenant_id: str) -> str:
    return f"oncall_schedules:{tenant_id}"


def silences_collection(tenant_id: str) -> str:
    return f"oncall_silences:{tenant_id}"


def engine_record(engine: Any) -> Record:
    """Ledger through an :class:`~alertengine.engine.IncidentEngine` (no incident)."""

    async def record(
        tenant_id: str, kind: str, actor: str, decision: str, reason: str, data: Mapping[str, Any]
    ) -> None:
        await engine.record(
            tenant_id, None, kind=kind, actor=actor, decision=decision, reason=reason, data=data
        )

    return record


class OnCallRegistry:
    def __init__(
        self,
        store: StateStore,
        record: Record,
        clock: Clock | None = None,
        *,
        check_people: bool = True,
    ) -> None:
        self.store = store
        self.record = record
        self.clock: Clock = clock or SystemClock()
        #: Refuse a schedule naming someone who is not one of the tenant's approvers: they
        #: could be "on call" and yet never be asked (they have no channel on the route).
        self.check_people = check_people

    async def _check_people(self, tenant_id: str, schedule: Schedule) -> None:
        if not self.check_people:
            return
        tenant = await TenantRegistry(self.store).get(tenant_id)
        if tenant is None:
            raise ScheduleError(f"no such tenant {tenant_id!r}")
        known = {i for ids in tenant.approvers.values() for i in ids}
        known |= {p.id for p in await PersonRegistry(self.store).list(tenant_id)}
        if unknown := [p for p in schedule.people() if p not in known]:
            raise ScheduleError(
                f"schedule {schedule.name!r}: {unknown} not among the tenant's approvers "
                "(an on-call person must be reachable and able to approve)"
            )

    # -- schedules --------------------------------------------------------------------------

    async def schedules(self, tenant_id: str) -> list[Schedule]:
        docs = await self.store.list(schedules_collection(tenant_id))
        out = []
        for name in sorted(docs):
            try:
                out.append(schedule_from_dict(docs[name]["schedule"]))
            except (ScheduleError, KeyError, TypeError):
                continue  # a document no longer valid is skipped, never fatal
        return out

    async def schedule(self, tenant_id: str, name: str) -> Schedule | None:
        doc = await self.store.get(schedules_collection(tenant_id), name)
        return schedule_from_dict(doc["schedule"]) if doc else None

    async def set_schedule(
        self,
        tenant_id: str,
        schedule: Schedule,
        *,
        actor: str,
        source: str = "api",
        added_overrides: Sequence[Mapping[str, Any]] | None = None,
        config_version: Mapping[str, Any] | None = None,
    ) -> bool:
        """Store ``schedule`` (replacing one of the same name); False when nothing changed.

        The document remembers the config file's version of the schedule (``config``) and
        the overrides added at run time (``added_overrides``), so that a restart with the
        same config keeps what people changed since (see :meth:`sync_config`)."""
        await self._check_people(tenant_id, schedule)
        data = schedule_to_dict(schedule)
        old = await self.store.get(schedules_collection(tenant_id), schedule.name)
        kept = (
            (old or {}).get("added_overrides", []) if added_overrides is None else added_overrides
        )
        doc: dict[str, Any] = {
            "schedule": data,
            "source": source,
            "updated_at": self.clock.now(),
            "by": actor,
        }
        if source == "config":
            doc["config"] = dict(config_version) if config_version is not None else data
        elif old is not None and "config" in old:
            doc["config"] = old["config"]
        if kept:
            doc["added_overrides"] = [dict(o) for o in kept]
        if old is not None and old.get("schedule") == data:
            if any(old.get(k) != doc.get(k) for k in ("config", "added_overrides")):
                # Same schedule in effect: only the bookkeeping moved (nothing to ledger).
                await self.store.put(
                    schedules_collection(tenant_id),
                    schedule.name,
                    old | {k: doc[k] for k in ("config", "added_overrides") if k in doc},
                )
            return False
        await self.store.put(schedules_collection(tenant_id), schedule.name, doc)
        verb = "changed" if old is not None else "added"
        await self.record(
            tenant_id,
            "schedule",
            actor,
            "set",
            f"schedule {schedule.name!r} {verb} by {actor}",
            {"name": schedule.name, "schedule": data, "previous": (old or {}).get("schedule")},
        )
        return True

    async def add_override(
        self, tenant_id: str, name: str, override: Mapping[str, Any], *, actor: str
    ) -> Schedule:
        """Add an override (``{who, covers, start, end, layer}``, times as in a schedule)
        to schedule ``name``; ledgered as a schedule change. It survives restarts, and a
        changed config file keeps it (it is re-applied on top of the new version)."""
        doc = await self.store.get(schedules_collection(tenant_id), name)
        if doc is None:
            raise KeyError(name)
        data = dict(doc["schedule"])
        data["overrides"] = [*data.get("overrides", []), dict(override)]
        schedule = schedule_from_dict(data)
        await self.set_schedule(
            tenant_id,
            schedule,
            actor=actor,
            source="override" if doc.get("source") == "config" else str(doc.get("source")),
            added_overrides=[*doc.get("added_overrides", []), dict(override)],
        )
        return schedule

    async def remove_schedule(self, tenant_id: str, name: str, *, actor: str) -> bool:
        old = await self.store.get(schedules_collection(tenant_id), name)
        if old is None:
            return False
        await self.store.delete(schedules_collection(tenant_id), name)
        await self.record(
            tenant_id,
            "schedule",
            actor,
            "removed",
            f"schedule {name!r} removed by {actor}",
            {"name": name, "previous": old.get("schedule")},
        )
        return True

    async def sync_config(self, tenant_id: str, schedules: Sequence[Schedule]) -> list[str]:
        """Make the store follow the config file's schedules without losing what people
        changed at run time.

        A schedule whose config version is the one last applied is left alone: overrides
        and edits made since from the CLI, the API or the dashboard stand (a restart must
        not drop "Bob covers Alice on Saturday"). A schedule whose config version changed
        is replaced by it, and the overrides added at run time are laid on top again. A
        schedule the config used to define and no longer does is removed. Each difference
        is ledgered (actor ``config``)."""
        changed = []
        docs = await self.store.list(schedules_collection(tenant_id))
        for s in schedules:
            data = schedule_to_dict(s)
            old = docs.get(s.name)
            if old is not None and old.get("config") == data:
                continue  # the file did not change: run-time edits stand
            added = list((old or {}).get("added_overrides", []))
            merged = s
            if added:
                try:
                    merged = schedule_from_dict(
                        {**data, "overrides": [*data.get("overrides", []), *added]}
                    )
                except ScheduleError:
                    added, merged = [], s  # no longer fits the new version: the file wins
            if await self.set_schedule(
                tenant_id,
                merged,
                actor=CONFIG_ACTOR,
                source="config",
                added_overrides=added,
                config_version=data,  # the next start compares the file against this
            ):
                changed.append(s.name)
        names = {s.name for s in schedules}
        for name, doc in docs.items():
            if ("config" in doc or doc.get("source") == "config") and name not in names:
                await self.remove_schedule(tenant_id, name, actor=CONFIG_ACTOR)
                changed.append(name)
        return changed

    async def who(self, tenant_id: str, at: datetime) -> list[str]:
        """Who is on call at ``at`` over all the tenant's schedules (primary first)."""
        return order(await self.schedules(tenant_id), [], at)

    async def order(self, tenant_id: str, people_ids: Sequence[str], at: datetime) -> list[str]:
        return order(await self.schedules(tenant_id), people_ids, at)

    # -- silences ---------------------------------------------------------------------------

    async def silences(self, tenant_id: str) -> list[Silence]:
        docs = await self.store.list(silences_collection(tenant_id))
        out = []
        for doc in docs.values():
            try:
                out.append(silence_from_dict(doc))
            except (SilenceError, KeyError, TypeError, ValueError):
                continue
        return sorted(out, key=lambda s: (s.starts_at, s.id))

    async def silence(self, tenant_id: str, silence_id: str) -> Silence | None:
        doc = await self.store.get(silences_collection(tenant_id), silence_id)
        return silence_from_dict(doc) if doc else None

    async def add_silence(
        self,
        tenant_id: str,
        matchers: Sequence[Matcher],
        *,
        starts_at: float | None,
        ends_at: float,
        created_by: str,
        comment: str,
        actor: str,
    ) -> Silence:
        now = self.clock.now()
        start = now if starts_at is None else starts_at
        if ends_at <= now:
            raise SilenceError("ends_at is in the past: that silence would silence nothing")
        if ends_at <= start:
            raise SilenceError("ends_at must be after starts_at")
        s = Silence(
            id="sil-" + secrets.token_hex(8),
            tenant_id=tenant_id,
            matchers=tuple(matchers),
            starts_at=start,
            ends_at=ends_at,
            created_by=created_by.strip(),
            comment=comment.strip(),
            created_at=now,
        )
        await self.store.put(silences_collection(tenant_id), s.id, s.to_dict())
        await self.record(
            tenant_id,
            "silence",
            actor,
            "created",
            f"silence {s.id} by {s.created_by} until {utc_at(s.ends_at):%Y-%m-%d %H:%M:%S} UTC: "
            f"{s.comment}",
            s.to_dict(),
        )
        return s

    async def expire_silence(self, tenant_id: str, silence_id: str, *, actor: str) -> Silence:
        s = await self.silence(tenant_id, silence_id)
        if s is None:
            raise KeyError(silence_id)
        now = self.clock.now()
        if s.state(now) == "expired":
            return s
        ended = s.expired_at(now)
        await self.store.put(silences_collection(tenant_id), s.id, ended.to_dict())
        await self.record(
            tenant_id,
            "silence",
            actor,
            "expired",
            f"silence {s.id} expired by {actor}",
            ended.to_dict(),
        )
        return ended

    async def delete_silence(self, tenant_id: str, silence_id: str, *, actor: str) -> Silence:
        s = await self.silence(tenant_id, silence_id)
        if s is None:
            raise KeyError(silence_id)
        await self.store.delete(silences_collection(tenant_id), silence_id)
        await self.record(
            tenant_id,
            "silence",
            actor,
            "deleted",
            f"silence {s.id} deleted by {actor} (the ledger keeps its history)",
            s.to_dict(),
        )
        return s

    async def silencing(
        self, tenant_id: str, labels: Mapping[str, str], at: float
    ) -> Silence | None:
        return silencing(await self.silences(tenant_id), labels, at)
