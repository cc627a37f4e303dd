"""``ledger reconcile``: double entry between our ledger and the receivers' receipts.

Each mismatch is made for real (entries appended to a real store, receipts signed by a
receiver key) and must be found with its seq; a balanced book must say so. The rollback of
issue 13 (the store replaced with an older, internally consistent copy) passes ``verify``
and is caught here from the receiver's receipts, on SQLite and on Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.execute.executor import idempotency_key
from alertengine.ledger.base import LedgerStore, TreeStore
from alertengine.ledger.chain import EntryDraft
from alertengine.ledger.checkpoint import NoteSigner
from alertengine.ledger.memory import MemoryLedgerStore
from alertengine.ledger.reconcile import (
    ReceiptRecord,
    Reconciliation,
    ledgered_receipts,
    parse_receipts_file,
    reconcile,
)
from alertengine.ledger.tlog import ConsistencyProof, TransparencyLog
from alertengine.receiver.receipt import Receipt, body_sha256, sign_receipt
from tests.ledger.conftest import KEY, Backend
from tests.ledger.test_tlog import persistent, snapshotter  # noqa: F401  (fixture)

LOG = NoteSigner.generate("alertengine")
ME = NoteSigner.generate("acme-recovery")
ALICE = "engineer:web:alice@example.com"
BOB = "engineer:telegram:123456"
runner = CliRunner()
ENV = {"ALERTENGINE_LEDGER_KEY": KEY.decode()}


def d(kind: str, actor: str, inc: str, stage: str | None = None, **data: object) -> EntryDraft:
    return EntryDraft(
        tenant_id="acme", kind=kind, actor=actor, timestamp=time.time(), incident_id=inc,
        stage=stage, decision=kind, policy_version="1.0.0", data=data,
    )  # fmt: skip


def receipt_for(key: str, head_size: int, head_root: bytes, *, signer: NoteSigner = ME) -> str:
    from alertengine.ledger.checkpoint import TreeHead
    from alertengine.ledger.tlog import origin_for

    head = TreeHead(origin_for("acme"), head_size, head_root)
    r = Receipt(key, body_sha256(key.encode()), head, "accepted", "", int(time.time()))
    return sign_receipt(r, signer)


async def executed(
    store: LedgerStore,
    inc: str,
    *,
    required: int = 1,
    approvers: Sequence[str] = (ALICE,),
    authorize: bool = True,
    ledger_receipt: bool = True,
) -> tuple[str, str, int]:
    """Append one incident's life up to EXECUTED; (key, receipt note, EXECUTED seq)."""
    assert isinstance(store, TreeStore)
    await store.append(
        "acme",
        [
            d("transition", "policy", inc, "DETECTED", approvals_required=required),
            d("transition", "policy", inc, "PROPOSED", action="restart"),
            d("transition", "policy", inc, "VALIDATED"),
            *[d("approval", a, inc, "VALIDATED") for a in approvers],
        ],
    )
    auth_seq = 0
    if authorize:
        (auth,) = await store.append(
            "acme", [d("transition", approvers[-1], inc, "AUTHORIZED", action="restart")]
        )
        auth_seq = auth.seq
    key = idempotency_key("acme", inc, auth_seq)
    head = await TransparencyLog(store, LOG).tree_head("acme")
    note = receipt_for(key, head.size, head.root)
    drafts = [d("execution", "orchestrator", inc, "AUTHORIZED", idempotency_key=key)]
    if ledger_receipt:
        drafts.append(
            d("receipt", "receiver", inc, receipt=note, receiver_key=ME.verifier.vkey,
              idempotency_key=key)
        )  # fmt: skip
    drafts.append(d("transition", "orchestrator", inc, "EXECUTED", idempotency_key=key))
    got = await store.append("acme", drafts)
    return key, note, got[-1].seq


async def books(store: LedgerStore, receipts: Sequence[ReceiptRecord] = ()) -> Reconciliation:
    assert isinstance(store, TreeStore)
    log = TransparencyLog(store, LOG)
    current = await log.tree_head("acme")

    async def consistency(a: int, b: int) -> ConsistencyProof:
        return await log.consistency_proof("acme", a, b)

    entries = [e async for e in store.scan("acme")]
    return await reconcile("acme", entries, current, consistency, receipts=receipts)


def kinds(r: Reconciliation) -> list[tuple[str, int | None]]:
    return [(m.kind, m.seq) for m in r.mismatches]


async def test_balanced_books_say_so() -> None:
    store = MemoryLedgerStore(KEY)
    await executed(store, "inc-1")
    await executed(store, "inc-2", required=2, approvers=(ALICE, BOB))
    r = await books(store)
    assert r.balanced, r.mismatches
    assert (r.authorizations, r.executions, r.receipts) == (2, 2, 2)


