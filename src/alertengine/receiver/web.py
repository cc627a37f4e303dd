"""The receiver in a web app: a FastAPI dependency, a Starlette endpoint, an httpx fetcher.

FastAPI::

    receiver = Receiver(...)

    @app.post("/recover")
    async def recover(call: Answer = Depends(fastapi_dependency(receiver))) -> dict:
        if call.run:
            restart_workers(call.payload["service"])  # once per Idempotency-Key
        return call.body  # the signed receipt: the orchestrator ledgers it

Refusals never reach the handler: the dependency raises ``HTTPException(status,
detail={"error", "reason", …})``. Starlette or any ASGI app: :func:`starlette_endpoint`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from alertengine.ledger.tlog import ConsistencyProof
from alertengine.receiver.core import Answer, Receiver

#: The orchestrator's tenant API route for consistency proofs (tenant from the API key).
CONSISTENCY_ROUTE = "/ledger/proof/consistency"

Action = Callable[[dict[str, Any]], "Awaitable[None] | None"]


def fastapi_dependency(receiver: Receiver) -> Callable[[Request], Awaitable[Answer]]:
    """A dependency that verifies the call and yields its :class:`Answer` (run or not)."""
    from fastapi import HTTPException

    async def verified_call(request: Request) -> Answer:
        answer = await receiver.receive(request.headers, await request.body())
        if not answer.ok:
            raise HTTPException(answer.status, detail=answer.body)
        return answer

    return verified_call


def starlette_endpoint(
    receiver: Receiver, action: Action
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint: verify, run ``action(payload)`` once per key, answer the receipt."""

    async def endpoint(request: Request) -> Response:
        answer = await receiver.receive(request.headers, await request.body())
        if answer.run:
            got = action(answer.payload)
            if inspect.isawaitable(got):
                await got
        return JSONResponse(answer.body, status_code=answer.status)

    return endpoint


class HttpConsistencyFetcher:
    """Fetch consistency proofs from the orchestrator: ``GET {base_url}/ledger/proof/consistency
    ?from_size=A&to_size=B`` with the tenant's API key (the answer's ``proof`` is
    :meth:`ConsistencyProof.to_dict`; its checkpoints are not trusted: the receiver checks the
    proof against the checkpoint that came signed with the call)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 5.0,
        route: str = CONSISTENCY_ROUTE,
    ) -> None:
        self.url = base_url.rstrip("/") + route
        self.headers: Mapping[str, str] = {"Authorization": f"Bearer {api_key}"}
        self.client = client
        self.timeout_s = timeout_s

    async def __call__(self, tenant_id: str, from_size: int, to_size: int) -> ConsistencyProof:
        params = {"from_size": str(from_size), "to_size": str(to_size)}
        if self.client is not None:
            r = await self.client.get(
                self.url, params=params, headers=self.headers, timeout=self.timeout_s
            )
        else:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                r = await client.get(self.url, params=params, headers=self.headers)
        r.raise_for_status()
        body = r.json()
        proof = ConsistencyProof.from_dict(body["proof"] if "proof" in body else body)
        if proof.tenant_id and proof.tenant_id != tenant_id:
            raise ValueError(f"the proof is for tenant {proof.tenant_id!r}, not {tenant_id!r}")
        return proof
