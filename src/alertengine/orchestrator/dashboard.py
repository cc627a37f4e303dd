"""The web dashboard under ``/dashboard``: incidents, timelines, ledger status, policy simulator.

Sign-in takes a tenant API key (or the admin key plus a tenant name) in a POST form and sets
a signed session cookie (HMAC-SHA256 with a key derived from ``ALERT_SECRET``; it holds the
tenant id, the admin flag and an expiry, never the API key). The cookie is ``HttpOnly``,
``SameSite=Strict``, scoped to ``/dashboard`` and ``Secure`` over HTTPS. Rotating a tenant's
API key ends its sessions. Pages without a valid session redirect to the sign-in page; the
JSON API answers 401. API keys in query strings are refused outright.

Every page is scoped to the session's tenant: another tenant's incident answers 403 and the
attempt is ledgered (kind ``refused``) under the tenant it reached for, as the JSON API does.
GET never changes state. Templates autoescape; the CSP allows only this app's own CSS and JS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from alertengine.incidents import IncidentState, Stage
from alertengine.ledger import LedgerQuery
from alertengine.oncall.dashboard import oncall_pages
from alertengine.orchestrator.charts import Marker, Point, health_chart
from alertengine.orchestrator.key_refusals import key_problem, ledger_key_refusal
from alertengine.people.dashboard import people_pages
from alertengine.people.signin_dashboard import PersonPages, ack_context, person_pages
from alertengine.policy import (
    HealthSnapshot,
    Policy,
    degradation,
    is_healthy,
    should_validate,
)
from alertengine.refusals.gate import RefusalGate
from alertengine.sdk.scoring import score_health
from alertengine.tenants import KEY_PREFIX, Principal, access_refusal

if TYPE_CHECKING:  # runtime.py may import this module to mount it
    from alertengine.orchestrator.runtime import Runtime

BASE = "/dashboard"
HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates" / "dashboard"
STATIC_DIR = HERE / "static"

SESSION_COOKIE = "ae_dashboard"
SESSION_TTL_S = 8 * 3600
MAX_FORM_BYTES = 8_192
RECENT_LIMIT = 50
#: The sign-in page's answer to a key that names nobody (ledgered, see :meth:`Dashboard.signin`).
KEY_NOT_ACCEPTED = "That key was not accepted."
TIMELINE_LIMIT = 2_000

#: Query parameters that look like credentials; their presence alone is refused.
_KEY_PARAMS = frozenset({"key", "api_key", "apikey", "api-key", "token", "access_token", "auth"})

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

STAGE_CLASS = {
    Stage.DETECTED.value: "st-open",
    Stage.PROPOSED.value: "st-open",
    Stage.VALIDATED.value: "st-wait",
    Stage.AUTHORIZED.value: "st-auth",
    Stage.EXECUTED.value: "st-auth",
    Stage.WEBHOOK_FAILED.value: "st-bad",
    Stage.RESOLVED.value: "st-done",
    Stage.RECOVERED.value: "st-done",
    Stage.EXPIRED.value: "st-muted",
}


# --- sessions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    tenant_id: str
    admin: bool
    expires_at: float
    #: The tenant's ``key_rotated_at`` when the session began: a rotation ends the session.
    key_epoch: float = 0.0
    #: The person this session acts as, once they confirmed from their own channel
    #: (people/signin.py); empty otherwise. ``pending`` holds the device code meanwhile.
    person: str = ""
    person_name: str = ""
    pending: str = ""

    @property
    def principal(self) -> Principal:
        return Principal(None if self.admin else self.tenant_id, self.admin)

    @property
    def actor(self) -> str:
        """Who the ledger names for this session's changes: the person, once they confirmed
        it is them; otherwise the key that signed in."""
        if self.person:
            return f"person:{self.person}"
        return self.key_actor

    @property
    def key_actor(self) -> str:
        """The key that signed this session in (``admin`` or ``tenant:<id>``)."""
        return "admin" if self.admin else f"tenant:{self.tenant_id}"


def session_key(alert_secret: str) -> bytes:
    """The cookie-signing key: derived from ``ALERT_SECRET`` (random per process without one)."""
    if not alert_secret:
        return secrets.token_bytes(32)
    return hmac.new(alert_secret.encode(), b"alertengine/dashboard-session/v1", "sha256").digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """``<base64url JSON>.<base64url HMAC>``; decoding checks the MAC first, then the expiry."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("session key too short")
        self._key = key

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def encode(self, s: Session) -> str:
        body: dict[str, Any] = {"t": s.tenant_id, "a": s.admin, "e": s.expires_at, "r": s.key_epoch}
        for k, v in (("p", s.person), ("n", s.person_name), ("q", s.pending)):
            if v:
                body[k] = v
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._mac(payload)}"

    def decode(self, value: str | None, now: float) -> Session | None:
        if not value or len(value) > 2048 or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        try:
            body = json.loads(_unb64(payload))
            s = Session(
                tenant_id=str(body["t"]),
                admin=bool(body["a"]),
                expires_at=float(body["e"]),
                key_epoch=float(body.get("r", 0.0)),
                person=str(body.get("p", "")),
                person_name=str(body.get("n", "")),
                pending=str(body.get("q", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if not math.isfinite(s.expires_at) or s.expires_at <= now:
            return None
        return s


# --- the simulator --------------------------------------------------------------------------


def simulate(
    policy: Policy, p95_ms: float, error_rate: float, sample_size: int, now: float
) -> dict[str, Any]:
    """Score one window with the SDK's own scoring and run the tenant's policy gates on it."""
    hs = score_health(p95_ms, error_rate, sample_size=sample_size)
    snap = HealthSnapshot(
        observed_at=now,
        score=float(hs.score),
        status=hs.status,
        p95_ms=p95_ms,
        error_rate=error_rate,
        sample_size=sample_size,
        source="simulator",
    )
    opens = degradation(policy, snap)
    if opens.yes:
        validates = should_validate(policy, snap, degraded_streak=1)
    else:
        validates = type(opens)(False, "would not open an incident")
    healthy = is_healthy(policy, snap)
    return {
        "input": {"p95_ms": p95_ms, "error_rate": error_rate, "sample_size": sample_size},
        "score": hs.score,
        "status": hs.status,
        "penalties": hs.components(),
        "p95_warning_ms": hs.p95_warning_ms,
        "p95_critical_ms": hs.p95_critical_ms,
        "alerts": [a.as_dict() for a in hs.alerts],
        "policy_version": policy.version,
        "gates": {
            "would_open": {"pass": opens.yes, "reason": opens.reason},
            "would_validate_at_once": {"pass": validates.yes, "reason": validates.reason},
            "counts_as_healthy": {
                "pass": healthy,
                "reason": (
                    f"score ≥ {policy.recover_score:.0f} and errors < "
                    f"{policy.recover_error_rate:.0%}"
                    if healthy
                    else f"needs score ≥ {policy.recover_score:.0f}, errors < "
                    f"{policy.recover_error_rate:.0%} and P95 < {policy.open_p95_ms:.0f} ms"
                ),
            },
        },
    }


def _finite_param(
    params: Mapping[str, str], name: str, default: float, lo: float, hi: float
) -> float:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise HTTPException(400, f"{name} must be between {lo:g} and {hi:g}")
    return value


def simulate_params(params: Mapping[str, str], *, percent: bool) -> tuple[float, float, int]:
    """``p95_ms`` (0..600000), the error rate (fraction 0..1, or ``error_pct`` 0..100 for the
    no-script form) and ``sample_size`` (integer 0..10^9, default 100). 400 with a reason."""
    p95 = _finite_param(params, "p95_ms", 200.0, 0.0, 600_000.0)
    if percent:
        err = _finite_param(params, "error_pct", 0.0, 0.0, 100.0) / 100.0
    else:
        err = _finite_param(params, "error_rate", 0.0, 0.0, 1.0)
    raw = params.get("sample_size")
    size = 100
    if raw not in (None, ""):
        assert raw is not None
        if not raw.isdigit() or len(raw) > 10:
            raise HTTPException(400, "sample_size must be a whole number of requests")
        size = int(raw)
        if size > 10**9:
            raise HTTPException(400, "sample_size must be between 0 and 1000000000")
    return p95, err, size


# --- helpers --------------------------------------------------------------------------------


def utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _authorized_by(s: IncidentState) -> list[str]:
    return [h.actor for h in s.history if h.stage is Stage.AUTHORIZED]


def _same_origin(request: Request) -> bool:
    """A cross-site POST is refused even before SameSite does its part (login CSRF).

    Browsers say where a request comes from in ``Sec-Fetch-Site``; with our
    ``Referrer-Policy: no-referrer`` a same-origin form may carry ``Origin: null``, so
    ``Origin`` is only compared when it names a real origin. Clients that send neither
    (curl, tests) are not browsers and carry no ambient cookie to abuse.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _refuse_key_in_query(request: Request) -> None:
    for name, value in request.query_params.multi_items():
        if name.lower() in _KEY_PARAMS or value.startswith(KEY_PREFIX):
            raise HTTPException(
                400, "API keys are not accepted in query strings; sign in with the form"
            )


Handler = Callable[[Request], Awaitable[Response]]


class Dashboard:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.codec = SessionCodec(session_key(rt.settings.alert_secret))
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        env.filters["utc"] = utc
        env.globals["stage_class"] = lambda stage: STAGE_CLASS.get(str(stage), "st-muted")
        env.globals["base"] = BASE
        self.templates = Jinja2Templates(env=env)
        #: Person sign-in pages and the Acknowledge button (set by routes()).
        self.person: PersonPages | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return self.templates.TemplateResponse(
            request, name, context, status_code=status, headers=SECURITY_HEADERS
        )

    async def session(self, request: Request) -> Session | None:
        s = self.codec.decode(request.cookies.get(SESSION_COOKIE), self.rt.clock.now())
        if s is None:
            return None
        tenant = await self.rt.registry.get(s.tenant_id)
        if tenant is None:
            return None
        if not s.admin and tenant.key_rotated_at != s.key_epoch:
            return None
        people = self.rt.notifier.people  # a person removed from the registry: named no more
        if s.person and people is not None and await people.get(s.tenant_id, s.person) is None:
            return replace(s, person="", person_name="")
        return s

    def _signin_redirect(self) -> Response:
        return RedirectResponse(f"{BASE}/signin", status_code=303, headers=SECURITY_HEADERS)

    def guarded(self, fn: Callable[[Request, Session], Awaitable[Response]]) -> Handler:
        async def handler(request: Request) -> Response:
            _refuse_key_in_query(request)
            s = await self.session(request)
            if s is None:
                return self._signin_redirect()
            return await fn(request, s)

        return handler

    def _context(self, s: Session) -> dict[str, Any]:
        tenant = None if s.admin else s.tenant_id
        notifier = self.rt.notifier
        orch = self.rt.orch
        # What is down and why: the store's own words for the admin, classified words
        # ("disk full") for a tenant (an error text may name paths or hosts).
        causes = orch.health.causes() if s.admin else orch.health.short_causes()
        return {
            "session": s,
            "mode": orch.mode.value,
            "mode_since": orch.mode_since,
            "mode_causes": causes,
            "unreachable": notifier.unreachable_approvers(tenant),
            "unreached": notifier.unreached_incidents(tenant),
        }

    async def _ledger_refusal(
        self, s: Session, owner: str, incident_id: str | None, request: Request
    ) -> None:
        reason = access_refusal(s.principal, owner) or "forbidden"
        await self.rt.engine.record(
            owner,
            incident_id,
            kind="refused",
            actor=s.actor,
            decision="forbidden",
            reason=reason,
            data={"method": request.method, "path": request.url.path, "via": "dashboard"},
        )

    async def _owner_of(self, incident_id: str) -> str | None:
        for t in await self.rt.ledger.tenants():
            if await self.rt.engine.get(t, incident_id) is not None:
                return t
        return None

    # -- sign-in ----------------------------------------------------------------------------

    async def signin_form(self, request: Request) -> Response:
        _refuse_key_in_query(request)
        s = await self.session(request)
        if s is not None:
            return RedirectResponse(f"{BASE}/", status_code=303, headers=SECURITY_HEADERS)
        return self.page(request, "signin.html", error="")

    @property
    def refusals(self) -> RefusalGate:
        gate = self.rt.refusals
        return gate if gate is not None else RefusalGate.passthrough(self.rt.orch.engine.record)

    async def signin(self, request: Request) -> Response:
        _refuse_key_in_query(request)
        if not _same_origin(request):
            raise HTTPException(403, "cross-site sign-in refused")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
        if "form" not in request.headers.get("content-type", ""):
            raise HTTPException(415, "sign in with the form (application/x-www-form-urlencoded)")
        form = await request.form(max_files=0, max_fields=4)
        key = str(form.get("api_key") or "").strip()
        wanted = str(form.get("tenant") or "").strip()
        now = self.rt.clock.now()
        admin_key = self.rt.settings.admin_key
        session: Session | None = None
        error = KEY_NOT_ACCEPTED
        if admin_key and key and hmac.compare_digest(key.encode(), admin_key.encode()):
            if wanted and await self.rt.registry.exists(wanted):
                session = Session(wanted, True, now + SESSION_TTL_S)
            else:
                error = "With the admin key, name an existing tenant."
        elif key:
            tenant_id = await self.rt.registry.authenticate(key)
            tenant = await self.rt.registry.get(tenant_id) if tenant_id else None
            if tenant is not None:
                session = Session(
                    tenant.tenant_id, False, now + SESSION_TTL_S, tenant.key_rotated_at
                )
        if session is None:
            if error == KEY_NOT_ACCEPTED:  # not the admin naming a wrong tenant: nobody
                await ledger_key_refusal(self.refusals, request, key_problem(request, key))
            return self.page(request, "signin.html", 401, error=error)
        resp = RedirectResponse(f"{BASE}/", status_code=303, headers=SECURITY_HEADERS)
        resp.set_cookie(
            SESSION_COOKIE,
            self.codec.encode(session),
            max_age=SESSION_TTL_S,
            path=BASE,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return resp

    async def signout(self, request: Request) -> Response:
        if not _same_origin(request):
            raise HTTPException(403, "cross-site sign-out refused")
        resp = self._signin_redirect()
        resp.delete_cookie(
            SESSION_COOKIE,
            path=BASE,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return resp

    # -- pages ------------------------------------------------------------------------------

    async def incidents(self, request: Request, s: Session) -> Response:
        items = await self.rt.engine.incidents(s.tenant_id)
        open_items = [i for i in items if i.is_open]
        recent = [i for i in items if not i.is_open][:RECENT_LIMIT]
        targets = []
        for t in self.rt.config.targets:
            if t.tenant != s.tenant_id:
                continue
            hist = self.rt.orch.history.get((t.tenant, t.service)) or await self.rt.orch.history_of(
                t.tenant, t.service
            )  # another replica (or this one before a restart) may have observed it
            last = hist[-1] if hist else None
            blind = self.rt.orch.blind.get((t.tenant, t.service))
            if blind is None and last is not None and last.reachable and last.score is None:
                # Another replica polls it: its saved points say it answered without a score.
                if last.source != "alertmanager":
                    blind = {"since": None, "reason": "it answers but cannot measure itself"}
            targets.append({"service": t.service, "last": last, "blind": blind})
        return self.page(
            request,
            "incidents.html",
            open_items=open_items,
            recent=recent,
            targets=targets,
            authorized_by=_authorized_by,
            **self._context(s),
        )

    async def incident(
        self, request: Request, s: Session, ack_result: dict[str, Any] | None = None
    ) -> Response:
        incident_id = request.path_params["incident_id"]
        tenant = s.tenant_id
        state = await self.rt.engine.get(tenant, incident_id)
        if state is None:
            owner = await self._owner_of(incident_id)
            if owner is None:
                raise HTTPException(404, "no such incident")
            if not s.admin:
                await self._ledger_refusal(s, owner, incident_id, request)
                raise HTTPException(403, "this incident belongs to another tenant")
            tenant = owner
            state = await self.rt.engine.get(owner, incident_id)
            if state is None:  # pragma: no cover - raced away
                raise HTTPException(404, "no such incident")
        timeline = await self.rt.ledger.read(
            LedgerQuery(tenant_id=tenant, incident_id=incident_id, limit=TIMELINE_LIMIT)
        )
        policy = self.rt.orch.policy_for(tenant)
        hist = await self.rt.orch.history_of(tenant, state.service)  # every replica's points
        chart = health_chart(
            [Point(o.at, o.score) for o in hist],
            min_score_to_alert=policy.min_score_to_alert,
            recover_score=policy.recover_score,
            markers=[Marker(h.at, h.stage.value) for h in state.history],
            title=f"Health score of {state.service} over time",
        )
        authorizations = [h for h in state.history if h.stage is Stage.AUTHORIZED]
        return self.page(
            request,
            "incident.html",
            inc=state,
            tenant=tenant,
            timeline=timeline,
            authorizations=authorizations,
            chart=Markup(chart),  # noqa: S704 - built by charts.py, which escapes every text
            policy=policy,
            observations=len(hist),
            ack_result=ack_result,
            **ack_context(self.person, request, state),
            **self._context(s),
        )

    async def ledger(self, request: Request, s: Session) -> Response:
        head = await self.rt.ledger.head(s.tenant_id)
        count = await self.rt.ledger.count(s.tenant_id)
        result = await self.rt.ledger.verify(s.tenant_id)
        writable = self.rt.orch.components.get("ledger", True)
        cause = self._context(s)["mode_causes"].get("ledger", "")
        return self.page(
            request,
            "ledger.html",
            writable=writable,
            unwritable_cause=cause,
            head=head,
            count=count,
            result=result,
            **self._context(s),
        )

    async def simulator(self, request: Request, s: Session) -> Response:
        policy = self.rt.orch.policy_for(s.tenant_id)
        error = ""
        try:
            p95, err, size = simulate_params(request.query_params, percent=True)
        except HTTPException as exc:
            error = str(exc.detail)
            p95, err, size = 200.0, 0.0, 100
        result = simulate(policy, p95, err, size, self.rt.clock.now())
        return self.page(
            request,
            "simulator.html",
            400 if error else 200,
            policy=policy,
            result=result,
            error=error,
            p95=p95,
            error_pct=round(err * 100, 2),
            size=size,
            **self._context(s),
        )

    async def api_simulate(self, request: Request) -> Response:
        _refuse_key_in_query(request)
        s = await self.session(request)
        if s is None:
            raise HTTPException(401, "sign in to the dashboard first")
        p95, err, size = simulate_params(request.query_params, percent=False)
        policy = self.rt.orch.policy_for(s.tenant_id)
        body = simulate(policy, p95, err, size, self.rt.clock.now())
        return JSONResponse(body, headers=SECURITY_HEADERS)

    async def root(self, request: Request) -> Response:
        return RedirectResponse(f"{BASE}/", status_code=307)

    def routes(self) -> list[BaseRoute]:
        self.person, person_routes = person_pages(self, BASE)
        return [
            *person_routes,
            Route(BASE, self.root, methods=["GET"]),
            Route(f"{BASE}/", self.guarded(self.incidents), methods=["GET"], name="dashboard"),
            Route(f"{BASE}/signin", self.signin_form, methods=["GET"], name="dashboard_signin"),
            Route(f"{BASE}/signin", self.signin, methods=["POST"]),
            Route(f"{BASE}/signout", self.signout, methods=["POST"], name="dashboard_signout"),
            Route(
                f"{BASE}/incidents/{{incident_id}}",
                self.guarded(self.incident),
                methods=["GET"],
                name="dashboard_incident",
            ),
            Route(f"{BASE}/ledger", self.guarded(self.ledger), methods=["GET"]),
            Route(f"{BASE}/simulator", self.guarded(self.simulator), methods=["GET"]),
            Route(f"{BASE}/api/simulate", self.api_simulate, methods=["GET"]),
            *oncall_pages(self, BASE),
            *people_pages(self, BASE),
            Mount(
                f"{BASE}/static",
                app=StaticFiles(directory=str(STATIC_DIR)),
                name="dashboard_static",
            ),
        ]


def dashboard_routes(rt: Runtime) -> list[BaseRoute]:
    """Every dashboard route, for ``rt.extra_routes``."""
    return Dashboard(rt).routes()
