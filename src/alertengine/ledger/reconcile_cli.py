"""``alertengine ledger reconcile``: balance the books (:mod:`alertengine.ledger.reconcile`).

Exit codes: 0 balanced, 1 mismatches (listed with seq numbers), 2 usage error, unknown
tenant, unreadable receipts file or store.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from alertengine.ledger.base import LedgerError, TreeStore
from alertengine.ledger.checkpoint import CheckpointError, NoteSigner, NoteVerifier
from alertengine.ledger.reconcile import (
    ReceiptRecord,
    Reconciliation,
    parse_receipts_file,
    reconcile,
)
from alertengine.ledger.tlog import ConsistencyProof, TransparencyLog
from alertengine.ledger.tools import ledger_key_from_env, store_url_from_env
from alertengine.stores.factory import open_ledger, sqlite_path


async def reconcile_store(
    url: str,
    tenant: str,
    receipts: list[ReceiptRecord],
    receiver_keys: list[NoteVerifier],
) -> Reconciliation | None:
    """The tenant's reconciliation, or None when the store has no such tenant."""
    store = open_ledger(url, key=ledger_key_from_env())
    try:
        if not isinstance(store, TreeStore):
            raise LedgerError("this store keeps no Merkle tree")
        if tenant not in await store.tenants():
            return None
        entries = [e async for e in store.scan(tenant)]
        # Proofs need the tree only; no signing key is involved in checking them.
        log = TransparencyLog(store, NoteSigner.generate("reconcile"))
        current = await log.tree_head(tenant)

        async def consistency(a: int, b: int) -> ConsistencyProof:
            return await log.consistency_proof(tenant, a, b)

        return await reconcile(
            tenant, entries, current, consistency, receipts=receipts, receiver_keys=receiver_keys
        )
    finally:
        await store.close()


def reconcile_command(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose books to balance.")],
    receipts_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--receipts",
            help="A receiver's own receipts (JSON list, JSON lines or signed notes); may repeat.",
        ),
    ] = None,
    receiver_key: Annotated[
        list[str] | None,
        typer.Option("--receiver-key", help="A receiver's verifier key; may repeat."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--store-url", "--url", help="Store URL (default: $ALERTENGINE_STORE_URL)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Double entry: every EXECUTED has its AUTHORIZED quorum and exactly one receipt, every
    receipt one execution, every witnessed checkpoint is a prefix of the tree. Exit 0
    balanced, 1 mismatches, 2 usage error or unknown tenant."""
    console, err = Console(), Console(stderr=True)
    store_url = url or store_url_from_env()
    if store_url.startswith("sqlite:") and not sqlite_path(store_url).exists():
        err.print(f"No ledger at {escape(str(sqlite_path(store_url)))}.")
        raise typer.Exit(2)
    records: list[ReceiptRecord] = []
    try:
        keys = [NoteVerifier.from_vkey(k) for k in receiver_key or []]
        for path in receipts_files or []:
            records += parse_receipts_file(path.read_text(encoding="utf-8"), str(path))
    except (OSError, ValueError) as exc:  # CheckpointError is a ValueError
        err.print(f"Cannot read the receipts or keys: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    try:
        result = asyncio.run(reconcile_store(store_url, tenant, records, keys))
    except (LedgerError, CheckpointError, ValueError) as exc:
        err.print(f"Cannot reconcile: {escape(str(exc))}")
        raise typer.Exit(2) from exc
    if result is None:
        err.print(f"Unknown tenant {escape(tenant)!r}: the ledger has no entry for it.")
        raise typer.Exit(2)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        console.print(
            f"{escape(tenant)}: tree size {result.tree_size}, {result.authorizations} "
            f"authorization(s), {result.executions} execution(s), {result.receipts} receipt(s)"
        )
        for m in result.mismatches:
            console.print(f"[red]MISMATCH[/] {escape(m.line())}")
        if result.balanced:
            console.print("[green]BALANCED[/]: every execution is authorized and received once.")
    if not result.balanced:
        raise typer.Exit(1)
