"""``alertengine tenant add|list|rotate-key|approvers`` (store: ``--store-url`` or
ALERTENGINE_STORE_URL)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

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
from alertengine.ledger.tools import store_url_from_env
from alertengine.orchestrator.config import phone_like_identity
from alertengine.stores.base import StateStore
from alertengine.stores.factory import open_state_store
from alertengine.tenants import TenantError, TenantRegistry

app = typer.Typer(help="Tenants: API keys (shown once) and approvers.", no_args_is_help=True)
T = TypeVar("T")


def _run(url: str | None, fn: Callable[[TenantRegistry], Awaitable[T]]) -> T:
    async def go() -> T:
        store: StateStore = open_state_store(url or store_url_from_env())
        try:
            return await fn(TenantRegistry(store))
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except TenantError as exc:
        Console(stderr=True).print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


@app.command()
def add(
    tenant_id: str,
    name: Annotated[str, typer.Option("--name")] = "",
    store_url: StoreUrlOpt = None,
    url: LegacyUrlOpt = None,
) -> None:
    """Create a tenant and print its API key (stored only as a hash: copy it now)."""
    url = store_url_option(store_url, url)
    key = _run(url, lambda r: r.add(tenant_id, name or tenant_id))
    typer.echo(key)


@app.command("rotate-key")
def rotate_key(tenant_id: str, store_url: StoreUrlOpt = None, url: LegacyUrlOpt = None) -> None:
    """Issue a new API key; the old one stops working at once."""
    url = store_url_option(store_url, url)
    typer.echo(_run(url, lambda r: r.rotate_key(tenant_id)))


@app.command("list")
def list_(
    store_url: StoreUrlOpt = None, url: LegacyUrlOpt = None, as_json: JsonOpt = False
) -> None:
    """Tenants and their approvers (never keys)."""
    tenants = _run(store_url_option(store_url, url), lambda r: r.list())
    if as_json:
        print_json(
            [
                {"tenant_id": t.tenant_id, "name": t.name, "approvers": t.identities()}
                for t in tenants
            ]
        )
        return
    rows = [(t.tenant_id, t.name, ", ".join(t.identities()) or "-") for t in tenants]
    table = id_table(("tenant", "name", "approvers"), rows, ids=("tenant", "approvers"))
    stdout_console().print(table)


@app.command()
def approvers(
    tenant_id: str,
    channel: Annotated[str | None, typer.Argument(help="telegram, whatsapp, web, …")] = None,
    ids: Annotated[list[str] | None, typer.Argument(help="ids for the channel")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove the channel's list")] = False,
    store_url: StoreUrlOpt = None,
    url: LegacyUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show approvers, or set a channel's list: `approvers acme telegram 123456 654321`."""
    url = store_url_option(store_url, url)
    phones = [i for i in ids or [] if phone_like_identity(channel or "", i)]
    if phones:
        # An approver id is written into the ledger; a phone number must never be.
        Console(stderr=True).print(
            f"[red]{phones[0]!r} looks like a phone number[/]: approver ids are written into the "
            "ledger, so use a name or a handle (the number belongs in the config's `address`)."
        )
        raise typer.Exit(2)

    async def go(r: TenantRegistry) -> list[str]:
        if channel is not None and (ids or clear):
            t = await r.set_approvers(tenant_id, channel, [] if clear else list(ids or []))
        else:
            found = await r.get(tenant_id)
            if found is None:
                raise TenantError(f"no such tenant: {tenant_id!r}")
            t = found
        return t.identities()

    identities = _run(url, go)
    if as_json:
        print_json({"tenant_id": tenant_id, "approvers": identities})
        return
    for identity in identities:
        typer.echo(identity)
