"""The dashboard's app in-process, for the page tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from alertengine.orchestrator.runtime import Runtime, create_app
from tests.dashboard.helpers import make_runtime


@pytest.fixture
async def env() -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """The runtime of ``helpers.make_runtime`` and a client of its app; drained after."""
    rt = await make_runtime()
    app = create_app(rt, run_loop=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://orch.test"
    ) as client:
        yield rt, client
    await rt.drain()
    await rt.http.aclose()
