"""401s for a missing or wrong API key: answered as before, and ledgered through the gate.

A key that matches no tenant names nobody, so the entry goes to the ``_system`` ledger as
``actor="anonymous"`` through the refusal budget (docs/ledger.md "Refusals under attack"):
a scanner's flood is a few entries and one summary, never one entry per request. The entry
says only which of two constant reasons it was; the presented key (or any part of it) is
never written anywhere.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.routing import Route

from alertengine.refusals.gate import SYSTEM_TENANT, RefusalGate
from alertengine.tenants import presented_key

#: The two reason categories (bounded: the budget keys on them).
NO_KEY = "no API key"
WRONG_KEY = "wrong API key"


def key_problem(conn: HTTPConnection, key: str | None = None) -> str:
    """Which of the two it was: ``key`` is the one presented (a form's), else the headers'."""
    return WRONG_KEY if (key if key is not None else presented_key(conn)) else NO_KEY


def route_of(conn: HTTPConnection) -> str:
    """The matched route's template (``/incidents/{incident_id}``), so made-up ids cannot
    make a budget key each; the raw path outside a route."""
    route = conn.scope.get("route")
    return route.path if isinstance(route, Route) else conn.url.path[:200]


async def ledger_key_refusal(
    gate: RefusalGate, conn: HTTPConnection, why: str, *, what: str = "API key"
) -> None:
    """The ``_system`` entry of one request refused for ``why`` (:data:`NO_KEY` or
    :data:`WRONG_KEY`), through ``gate``."""
    route = route_of(conn)
    method = conn.scope.get("method", "GET")
    await gate.record(
        why,
        SYSTEM_TENANT,
        None,
        route=route,
        kind="refused",
        actor="anonymous",
        decision="refused",
        reason=f"{method} {route}: {why}",
        data={"method": method, "path": route, "why": why, "credential": what},
    )


async def unauthenticated(gate: RefusalGate, conn: HTTPConnection) -> HTTPException:
    """Ledger a request with no valid key; the 401 to raise (unchanged: reason and
    ``WWW-Authenticate``)."""
    await ledger_key_refusal(gate, conn, key_problem(conn))
    return HTTPException(401, "a valid API key is required", {"WWW-Authenticate": "Bearer"})