async def test_a_missing_receipt_is_found_at_its_executed_seq() -> None:
    store = MemoryLedgerStore(KEY)
    await executed(store, "inc-1")
    key, _, seq = await executed(store, "inc-2", ledger_receipt=False)
    r = await books(store)
    assert kinds(r) == [("missing_receipt", seq)]
    assert r.mismatches[0].idempotency_key == key and r.mismatches[0].incident_id == "inc-2"


async def test_a_duplicated_receipt_means_the_receiver_ran_twice() -> None:
    store = MemoryLedgerStore(KEY)
    key, note, seq = await executed(store, "inc-1")
    head = await TransparencyLog(store, LOG).tree_head("acme")  # type: ignore[arg-type]
    second = receipt_for(key, head.size, head.root)  # another accepted receipt, same key
    again = [ReceiptRecord(note, "receipts.json", index=0)]  # the same receipt: not a dup
    assert (await books(store, again)).balanced
    r = await books(store, [*again, ReceiptRecord(second, "receipts.json", index=1)])
    assert kinds(r) == [("duplicate_receipt", seq)]
    assert "receipts.json #1" in r.mismatches[0].detail


async def test_an_execution_without_quorum_or_authorization_is_found() -> None:
    store = MemoryLedgerStore(KEY)
    await executed(store, "inc-1", required=2, approvers=(ALICE, BOB))
    _, _, short = await executed(store, "inc-2", required=2, approvers=(ALICE,))
    _, _, none = await executed(store, "inc-3", authorize=False)
    _, _, same = await executed(store, "inc-4", required=2, approvers=(ALICE, ALICE))
    r = await books(store)
    assert kinds(r) == [
        ("execution_without_quorum", short),
        ("execution_without_authorization", none),
        ("execution_without_quorum", same),  # one approver twice is one approver
    ]
    assert "1 of 2 distinct approvers" in r.mismatches[0].detail


async def test_a_receipt_for_an_unknown_execution_is_found() -> None:
    store = MemoryLedgerStore(KEY)
    await executed(store, "inc-1")
    head = await TransparencyLog(store, LOG).tree_head("acme")  # type: ignore[arg-type]
    stranger = receipt_for("ae-never-executed", head.size, head.root)
    r = await books(store, [ReceiptRecord(stranger, "receipts.json", index=0)])
    assert [(m.kind, m.source) for m in r.mismatches] == [
        ("receipt_without_execution", "receipts.json #0")
    ]


async def test_a_receipt_signed_by_another_key_is_invalid() -> None:
    store = MemoryLedgerStore(KEY)
    key, _, _ = await executed(store, "inc-1")
    head = await TransparencyLog(store, LOG).tree_head("acme")  # type: ignore[arg-type]
    forged = receipt_for(key, head.size, head.root, signer=NoteSigner.generate("acme-recovery"))
    r = await books(store, [ReceiptRecord(forged, "receipts.json", index=0)])
    assert [m.kind for m in r.mismatches] == ["receipt_invalid"]


async def test_a_fork_is_found_from_a_receipt() -> None:
    honest = MemoryLedgerStore(KEY)
    key, note, _ = await executed(honest, "inc-1")
    forked = MemoryLedgerStore(KEY)  # the same life, rewritten: same keys, other hashes
    await forked.append("acme", [d("transition", "policy", "inc-0", "DETECTED")])
    await executed(forked, "inc-1")
    r = await books(forked, [ReceiptRecord(note, "receipts.json", index=0)])
    found = {m.kind for m in r.mismatches}
    assert "receipt_checkpoint_inconsistent" in found


def test_receipts_file_formats_all_read(tmp_path: Path) -> None:
    note = receipt_for("ae-1", 3, b"\x01" * 32)
    as_list = parse_receipts_file(json.dumps([note]), "f")
    as_objects = parse_receipts_file(
        json.dumps([{"receipt": note, "receiver_key": ME.verifier.vkey}]), "f"
    )
    as_lines = parse_receipts_file(json.dumps({"receipt": note}) + "\n", "f")
    as_notes = parse_receipts_file(note + "\n" + note, "f")
    assert [r.note for r in as_list + as_objects + as_lines] == [note] * 3
    assert [r.note for r in as_notes] == [note, note]
    assert as_objects[0].receiver_key == ME.verifier.vkey


# --- the CLI, and the rollback on both persistent backends --------------------------------


def _url(b: Backend) -> str:
    return f"sqlite:///{b.path}" if b.name == "sqlite" else str(b.url)


