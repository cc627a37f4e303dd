"""Acceptance: the approval endpoints on a real uvicorn server on 127.0.0.1.

The system (engine, store, authorizer, executor) lives in the server's event loop; the
recovery webhook is a second real server that verifies signatures and counts executions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from alertengine.incidents import Stage
from alertengine.orchestrator.approval_routes import approval_routes
from tests.authorize.harness import (
    ALICE,
    SECRET,
    Receiver,
    System,
    add_tenant,
    backend_params,
    build_system,
    entries,
    validated_incident,
)
from tests.support.asgi_server import LoopThread


@dataclass
class Live:
    loop: LoopThread
    sys: System
    url: str
    receiver: Receiver

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.call(coro)

    def stage(self, incident_id: str) -> Stage:
        async def get() -> Stage:
            await self.sys.engine.refresh("acme")
            st = await self.sys.engine.get("acme", incident_id)
            assert st is not None
            return st.stage

        return self.run(get())

    def wait_stage(self, incident_id: str, stage: Stage, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.stage(incident_id) is not stage:
            assert time.monotonic() < deadline, f"still {self.stage(incident_id)}"
            time.sleep(0.02)


def start_live(backend: str, tmp_path: Path, redis_url: str | None = None) -> Live:
    loop = LoopThread()
    receiver = Receiver()
    hook_url = loop.serve(receiver.app()) + "/recover"
    sys = loop.call(build_system(backend, tmp_path, redis_url=redis_url, webhook_url=hook_url))
    loop.call(add_tenant(sys))
    loop.call(add_tenant(sys, "globex", {"web": ["gina@globex.example"]}))
    app = Starlette(routes=approval_routes(sys.authorizer))
    url = loop.serve(app)
    sys.authorizer.base_url = url
    return Live(loop, sys, url, receiver)


@pytest.fixture(params=backend_params())
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Live]:
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    lv = start_live(request.param, tmp_path, redis_url)
    yield lv
    lv.run(lv.sys.close())
    lv.loop.stop()


@pytest.fixture
def live_memory(tmp_path: Path) -> Iterator[Live]:
    lv = start_live("memory", tmp_path)
    yield lv
    lv.run(lv.sys.close())
    lv.loop.stop()


async def test_thousand_concurrent_confirms_authorize_and_execute_once(live: Live) -> None:
    i = await live.loop.acall(validated_incident(live.sys))
    link = await live.loop.acall(live.sys.authorizer.issue("acme", i, ALICE))
    # Warm the store's connection pool, as a running deployment's would be.
    await live.loop.acall(_warm(live.sys))
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=live.url, limits=limits, timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post("/action/recover/confirm", json={"token": link.token})
                for _ in range(1000)
            )
        )
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 1 and codes.count(409) == 999
    assert {r.json()["problem"] for r in responses if r.status_code == 409} <= {
        "used",
        "not_awaiting",
    }
    # The run was woken during the burst; on a loaded 2-core box it can finish well after
    # the last of the 1,000 answers (seen once at > 10 s), so wait as long as for the runs.
    live.wait_stage(i, Stage.EXECUTED, timeout=30.0)
    # A stray second call could only come from an execution the confirms started: once
    # every one of them has returned, nothing more can reach the receiver.
    await live.loop.acall(_executions_returned(live.sys))
    assert len(live.receiver.requests) == 1 and len(live.receiver.executed) == 1
    assert live.receiver.bad_signatures == 0
    log = await live.loop.acall(entries(live.sys, "acme"))
    authorized = [e for e in log if e.kind == "transition" and e.stage == "AUTHORIZED"]
    executed = [e for e in log if e.kind == "transition" and e.stage == "EXECUTED"]
    assert len(authorized) == 1 and len(executed) == 1
    assert len([e for e in log if e.kind == "refused"]) == 999
    assert (await live.loop.acall(live.sys.ledger.verify("acme"))).ok
    body = next(iter(live.receiver.executed.values()))
    assert body["approvers"] == [ALICE] and body["incident_id"] == i


async def _executions_returned(sys: System, timeout_s: float = 30) -> None:
    """Wait (in the system's loop) for every executor run the authorizer woke to return."""
    assert sys.tasks, "the authorization never woke the executor"
    _, pending = await asyncio.wait(list(sys.tasks), timeout=timeout_s)
    assert not pending, f"{len(pending)} execution(s) still running after {timeout_s} s"


async def _warm(sys: System) -> None:
    await asyncio.gather(*(sys.tenants.get("acme") for _ in range(64)))


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_every_bad_token_kind_is_refused_ledgered_and_never_executes(live_memory: Live) -> None:
    lv = live_memory
    i = lv.run(validated_incident(lv.sys))
    good = lv.run(lv.sys.authorizer.issue("acme", i, ALICE))
    payload = jwt.decode(good.token, options={"verify_signature": False})
    now = int(time.time())
    cases: dict[str, tuple[str, int]] = {
        "forged": (jwt.encode(payload, b"z" * 40, algorithm="HS256"), 401),
        "alg_none": (f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}.", 401),
        "hs512": (jwt.encode(payload, SECRET + b"x" * 30, algorithm="HS512"), 401),
        "rs256": (f"{_b64({'alg': 'RS256'})}.{_b64(payload)}.{_b64('sig')}", 401),
        "expired": (
            jwt.encode({**payload, "iat": now - 600, "exp": now - 300}, SECRET, "HS256"),
            410,
        ),
        "wrong_tenant": (jwt.encode({**payload, "tenant": "globex"}, SECRET, "HS256"), 403),
        "unknown_approver": (
            jwt.encode({**payload, "approver": "engineer:web:eve@x.example"}, SECRET, "HS256"),
            403,
        ),
        "malformed": ("not-a-token", 400),
    }
    with httpx.Client(base_url=lv.url) as client:
        for name, (token, status) in cases.items():
            r = client.post("/action/recover/confirm", json={"token": token})
            assert r.status_code == status, (name, r.text)
            html = client.post("/action/recover/confirm", data={"token": token})
            assert html.status_code == status and "Nothing was executed" in html.text
        assert lv.stage(i) is Stage.VALIDATED
        assert client.post("/action/recover/confirm", data={"token": good.token}).status_code == 200
        reused = client.post("/action/recover/confirm", json={"token": good.token})
        assert reused.status_code == 409 and reused.json()["problem"] == "used"
        empty = client.post("/action/recover/confirm", data={})
        assert empty.status_code == 400
    lv.wait_stage(i, Stage.EXECUTED)
    assert len(lv.receiver.executed) == 1
    refused = lv.run(entries(lv.sys, "acme", "refused")) + lv.run(
        entries(lv.sys, "globex", "refused")
    )
    problems = [e.data["problem"] for e in refused]
    for kind in ("forged", "algorithm", "expired", "wrong_tenant", "not_approver", "used"):
        assert kind in problems, kind
    system = lv.run(entries(lv.sys, "_system", "refused"))
    assert [e.data["problem"] for e in system].count("malformed") == 3
    for e in refused + system:
        for token, _ in cases.values():
            assert len(token) < 20 or token not in e.to_json()


def test_get_preview_fifty_times_changes_nothing(live_memory: Live) -> None:
    lv = live_memory
    i = lv.run(
        validated_incident(
            lv.sys, diagnosis={"summary": "migration locked a table", "confidence": 0.8}
        )
    )
    link = lv.run(lv.sys.authorizer.issue("acme", i, ALICE))
    before = lv.run(lv.sys.ledger.count("acme"))
    with httpx.Client(base_url=lv.url) as client:
        for n in range(50):
            if n % 2:
                r = client.get("/action/recover", params={"token": link.token})
                assert r.status_code == 200 and "Confirm recovery" in r.text
                assert "migration locked a table" in r.text and "30.0%" in r.text
                assert r.headers["cache-control"] == "no-store"
                assert r.headers["referrer-policy"] == "no-referrer"
            else:
                r = client.get(
                    "/action/recover",
                    params={"token": link.token},
                    headers={"Accept": "application/json"},
                )
                assert r.json()["stage"] == "VALIDATED" and r.json()["ok"] is True
        head = client.head("/action/recover", params={"token": link.token})
        assert head.status_code == 200
        bad = client.get("/action/recover", params={"token": "junk"})
        assert bad.status_code == 400 and "This link is not valid" in bad.text
    assert lv.run(lv.sys.ledger.count("acme")) == before
    assert lv.run(lv.sys.store.claimed("token:" + link.jti)) is None
    assert lv.stage(i) is Stage.VALIDATED
    assert lv.receiver.requests == []


def test_page_escapes_incident_data(live_memory: Live) -> None:
    lv = live_memory
    i = lv.run(validated_incident(lv.sys, diagnosis={"summary": "<script>alert(1)</script>"}))
    link = lv.run(lv.sys.authorizer.issue("acme", i, ALICE))
    r = httpx.get(lv.url + "/action/recover", params={"token": link.token})
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;" in r.text
