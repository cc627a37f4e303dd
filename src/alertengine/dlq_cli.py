"""``alertengine dlq list|replay``: dead-lettered recovery webhooks.

Replay never re-runs a webhook: it moves the incident WEBHOOK_FAILED -> VALIDATED (actor
``orchestrator``), so a named human must approve again.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from alertengine.cli_common import (
    JsonOpt,
    LegacyUrlOpt,
    StoreUrlOpt,
    id_table,
    print_json,
    stdout_console,
    store_url_option,
)
from alertengine.clock import SystemClock
from alertengine.engine import IncidentEngine, TransitionRefused
from alertengine.execute.executor import dlq_list, dlq_replay
from alertengine.ledger.tools import ENV_LEDGER_KEY, ledger_key_from_env, store_url_from_env
from alertengine.policy import load_policy
from alertengine.stores.factory import open_state_store, open_stores

app = typer.Typer(help="Dead-letter queue of failed recovery webhooks.", no_args_is_help=True)


@app.command("list")
def list_(
    store_url: StoreUrlOpt = None,
    url: LegacyUrlOpt = None,
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Dead-lettered executions, oldest first (ids are printed whole, for `dlq replay`)."""
    url = store_url_option(store_url, url)

    async def go() -> list[dict[str, object]]:
        store = open_state_store(url or store_url_from_env())
        try:
            return await dlq_list(store, tenant)
        finally:
            await store.close()

    docs = asyncio.run(go())
    if as_json:
        print_json(docs)
        return
    rows = [
        [str(d.get(k, "")) for k in ("id", "tenant_id", "incident_id", "service", "attempts")]
        + [str(d.get("last_status") or d.get("last_error") or ""), str(d.get("status"))]
        for d in docs
    ]
    columns = ("id", "tenant", "incident", "service", "attempts", "last", "status")
    stdout_console().print(id_table(columns, rows, ids=("id", "incident")))


@app.command()
def replay(dlq_id: str, store_url: StoreUrlOpt = None, url: LegacyUrlOpt = None) -> None:
    """Send a dead-lettered incident back for a FRESH approval (never a direct re-run)."""
    url = store_url_option(store_url, url)
    key = ledger_key_from_env()
    err = Console(stderr=True)
    if key is None:
        err.print(f"[red]{ENV_LEDGER_KEY} is not set[/]: replay appends to the ledger.")
        raise typer.Exit(2)

    async def go() -> str:
        ledger, store = open_stores(url or store_url_from_env(), ledger_key=key)
        policy = load_policy()
        engine = IncidentEngine(ledger, SystemClock(), lambda _t: policy)
        try:
            state = await dlq_replay(engine, store, dlq_id)
            return f"{state.incident_id} is {state.stage}: a fresh approval is required"
        finally:
            await store.close()
            await ledger.close()

    try:
        typer.echo(asyncio.run(go()))
    except KeyError:
        err.print(f"[red]no dead-letter entry {dlq_id!r}[/]")
        raise typer.Exit(1) from None
    except TransitionRefused as exc:
        err.print(f"[red]refused[/]: {exc.reason}")
        raise typer.Exit(1) from None
