"""``GET /metrics``: the orchestrator's own counters for Prometheus (admin key only).

Today: the refusal budget's counters (``alertengine_refusals_total`` by tenant, route,
reason and outcome), so an operator sees an attack on the webhooks while it happens. Built by
``prometheus_client`` (text 0.0.4 or OpenMetrics from the scrape's ``Accept``). The labels
name tenants and routes, so like ``/__alertengine/status`` it needs the admin key
(Prometheus: ``authorization: {credentials: …}`` in the scrape config); a tenant's key is
refused (403) and ledgered as status does; a missing or wrong key is 401, ledgered in
``_system`` through the refusal budget. Counts are this process's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from alertengine.tenants import Principal

METRICS = "/metrics"


def exposition(collectors: Sequence[Collector], accept: str) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    for c in collectors:
        registry.register(c)
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def metrics_route(
    collectors: Sequence[Collector],
    principal: Callable[[Request], Awaitable[Principal]],
    refused: Callable[[Principal, Request], Awaitable[None]],
    unauthenticated: Callable[[Request], Awaitable[HTTPException]],
) -> Route:
    """``principal(request)`` says who asks; ``refused`` ledgers a tenant key's attempt,
    ``unauthenticated`` a missing or wrong key's (and gives the 401)."""

    async def metrics(request: Request) -> Response:
        p = await principal(request)
        if not p.authenticated:
            raise await unauthenticated(request)
        if not p.admin:
            await refused(p, request)
            raise HTTPException(403, "the metrics endpoint needs the admin key")
        body, content_type = exposition(collectors, request.headers.get("accept", ""))
        return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})

    return Route(METRICS, metrics, methods=["GET"])
