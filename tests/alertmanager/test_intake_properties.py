"""Any sequence of Alertmanager notifications through the real intake, pipeline and ledger
(in memory, virtual clock): an incident is open exactly while an alert it saw firing has not
resolved since, one at a time per service, and the ledger verifies and replays to the state."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertengine.alertmanager import firing, label_fingerprint
from alertengine.clock import VirtualClock
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.replay import replay
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore

CONFIG = {
    "orchestrator": {"base_url": "http://approve.test"},
    "tenants": [{"id": "acme", "approvers": [{"channel": "web", "address": "alice"}]}],
    "targets": [{"tenant": "acme", "service": "checkout"}],
}

# One notification names each alert once, firing (True) or resolved (False).
notifications = st.lists(
    st.lists(
        st.tuples(st.sampled_from("ABC"), st.booleans()),
        min_size=1,
        max_size=3,
        unique_by=lambda t: t[0],
    ),
    min_size=1,
    max_size=8,
)


def body(items: list[tuple[str, bool]]) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing" if any(on for _, on in items) else "resolved",
        "alerts": [
            {
                "status": "firing" if on else "resolved",
                "labels": {"alertname": name, "service": "checkout"},
            }
            for name, on in items
        ],
    }


async def run(sequence: list[list[tuple[str, bool]]]) -> None:
    clock = VirtualClock()
    ledger = MemoryLedgerStore(b"x" * 32)
    settings = Settings.from_env({"ALERT_SECRET": "s" * 40})
    rt = await build_runtime(
        parse_config(CONFIG),
        ledger=ledger,
        store=MemoryStateStore(clock),
        settings=settings,
        clock=clock,
    )
    await sync_tenants(rt)
    headers = {"Authorization": f"Bearer {rt.new_keys['acme']}"}
    transport = httpx.ASGITransport(app=create_app(rt, run_loop=False))
    opened = 0
    tracked: dict[str, bool] = {}  # the model: the open incident's alerts, firing or not
    async with httpx.AsyncClient(transport=transport, base_url="http://orch") as client:
        for items in sequence:
            clock.set(clock.now() + 30)
            r = await client.post("/intake/alertmanager", json=body(items), headers=headers)
            assert r.status_code == 202, r.text
            if not tracked and any(on for _, on in items):
                opened += 1
            for name, on in items:
                if on or name in tracked:  # a resolved alert it never saw is not its business
                    tracked[name] = on
            if not any(tracked.values()):
                tracked = {}  # every alert it saw firing has resolved: closed
            states = await rt.engine.incidents("acme")
            assert len(states) == opened
            open_ = [s for s in states if s.is_open]
            if tracked:
                (s,) = open_
                assert {a["alertname"] for a in firing(s.alerts, clock.now())} == {
                    n for n, on in tracked.items() if on
                }
                assert set(s.alerts) == {label_fingerprint(_labels(n)) for n in tracked}
            else:
                assert open_ == []
                assert all(s.history[-1].actor == "policy" for s in states)
    assert (await ledger.verify("acme")).ok
    assert await replay(ledger, "acme") == {s.incident_id: s for s in states}
    await rt.http.aclose()


def _labels(name: str) -> dict[str, str]:
    return {"alertname": name, "service": "checkout"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notifications)
def test_open_exactly_while_an_alert_it_saw_firing_has_not_resolved(
    sequence: list[list[tuple[str, bool]]],
) -> None:
    asyncio.run(run(sequence))
