"""The API's checkpoints, proofs and public key use the key the outgoing calls are signed
with: the one next to the store the runtime was given (``serve --store-url``, the demo),
whatever ``ALERTENGINE_STORE_URL`` says, and no ``var/`` is made in the working directory."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from alertengine.ledger.checkpoint import NoteVerifier, open_checkpoint
from alertengine.ledger.keys import load_signer
from alertengine.orchestrator.config import parse_config
from alertengine.orchestrator.runtime import build_runtime, create_app, sync_tenants
from alertengine.orchestrator.settings import Settings
from alertengine.receiver.core import read_checkpoint_header
from alertengine.stores.factory import open_stores
from tests.orchestrator.test_api import CONFIG, auth


async def test_the_api_signs_with_the_key_next_to_the_runtimes_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ALERTENGINE_STORE_URL", "ALERTENGINE_CHECKPOINT_KEY",
                 "ALERTENGINE_CHECKPOINT_KEY_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    db = tmp_path / "state" / "ae.db"
    db.parent.mkdir()
    ledger, store = open_stores(f"sqlite:///{db}", ledger_key=b"k" * 32)
    rt = await build_runtime(
        parse_config(CONFIG),
        ledger=ledger,
        store=store,
        settings=Settings.from_env({"ALERT_SECRET": "s" * 40}),
        environ={},
    )
    await sync_tenants(rt)
    await rt.engine.record("acme", None, kind="note", actor="policy", reason="one entry")
    try:
        transport = httpx.ASGITransport(app=create_app(rt, run_loop=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://orch.test") as c:
            served = (await c.get("/ledger/public-key")).json()["public_key"]
            api_note = (await c.get("/ledger/checkpoint", headers=auth(rt, "acme"))).text
        beside_store = load_signer({}, state_dir=db.parent, create=False)
        assert served == beside_store.verifier.vkey
        # The checkpoint an outgoing call carries verifies with the served key too.
        assert rt.executor.receipts.checkpoint is not None
        headers = {"X-AlertEngine-Checkpoint": base64.b64encode(
            (await rt.executor.receipts.checkpoint("acme")).encode()).decode()}  # fmt: skip
        outgoing = read_checkpoint_header(headers)
        assert outgoing
        key = [NoteVerifier.from_vkey(served)]
        assert open_checkpoint(outgoing, key) == open_checkpoint(api_note, key)
        assert not (cwd / "var").exists()
    finally:
        await rt.http.aclose()
        await ledger.close()
        await store.close()
