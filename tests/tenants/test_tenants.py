"""Tenants: hashed keys, rotation, approvers, request helpers, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.stores import MemoryStateStore
from alertengine.tenants import (
    KEY_INDEX,
    TENANTS,
    TenantError,
    TenantRegistry,
    access_refusal,
    admin_key_from_env,
    authenticate_request,
    require_tenant,
)

ROOT = Path(__file__).resolve().parents[2]


async def test_keys_are_random_hashed_and_rotate() -> None:
    store = MemoryStateStore()
    reg = TenantRegistry(store)
    key = await reg.add("acme", "Acme")
    other = await reg.add("globex", "Globex")
    assert key.startswith("ae_") and len(key) > 40 and key != other
    assert await reg.authenticate(key) == "acme" and await reg.authenticate(other) == "globex"
    for bad in (None, "", "ae_nope", key + "x", key[:-1], "x" * 500):
        assert await reg.authenticate(bad) is None
    dump = repr(await store.list(TENANTS)) + repr(await store.list(KEY_INDEX))
    assert key not in dump and other not in dump
    new = await reg.rotate_key("acme")
    assert await reg.authenticate(key) is None and await reg.authenticate(new) == "acme"
    with pytest.raises(TenantError):
        await reg.add("acme", "again")
    for bad_id in ("", "Acme", "a b", "_system", "x" * 70):
        with pytest.raises(TenantError):
            await reg.add(bad_id, "bad")
    with pytest.raises(TenantError):
        await reg.rotate_key("nobody")
    assert [t.tenant_id for t in await reg.list()] == ["acme", "globex"]


async def test_approvers_per_channel() -> None:
    reg = TenantRegistry(MemoryStateStore())
    await reg.add("acme", "Acme")
    await reg.set_approvers("acme", "telegram", ["123456", "123456", " 777 "])
    t = await reg.set_approvers("acme", "web", ["alice@example.com"])
    assert t.approvers == {"telegram": ("123456", "777"), "web": ("alice@example.com",)}
    assert await reg.is_approver("acme", "engineer:telegram:123456")
    assert not await reg.is_approver("acme", "engineer:web:123456")  # channel matters
    assert not await reg.is_approver("acme", "engineer:telegram:1234567")
    assert not await reg.is_approver("globex", "engineer:telegram:123456")
    assert not await reg.is_approver("acme", "telegram:123456")
    t = await reg.set_approvers("acme", "telegram", [])
    assert "telegram" not in t.approvers
    for bad in (["a:b"], [""]):
        with pytest.raises(TenantError):
            await reg.set_approvers("acme", "web", bad)


async def test_request_helpers_over_http() -> None:
    from tests.support.servers import serve

    store = MemoryStateStore()
    reg = TenantRegistry(store)
    acme = await reg.add("acme", "Acme")
    globex = await reg.add("globex", "Globex")

    async def resource(request: Request) -> JSONResponse:
        p = await authenticate_request(request, reg, "admin-key-0123456789")
        owner = request.path_params["tenant"]
        why = access_refusal(p, owner)
        try:
            require_tenant(p, owner)
        except HTTPException as exc:
            return JSONResponse({"refused": why}, status_code=exc.status_code)
        return JSONResponse({"tenant": p.tenant_id, "admin": p.admin})

    app = Starlette(routes=[Route("/t/{tenant}", resource)])
    with serve(app) as url:
        async with httpx.AsyncClient(base_url=url) as c:
            ok = await c.get("/t/acme", headers={"Authorization": f"Bearer {acme}"})
            assert ok.json() == {"tenant": "acme", "admin": False}
            assert (await c.get("/t/acme", headers={"X-API-Key": acme})).status_code == 200
            other = await c.get("/t/acme", headers={"X-API-Key": globex})
            assert other.status_code == 403 and "globex" in other.json()["refused"]
            assert (await c.get("/t/acme")).status_code == 401
            assert (await c.get("/t/acme", headers={"X-API-Key": "ae_wrong"})).status_code == 401
            admin = await c.get("/t/globex", headers={"X-API-Key": "admin-key-0123456789"})
            assert admin.json() == {"tenant": None, "admin": True}
    assert admin_key_from_env({"ALERTENGINE_ADMIN_KEY": " k "}) == "k"
    assert admin_key_from_env({}) is None


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALERTENGINE_STORE_URL": url}
    return subprocess.run(
        [str(Path(sys.executable).parent / "alertengine"), *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_tenant_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ae.db'}"
    added = cli("tenant", "add", "acme", "--name", "Acme", url=url)
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith("ae_")
    assert cli("tenant", "add", "acme", url=url).returncode == 2
    set_ = cli("tenant", "approvers", "acme", "telegram", "123456", url=url)
    assert set_.stdout.split() == ["engineer:telegram:123456"]
    listed = cli("tenant", "list", url=url)
    assert "acme" in listed.stdout and key not in listed.stdout
    rotated = cli("tenant", "rotate-key", "acme", url=url).stdout.strip()
    assert rotated.startswith("ae_") and rotated != key
    empty = cli("dlq", "list", "--json", url=url)
    assert empty.returncode == 0 and empty.stdout.strip() == "[]"
