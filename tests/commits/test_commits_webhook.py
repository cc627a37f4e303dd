from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette

from alertengine.commits import CommitLog
from alertengine.commits_api import BAD_SIGNATURE, NO_SIGNATURE, commits_routes
from alertengine.stores import MemoryStateStore
from tests.support.fakes import github
from tests.support.servers import serve

SECRET = b"hook-secret"


@dataclass
class Env:
    url: str
    log: CommitLog
    #: What ``on_refused`` was handed: (path, why).
    refused: list[tuple[str, str]]


@pytest.fixture
def env() -> Iterator[Env]:
    log = CommitLog(MemoryStateStore())
    refused: list[tuple[str, str]] = []

    async def secret_for(tenant: str, service: str) -> bytes | None:
        return SECRET if (tenant, service) == ("t1", "checkout") else None

    async def on_refused(path: str, why: str) -> None:
        refused.append((path, why))

    app = Starlette(routes=commits_routes(log, secret_for, on_refused=on_refused))
    with serve(app) as base:
        yield Env(
            url=f"{base}/commits/webhook?tenant=t1&service=checkout", log=log, refused=refused
        )


PAYLOAD = github.push_payload(
    [
        github.commit(
            "a" * 40, "Tune pool", modified=["db/pool.py"], timestamp="2024-06-02T12:00:00Z"
        )
    ]
)


async def test_signed_push_is_stored(env: Env) -> None:
    async with httpx.AsyncClient() as client:
        r = await github.deliver(client, env.url, PAYLOAD, secret=SECRET)
    assert r.status_code == 200 and r.json() == {"stored": 1}
    assert env.refused == []
    [c] = await env.log.recent("t1", "checkout")
    assert c.sha == "a" * 40 and c.files == ("db/pool.py",)


@pytest.mark.parametrize(
    "signature",
    [None, "sha256=" + "0" * 64, github.sign(b"wrong", json.dumps(PAYLOAD).encode())],
)
async def test_unsigned_or_forged_push_is_refused_and_stores_nothing(
    env: Env, signature: str | None
) -> None:
    async with httpx.AsyncClient() as client:
        if signature is None:
            r = await github.deliver(client, env.url, PAYLOAD, secret=None)
        else:
            r = await github.deliver(client, env.url, PAYLOAD, secret=SECRET, signature=signature)
    assert r.status_code == 401
    assert await env.log.recent("t1", "checkout") == []
    why = NO_SIGNATURE if signature is None else BAD_SIGNATURE
    assert env.refused == [("/commits/webhook", why)]  # handed over to be ledgered


async def test_bad_signature_does_not_change_existing_commits(env: Env) -> None:
    async with httpx.AsyncClient() as client:
        await github.deliver(client, env.url, PAYLOAD, secret=SECRET)
        other = github.push_payload([github.commit("b" * 40, "evil")])
        r = await github.deliver(client, env.url, other, secret=b"guess")
    assert r.status_code == 401
    assert [c.sha for c in await env.log.recent("t1", "checkout")] == ["a" * 40]


async def test_unknown_tenant_is_refused_like_a_bad_signature(env: Env) -> None:
    url = env.url.replace("tenant=t1", "tenant=t2")
    async with httpx.AsyncClient() as client:
        r = await github.deliver(client, url, PAYLOAD, secret=SECRET)
    assert r.status_code == 401
    assert env.refused == [("/commits/webhook", BAD_SIGNATURE)]  # never the claimed tenant


async def test_non_push_events_are_acknowledged_and_ignored(env: Env) -> None:
    async with httpx.AsyncClient() as client:
        r = await github.deliver(
            client, env.url, {"zen": "Keep it simple."}, secret=SECRET, event="ping"
        )
    assert r.status_code == 202
    assert await env.log.recent("t1", "checkout") == []


@pytest.mark.parametrize("body", [b"{not json", b'{"commits": 3}', b'{"commits": [{"id": 1}]}'])
async def test_malformed_signed_push_is_400(env: Env, body: bytes) -> None:
    async with httpx.AsyncClient() as client:
        r = await github.deliver(client, env.url, body, secret=SECRET)
    assert r.status_code == 400 and r.json()["error"]
    assert await env.log.recent("t1", "checkout") == []


async def test_form_encoded_push_is_accepted(env: Env) -> None:
    from urllib.parse import urlencode

    body = urlencode({"payload": json.dumps(PAYLOAD)}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": github.sign(SECRET, body),
    }
    async with httpx.AsyncClient() as client:
        r = await client.post(env.url, content=body, headers=headers)
    assert r.status_code == 200


async def test_missing_tenant_is_400(env: Env) -> None:
    async with httpx.AsyncClient() as client:
        r = await github.deliver(client, env.url.split("?")[0], PAYLOAD, secret=SECRET)
    assert r.status_code == 400
