"""The checkpoint rides on signed notification webhooks too, without touching the HMAC;
concurrent replays run once; receipts read back exactly what was signed (hypothesis)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alertengine.execute.signing import verify
from alertengine.ledger.checkpoint import NoteSigner, TreeHead, open_checkpoint
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.tlog import TransparencyLog
from alertengine.notify.render import RenderedMessage
from alertengine.notify.webhook import SignedWebhookChannel
from alertengine.receiver import (
    CHECKPOINT_HEADER,
    MemoryWitnessStore,
    Receiver,
    SqliteWitnessStore,
    open_receipt,
)
from alertengine.receiver.receipt import Receipt, parse_receipt_text, sign_receipt
from tests.ledger.conftest import KEY, draft
from tests.receiver.test_receiver import ME, SECRET, call
from tests.support.servers import ServerThread

LOG = NoteSigner.generate("alertengine")


@pytest.fixture
def inbox() -> Iterator[tuple[list[tuple[dict[str, str], bytes]], str]]:
    got: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: Request) -> JSONResponse:
        got.append((dict(request.headers), await request.body()))
        return JSONResponse({"ok": True})

    server = ServerThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])]))
    server.start()
    yield got, server.base_url + "/hook"
    server.stop()


async def test_a_signed_notification_webhook_carries_the_checkpoint(
    inbox: tuple[list[tuple[dict[str, str], bytes]], str],
) -> None:
    got, url = inbox
    store = MemoryLedgerStore(KEY)
    for i in range(5):
        await store.append("acme", [draft("acme", i)])
    log = TransparencyLog(store, LOG)
    secret = b"n" * 40
    async with httpx.AsyncClient() as client:
        channel = SignedWebhookChannel(url, secret, client, checkpoint=log.checkpoint)
        msg = RenderedMessage("acme", "inc-1", "incident", "title", "text", "<b>html</b>")
        assert (await channel.send("oncall", msg)).ok
    ((headers, body),) = got
    assert verify(secret, headers, body)  # the HMAC scheme is unchanged
    note = base64.b64decode(headers[CHECKPOINT_HEADER.lower()]).decode()
    assert open_checkpoint(note, [LOG.verifier]) == await log.tree_head("acme")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_concurrent_replays_of_one_call_run_once(kind: str, tmp_path: Path) -> None:
    """Found a bug: the memory store answered a repeat as if it were the first call."""
    store = MemoryLedgerStore(KEY)
    await store.append("acme", [draft("acme", 0)])
    log = TransparencyLog(store, LOG)
    rec = Receiver(
        secret=SECRET, log_keys=[LOG.verifier], signer=ME,
        store=MemoryWitnessStore() if kind == "memory" else SqliteWitnessStore(tmp_path / "w.db"),
    )  # fmt: skip
    headers, body = call(await log.checkpoint("acme"))
    answers = await asyncio.gather(*(rec.receive(headers, body) for _ in range(20)))
    assert sum(a.run for a in answers) == 1
    assert len({a.body["receipt"] for a in answers}) == 1
    await rec.store.close()


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(
    key=text.filter(lambda s: s.strip() != ""),
    size=st.integers(0, 2**40),
    root=st.binary(min_size=32, max_size=32),
    reason=text,
    refused=st.booleans(),
)
def test_a_receipt_reads_back_what_was_signed(
    key: str, size: int, root: bytes, reason: str, refused: bool
) -> None:
    r = Receipt(
        key, "ab" * 32, TreeHead("alertengine/ledger/acme", size, root),
        "refused" if refused else "accepted", reason, 1_700_000_000,
    )  # fmt: skip
    back = open_receipt(sign_receipt(r, ME), [ME.verifier])
    assert back.checkpoint == r.checkpoint and back.verdict == r.verdict
    assert back.key == " ".join(key.split()) or not key.isprintable()
    assert parse_receipt_text(r.text()) == back
    assert json.dumps(back.to_dict())  # serialisable for the ledger
