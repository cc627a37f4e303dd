"""``alertengine dlq list|replay``: dead-lettered recovery webhooks.

Replay never re-runs a webhook: it moves the incident WEBHOOK_FAILED -> VALIDATED (actor
``orchestrator``), so a named human must approve again. The orchestrator notices the
replayed incident at its next sweep (or start-up) and sends fresh links
(:meth:`~alertengine.orchestrator.pipeline.Pipeline.ask_unasked`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from alertengine.clock import SystemClock
from alertengine.engine import IncidentEngine, TransitionRefused
from alertengine.execute.executor import dlq_list, dlq_replay
from alertengine.ledger.tools import ENV_LEDGER_KEY, ledger_key_from_env, store_url_from_env
from alertengine.policy import load_policy
from alertengine.stores.factory import open_state_store, open_stores

app = typer.Typer(help="Dead-letter queue of failed recovery webhooks.", no_args_is_help=True)
UrlOpt = Annotated[str | None, typer.Option("--url", help="Store URL (ALERTENGINE_STORE_URL).")]


@app.command("list")
def list_(
    url: UrlOpt = None,
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Dead-lettered executions, oldest first."""

    async def go() -> list[dict[str, object]]:
        store = open_state_store(url or store_url_from_env())
        try:
            return await dlq_list(store, tenant)
        finally:
            await store.close()

    docs = asyncio.run(go())
    if as_json:
        typer.echo(json.dumps(docs, indent=2))
        return
    table = Table("id", "tenant", "incident", "service", "attempts", "last", "status")
    for d in docs:
        last = str(d.get("last_status") or d.get("last_error") or "")
        cells = [
            str(d.get(k, "")) for k in ("id", "tenant_id", "incident_id", "service", "attempts")
        ]
        table.add_row(*cells, last, str(d.get("status")))
    Console().print(table)


@app.command()
def replay(dlq_id: str, url: UrlOpt = None) -> None:
    """Send a dead-lettered incident back for a FRESH approval (never a direct re-run)."""
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
            return (
                f"{state.incident_id} is {state.stage}: a fresh approval is required. The "
                "orchestrator sends new approval links to the approvers within one loop "
                "interval (or as it starts, if it is not running)."
            )
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