def test_rollback_is_caught_by_reconcile_on_both_backends(
    persistent: Backend,  # noqa: F811
    tmp_path: Path,
) -> None:
    async def setup() -> tuple[str, list[str]]:
        store = persistent.open()
        await executed(store, "inc-1")
        restore = await snapshotter(persistent)()
        _, note2, _ = await executed(store, "inc-2")
        _, note3, _ = await executed(store, "inc-3")
        receipts = [r.note for r in ledgered_receipts([e async for e in store.scan("acme")])]
        await store.close()
        await restore()  # the older, internally consistent copy replaces the store
        return note2, receipts

    _, receipts = asyncio.run(setup())
    url = _url(persistent)
    env = {**ENV, "ALERTENGINE_STORE_URL": url}
    verify = runner.invoke(app, ["ledger", "verify", "--tenant", "acme"], env=env)
    assert verify.exit_code == 0, verify.output  # the hash chain alone cannot tell
    balanced = runner.invoke(app, ["ledger", "reconcile", "--tenant", "acme"], env=env)
    assert balanced.exit_code == 0 and "BALANCED" in balanced.output  # the store's own view
    path = tmp_path / "receipts.json"
    path.write_text(json.dumps(receipts))
    res = runner.invoke(
        app, ["ledger", "reconcile", "--tenant", "acme", "--receipts", str(path), "--json"],
        env=env,
    )  # fmt: skip
    assert res.exit_code == 1, res.output
    out = json.loads(res.output)
    found = [m["kind"] for m in out["mismatches"]]
    assert found.count("receipt_without_execution") == 2  # inc-2 and inc-3 were received
    assert "receipt_checkpoint_ahead" in found
    ahead = next(m for m in out["mismatches"] if m["kind"] == "receipt_checkpoint_ahead")
    assert "rolled back" in ahead["detail"] and ahead["source"].startswith(str(path))


def test_reconcile_exit_codes_and_text(tmp_path: Path) -> None:
    from alertengine.ledger.sqlite import SqliteLedgerStore

    db = tmp_path / "ae.db"

    async def setup() -> int:
        store = SqliteLedgerStore(db, key=KEY)
        await executed(store, "inc-1")
        _, _, seq = await executed(store, "inc-2", ledger_receipt=False)
        await store.close()
        return seq

    seq = asyncio.run(setup())
    env = {**ENV, "ALERTENGINE_STORE_URL": f"sqlite:///{db}"}
    res = runner.invoke(app, ["ledger", "reconcile", "--tenant", "acme"], env=env)
    assert res.exit_code == 1 and f"missing_receipt (seq {seq})" in res.output
    unknown = runner.invoke(app, ["ledger", "reconcile", "--tenant", "nobody"], env=env)
    assert unknown.exit_code == 2 and "Unknown tenant" in unknown.output
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    res = runner.invoke(
        app, ["ledger", "reconcile", "--tenant", "acme", "--receipts", str(bad)], env=env
    )
    assert res.exit_code == 2 and "not a receipt" in res.output
    missing = runner.invoke(
        app,
        ["ledger", "reconcile", "--tenant", "acme", "--store-url", f"sqlite:///{tmp_path}/x.db"],
    )
    assert missing.exit_code == 2


async def test_the_real_pipeline_with_a_quorum_of_two_balances() -> None:
    """Engine, authorizer (two distinct approvers), executor and a real receiver app: the
    books the real components write balance; a second approval by the same person would
    not have authorized, so nothing here is hand-written."""
    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Route

    from alertengine.execute.receipts import ReceiptBook
    from alertengine.policy import Policy
    from alertengine.receiver import MemoryWitnessStore, Receiver, starlette_endpoint
    from tests.authorize.harness import (
        WEBHOOK_SECRET,
        add_tenant,
        build_system,
        validated_incident,
    )

    ran: list[str] = []
    rec = Receiver(
        secret=WEBHOOK_SECRET, log_keys=[LOG.verifier], signer=ME, store=MemoryWitnessStore()
    )
    app = Starlette(
        routes=[
            Route(
                "/recover",
                starlette_endpoint(rec, lambda p: ran.append(str(p["incident_id"]))),
                methods=["POST"],
            )
        ]
    )
    sys = await build_system(
        policy=Policy(approvals_required=2),
        webhook_url="http://receiver.test/recover",
        execute_on_authorize=False,
    )
    assert sys.executor is not None and isinstance(sys.ledger, TreeStore)
    sys.executor.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    sys.executor.receipts = ReceiptBook(sys.engine, TransparencyLog(sys.ledger, LOG).checkpoint)
    await add_tenant(sys)
    i = await validated_incident(sys)
    for who in (ALICE, BOB):
        link = await sys.authorizer.issue("acme", i, who)
        await sys.authorizer.confirm(link.token)
    out = await sys.executor.run("acme", i)
    assert out.result == "executed" and ran == [i]
    r = await books(sys.ledger)
    assert r.balanced, r.mismatches
    assert (r.authorizations, r.executions, r.receipts) == (1, 1, 1)
    await sys.executor.http.aclose()
    await sys.close()
