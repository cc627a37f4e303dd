"""HTTP routes for schedules and silences (tenant API key, or the admin key with ?tenant=).

Silence ids live under their tenant, so another tenant's id is simply not found. Every
change is ledgered with the caller as actor (``tenant:<id>`` or ``admin``). Bad input
answers 400 with the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from alertengine.oncall.registry import OnCallRegistry
from alertengine.oncall.schedule import ScheduleError, schedule_from_dict, schedule_to_dict
from alertengine.oncall.silences import SilenceError, matcher_from_dict
from alertengine.orchestrator.api import OrchestratorAPI
from alertengine.orchestrator.http import json_body

VIEW_DAYS = 14


def when(value: Any, what: str) -> float:
    """Epoch seconds or ISO 8601 (UTC when no offset) -> epoch seconds; 400 otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 0 <= value < 1e11:
            return float(value)
    elif isinstance(value, str):
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()
    raise HTTPException(400, f"{what}: expected ISO 8601 or epoch seconds, got {value!r}")


class OnCallAPI:
    def __init__(self, api: OrchestratorAPI, registry: OnCallRegistry) -> None:
        self.api = api
        self.registry = registry

    async def _caller(self, request: Request) -> tuple[str, str]:
        tenant = await self.api.tenant_of(request)
        p = await self.api.principal(request)
        return tenant, "admin" if p.admin else f"tenant:{tenant}"

    # -- schedules --------------------------------------------------------------------------

    async def who(self, request: Request) -> JSONResponse:
        tenant, _ = await self._caller(request)
        raw = request.query_params.get("at")
        at = datetime.fromtimestamp(
            when(raw, "at") if raw else self.registry.clock.now(), timezone.utc
        )
        schedules = await self.registry.schedules(tenant)
        until = at + timedelta(days=VIEW_DAYS)
        return JSONResponse(
            {
                "tenant_id": tenant,
                "at": at.isoformat(),
                "on_call": await self.registry.who(tenant, at),
                "schedules": [schedule_to_dict(s) for s in schedules],
                "shifts": {s.name: [x.to_dict() for x in s.shifts(at, until)] for s in schedules},
            }
        )

    async def put_schedule(self, request: Request) -> JSONResponse:
        tenant, actor = await self._caller(request)
        name = request.path_params["name"]
        body = await json_body(request)
        if not isinstance(body, dict):
            raise HTTPException(400, "body must be a schedule object (docs/oncall.md)")
        if body.setdefault("name", name) != name:
            raise HTTPException(400, f"the body names schedule {body['name']!r}, the path {name!r}")
        try:
            schedule = schedule_from_dict(body)
        except ScheduleError as exc:
            raise HTTPException(400, str(exc)) from None
        changed = await self.registry.set_schedule(tenant, schedule, actor=actor, source="api")
        return JSONResponse({"changed": changed, "schedule": schedule_to_dict(schedule)})

    async def delete_schedule(self, request: Request) -> JSONResponse:
        tenant, actor = await self._caller(request)
        name = request.path_params["name"]
        if not await self.registry.remove_schedule(tenant, name, actor=actor):
            raise HTTPException(404, f"no schedule {name!r}")
        return JSONResponse({"removed": name})

    # -- silences ---------------------------------------------------------------------------

    async def list_silences(self, request: Request) -> JSONResponse:
        tenant, _ = await self._caller(request)
        now = self.registry.clock.now()
        items = await self.registry.silences(tenant)
        return JSONResponse({"tenant_id": tenant, "silences": [s.to_dict(now) for s in items]})

    async def add_silence(self, request: Request) -> JSONResponse:
        tenant, actor = await self._caller(request)
        body = await json_body(request)
        if not isinstance(body, dict):
            raise HTTPException(400, "body must be an object {matchers, ends_at, created_by, …}")
        extra = sorted(
            set(body) - {"matchers", "starts_at", "ends_at", "duration_s", "created_by", "comment"}
        )
        if extra:
            raise HTTPException(400, f"unknown field(s) {extra}")
        raw = body.get("matchers")
        if not isinstance(raw, list) or not raw:
            raise HTTPException(400, "matchers: a non-empty list")
        try:
            matchers = [matcher_from_dict(m) for m in raw[:64]]
            now = self.registry.clock.now()
            starts = when(body["starts_at"], "starts_at") if "starts_at" in body else now
            if ("ends_at" in body) == ("duration_s" in body):
                raise HTTPException(400, "give exactly one of ends_at and duration_s")
            if "ends_at" in body:
                ends = when(body["ends_at"], "ends_at")
            else:
                d = body["duration_s"]
                if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d < 1e8:
                    raise HTTPException(400, "duration_s: a positive number of seconds")
                ends = starts + float(d)
            created_by, comment = body.get("created_by"), body.get("comment")
            if not isinstance(created_by, str) or not isinstance(comment, str):
                raise HTTPException(400, "created_by and comment are required strings")
            s = await self.registry.add_silence(
                tenant,
                matchers,
                starts_at=starts,
                ends_at=ends,
                created_by=created_by,
                comment=comment,
                actor=actor,
            )
        except SilenceError as exc:
            raise HTTPException(400, str(exc)) from None
        return JSONResponse(s.to_dict(self.registry.clock.now()), status_code=201)

    async def get_silence(self, request: Request) -> JSONResponse:
        tenant, _ = await self._caller(request)
        s = await self.registry.silence(tenant, request.path_params["silence_id"])
        if s is None:
            raise HTTPException(404, "no such silence")
        return JSONResponse(s.to_dict(self.registry.clock.now()))

    async def delete_silence(self, request: Request) -> JSONResponse:
        """Expire (Alertmanager's DELETE); ``?purge=true`` removes the record as well."""
        tenant, actor = await self._caller(request)
        sid = request.path_params["silence_id"]
        purge = request.query_params.get("purge", "false").lower()
        if purge not in ("true", "false", "1", "0"):
            raise HTTPException(400, "purge: true or false")
        try:
            s = await self.registry.expire_silence(tenant, sid, actor=actor)
            if purge in ("true", "1"):
                s = await self.registry.delete_silence(tenant, sid, actor=actor)
                return JSONResponse({"deleted": sid})
        except KeyError:
            raise HTTPException(404, "no such silence") from None
        return JSONResponse(s.to_dict(self.registry.clock.now()))

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/oncall", self.who, methods=["GET"]),
            Route("/oncall/schedules/{name}", self.put_schedule, methods=["PUT"]),
            Route("/oncall/schedules/{name}", self.delete_schedule, methods=["DELETE"]),
            Route("/silences", self.list_silences, methods=["GET"]),
            Route("/silences", self.add_silence, methods=["POST"]),
            Route("/silences/{silence_id}", self.get_silence, methods=["GET"]),
            Route("/silences/{silence_id}", self.delete_silence, methods=["DELETE"]),
        ]
