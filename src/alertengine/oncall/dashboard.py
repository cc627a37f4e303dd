"""Dashboard pages for on-call: the next 14 days of shifts, and silences (list, form, expire).

Server-rendered, scoped to the session's tenant like every dashboard page. The silence forms
POST with the dashboard's CSRF defences (:class:`~alertengine.orchestrator.forms.FormGuard`):
the session cookie is ``SameSite=Strict``, a cross-site request is refused by
``Sec-Fetch-Site``/``Origin`` (as sign-in does), and the form carries a token bound to the
session cookie, so a request without the page's token is refused (403).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from alertengine.oncall.api import VIEW_DAYS
from alertengine.oncall.registry import OnCallRegistry
from alertengine.oncall.schedule import ScheduleError, Shift
from alertengine.oncall.silences import SilenceError, parse_matcher
from alertengine.orchestrator.forms import FormGuard

if TYPE_CHECKING:
    from alertengine.orchestrator.dashboard import Dashboard, Session

MAX_FORM_BYTES = 16_384


@dataclass(frozen=True, slots=True)
class DayRow:
    """One day of one layer in the 14-day view: who holds it, hour by hour (UTC)."""

    schedule: str
    layer: str
    cells: list[tuple[str, str, bool]]  # (day label, people that day, any override)


def day_rows(name: str, shifts: list[Shift], start: datetime, days: int) -> list[DayRow]:
    rows: dict[str, list[tuple[str, str, bool]]] = {}
    for layer in dict.fromkeys(s.layer for s in shifts):
        cells = []
        for d in range(days):
            a, b = start + timedelta(days=d), start + timedelta(days=d + 1)
            inside = [s for s in shifts if s.layer == layer and s.start < b and s.end > a]
            parts = []
            for s in inside:
                since = max(s.start, a)
                parts.append(f"{s.who}" + (f" from {since:%H:%M}" if since > a else ""))
            cells.append((f"{a:%a %d %b}", ", ".join(parts), any(s.override for s in inside)))
        rows[layer] = cells
    return [DayRow(name, layer, cells) for layer, cells in rows.items()]


class OnCallPages:
    def __init__(self, dash: Dashboard, registry: OnCallRegistry, session_key: bytes) -> None:
        self.dash = dash
        self.registry = registry
        self.forms = FormGuard(session_key, max_bytes=MAX_FORM_BYTES, max_fields=16)

    def csrf_token(self, request: Request) -> str:
        return self.forms.token(request)

    async def _form(self, request: Request) -> dict[str, str]:
        return await self.forms.read(request)

    async def oncall(
        self, request: Request, s: Session, *, error: str = "", status: int = 200
    ) -> Response:
        now = datetime.fromtimestamp(self.dash.rt.clock.now(), timezone.utc)
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        until = start + timedelta(days=VIEW_DAYS)
        schedules = await self.registry.schedules(s.tenant_id)
        rows = [
            r
            for sc in schedules
            for r in day_rows(sc.name, sc.shifts(start, until), start, VIEW_DAYS)
        ]
        shifts = {sc.name: sc.shifts(now, until) for sc in schedules}
        return self.dash.page(
            request,
            "oncall.html",
            status,
            error=error,
            csrf=self.csrf_token(request),
            schedules=schedules,
            now=now,
            on_call=await self.registry.who(s.tenant_id, now),
            rows=rows,
            shifts=shifts,
            days=[f"{start + timedelta(days=d):%a %d %b}" for d in range(VIEW_DAYS)],
            **self.dash._context(s),
        )

    async def silences(
        self, request: Request, s: Session, *, error: str = "", status: int = 200
    ) -> Response:
        now = self.dash.rt.clock.now()
        items = await self.registry.silences(s.tenant_id)
        return self.dash.page(
            request,
            "silences.html",
            status,
            items=[(x, x.state(now)) for x in items],
            error=error,
            csrf=self.csrf_token(request),
            **self.dash._context(s),
        )

    async def add(self, request: Request, s: Session) -> Response:
        form = await self._form(request)
        try:
            lines = [
                x for x in form.get("matchers", "").replace(",", "\n").splitlines() if x.strip()
            ]
            matchers = [parse_matcher(x) for x in lines]
            hours = float(form.get("hours", "") or "nan")
            if not 0 < hours <= 24 * 366:
                raise SilenceError("duration: between a minute and 366 days, in hours")
            now = self.dash.rt.clock.now()
            await self.registry.add_silence(
                s.tenant_id,
                matchers,
                starts_at=now,
                ends_at=now + hours * 3600,
                created_by=form.get("created_by", ""),
                comment=form.get("comment", ""),
                actor=s.actor,
            )
        except (SilenceError, ValueError) as exc:
            return await self.silences(request, s, error=str(exc), status=400)
        return RedirectResponse(f"{request.url.path}", status_code=303)

    async def add_override(self, request: Request, s: Session) -> Response:
        """ "Bob covers Alice Saturday 09:00-21:00" from the on-call page (ledgered)."""
        form = await self._form(request)
        fields = ("who", "covers", "start", "end")
        override = {k: form.get(k, "").strip() for k in fields}
        try:
            await self.registry.add_override(
                s.tenant_id, form.get("schedule", ""), override, actor=s.actor
            )
        except KeyError:
            return await self.oncall(request, s, error="no such schedule", status=400)
        except ScheduleError as exc:
            return await self.oncall(request, s, error=str(exc), status=400)
        return RedirectResponse(request.url.path.rsplit("/", 1)[0], status_code=303)

    async def expire(self, request: Request, s: Session) -> Response:
        await self._form(request)
        sid = request.path_params["silence_id"]
        try:
            await self.registry.expire_silence(s.tenant_id, sid, actor=s.actor)
        except KeyError:
            raise HTTPException(404, "no such silence") from None
        return RedirectResponse(request.url.path.rsplit("/", 2)[0], status_code=303)

    def routes(self, base: str) -> list[BaseRoute]:
        g = self.dash.guarded
        return [
            Route(f"{base}/oncall", g(self.oncall), methods=["GET"]),
            Route(f"{base}/oncall/overrides", g(self.add_override), methods=["POST"]),
            Route(f"{base}/silences", g(self.silences), methods=["GET"]),
            Route(f"{base}/silences", g(self.add), methods=["POST"]),
            Route(f"{base}/silences/{{silence_id}}/expire", g(self.expire), methods=["POST"]),
        ]


def oncall_pages(dash: Dashboard, base: str) -> list[BaseRoute]:
    """The on-call pages, when the runtime has an on-call registry."""
    from alertengine.orchestrator.dashboard import session_key

    registry = dash.rt.oncall
    if registry is None:
        return []
    key = session_key(dash.rt.settings.alert_secret)
    return OnCallPages(dash, registry, key).routes(base)
