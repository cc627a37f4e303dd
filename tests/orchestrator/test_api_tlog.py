"""The ledger's transparency-log routes: the public key, a tenant's signed checkpoint and
proofs, each checked offline with the public key alone; tenant isolation on each."""

from __future__ import annotations

import httpx
import pytest

from alertengine.clock import VirtualClock
from alertengine.ledger import LedgerQuery
from alertengine.ledger.chain import Entry, EntryDraft
from alertengine.ledger.checkpoint import NoteSigner, NoteVerifier, open_checkpoint
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.tlog import (
    ConsistencyProof,
    InclusionProof,
    check_consistency,
    check_inclusion,
)
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.stores import MemoryStateStore
from tests.orchestrator.test_api import CONFIG, auth

SIGNER = NoteSigner.generate("alertengine")


@pytest.fixture
async def env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ALERTENGINE_CHECKPOINT_KEY", SIGNER.skey)
    clock = VirtualClock()
    ledger = MemoryLedgerStore(b"x" * 32)
    store = MemoryStateStore(clock)
    settings = Settings.from_env({"ALERT_SECRET": "s" * 40, "ALERTENGINE_ADMIN_KEY": "a" * 40})
    rt = await build_runtime(
        parse_config(CONFIG), ledger=ledger, store=store, settings=settings, clock=clock
    )
    await sync_tenants(rt)
    for i in range(12):
        await ledger.append(
            "acme", [EntryDraft("acme", "note", "test", 1_700_000_000.0 + i, reason=f"e{i}")]
        )
    app = create_app(rt, run_loop=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://orch.test"
    ) as client:
        yield rt, client
    await rt.http.aclose()


async def test_public_key_is_public_and_verifies_the_tenants_checkpoint(env):
    rt, client = env
    r = await client.get("/ledger/public-key")
    assert r.status_code == 200
    vkey = r.json()["public_key"]
    assert vkey == SIGNER.verifier.vkey and "PRIVATE" not in r.text
    r = await client.get("/ledger/checkpoint", headers=auth(rt, "acme"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    head = open_checkpoint(r.text, [NoteVerifier.from_vkey(vkey)], origin="alertengine/ledger/acme")
    assert head.size == await rt.ledger.count("acme")


async def test_inclusion_and_consistency_proofs_check_offline(env):
    rt, client = env
    v = [SIGNER.verifier]
    r = await client.get("/ledger/proof/inclusion?seq=5", headers=auth(rt, "acme"))
    assert r.status_code == 200, r.text
    body = r.json()
    head = check_inclusion(
        Entry.from_dict(body["entry"]),
        InclusionProof.from_dict(body["proof"]),
        body["checkpoint"],
        v,
    )
    assert head.size == await rt.ledger.count("acme")
    r = await client.get(
        "/ledger/proof/consistency?from_size=3&to_size=9", headers=auth(rt, "acme")
    )
    body = r.json()
    old, new = check_consistency(
        body["old_checkpoint"], body["checkpoint"], ConsistencyProof.from_dict(body["proof"]), v
    )
    assert (old.size, new.size) == (3, 9)


async def test_tree_routes_are_tenant_scoped_and_refusals_ledgered(env):
    rt, client = env
    for path in (
        "/ledger/checkpoint",
        "/ledger/proof/inclusion?seq=1",
        "/ledger/proof/consistency?from_size=1",
    ):
        assert (await client.get(path)).status_code == 401
        sep = "&" if "?" in path else "?"
        r = await client.get(f"{path}{sep}tenant=acme", headers=auth(rt, "globex"))
        assert r.status_code == 403
    refused = await rt.ledger.read(LedgerQuery(tenant_id="acme", kinds=frozenset({"refused"})))
    assert len(refused) == 3


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ledger/proof/inclusion", 400),
        ("/ledger/proof/inclusion?seq=abc", 400),
        ("/ledger/proof/inclusion?seq=0", 400),
        ("/ledger/proof/inclusion?seq=9999", 404),
        ("/ledger/proof/consistency", 400),
        ("/ledger/proof/consistency?from_size=5&to_size=4", 404),
        ("/ledger/proof/consistency?from_size=1&to_size=9999", 404),
    ],
)
async def test_bad_proof_requests_say_why(env, path, status):
    rt, client = env
    r = await client.get(path, headers=auth(rt, "acme"))
    assert r.status_code == status and r.json()["error"]
