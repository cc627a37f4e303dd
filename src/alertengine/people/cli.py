"""``alertengine person add | list | show | remove | channel add | channel remove``.

Every change is ledgered in the tenant's chain (kind ``people``) with the operator as actor
(``--actor``, default ``operator:<os user>``), so the ledger needs its key
(``ALERTENGINE_LEDGER_KEY``). Channels are ledgered as their kind and a keyed marker, never
the address.
"""

from __future__ import annotations

import asyncio
import getpass
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from alertengine.cli_common import (
    JsonOpt,
    StoreUrlOpt,
    id_table,
    print_json,
    stdout_console,
)
from alertengine.clock import SystemClock
from alertengine.ledger.base import LedgerStore
from alertengine.ledger.chain import EntryDraft
from alertengine.ledger.tools import ENV_LEDGER_KEY, ledger_key_from_env, store_url_from_env
from alertengine.people.model import Channel, Person, PersonError
from alertengine.people.registry import PersonRegistry, ledger_recorder
from alertengine.people.signin import Record as SignInRecord
from alertengine.people.signin import SignIns
from alertengine.stores.base import StateStore
from alertengine.stores.factory import open_stores
from alertengine.tenants import TenantRegistry

app = typer.Typer(
    help="People: who approves, and every channel that reaches them.", no_args_is_help=True
)
channel_app = typer.Typer(help="Add or remove one of a person's channels.", no_args_is_help=True)
app.add_typer(channel_app, name="channel")
T = TypeVar("T")

_ACTOR = re.compile(r"^operator:[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")

TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant the person belongs to.")]
ActorOpt = Annotated[
    str | None,
    typer.Option(
        "--actor",
        help="Who makes the change, for the ledger (default: operator:<your OS user>).",
        show_default=False,
    ),
]


def _actor(actor: str | None) -> str:
    value = actor or f"operator:{getpass.getuser()}"
    if not _ACTOR.match(value):
        raise PersonError(f"invalid --actor {value!r}: use operator:<name>")
    return value


def _run(
    url: str | None,
    tenant_id: str,
    fn: Callable[[PersonRegistry], Awaitable[T]],
    *,
    writes: bool,
) -> T:
    err = Console(stderr=True)
    key = ledger_key_from_env()
    if writes and key is None:
        err.print(f"[red]{ENV_LEDGER_KEY} is not set[/]: registry changes are ledgered.")
        raise typer.Exit(2)

    async def go() -> T:
        ledger, store = open_stores(url or store_url_from_env(), ledger_key=key)
        try:
            if not await TenantRegistry(store).exists(tenant_id):
                raise PersonError(f"no such tenant: {tenant_id!r}")
            return await fn(_registry(store, ledger))
        finally:
            await store.close()
            await ledger.close()

    try:
        return asyncio.run(go())
    except PersonError as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None


def _signin_recorder(ledger: LedgerStore) -> SignInRecord:
    clock = SystemClock()

    async def record(
        tenant_id: str, kind: str, actor: str, decision: str, reason: str, data: Mapping[str, Any]
    ) -> None:
        draft = EntryDraft(
            tenant_id=tenant_id, kind=kind, actor=actor, timestamp=clock.now(),
            decision=decision, reason=reason, data=dict(data),
        )  # fmt: skip
        await ledger.append(tenant_id, [draft])

    return record


async def _no_link(tenant_id: str, person: Person, url: str, user_code: str) -> list[str]:
    return []  # the CLI registry never starts a sign-in; it only ends tokens on removal


def _registry(store: StateStore, ledger: LedgerStore) -> PersonRegistry:
    """The registry, with the removal hook a server has too: a removed person's tokens end."""
    registry = PersonRegistry(store, ledger_recorder(ledger))
    signins = SignIns(store, SystemClock(), registry, _signin_recorder(ledger), _no_link)
    registry.removal_hooks.append(signins.person_removed)
    return registry


def _channel(spec: str) -> Channel:
    kind, sep, address = spec.partition("=")
    if not sep:
        raise PersonError(f"--channel {spec!r}: write kind=address (e.g. telegram=123456)")
    return Channel(kind.strip(), address)


def _masked(c: Channel) -> str:
    """For tables: enough to recognise an address, not to copy a phone number."""
    if c.kind == "whatsapp":
        return f"whatsapp:…{c.address[-2:]}"
    return f"{c.kind}:{c.address}"


def _out(person: Person, as_json: bool) -> None:
    if as_json:
        print_json(person.to_doc())
        return
    typer.echo(f"{person.actor} ({person.name})")
    for c in person.channels:
        typer.echo(f"  {c.kind}: {c.address}" + (f" (user id {c.user_id})" if c.user_id else ""))
    if person.github_logins:
        typer.echo(f"  github: {', '.join(person.github_logins)}")


@app.command()
def add(
    person_id: Annotated[str, typer.Argument(help="a slug, e.g. alice")],
    tenant: TenantOpt,
    name: Annotated[str, typer.Option("--name", help="display name")] = "",
    channels: Annotated[
        list[str] | None,
        typer.Option("--channel", help="kind=address, repeatable (telegram=123456, …)"),
    ] = None,
    github: Annotated[
        list[str] | None, typer.Option("--github", help="GitHub login, repeatable")
    ] = None,
    actor: ActorOpt = None,
    store_url: StoreUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a person (ledgered)."""

    async def go(r: PersonRegistry) -> Person:
        person = Person(
            person_id,
            name,
            tuple(_channel(s) for s in channels or ()),
            tuple(github or ()),
        )
        return await r.add(tenant, person, actor=_actor(actor))

    _out(_run(store_url, tenant, go, writes=True), as_json)


@app.command("list")
def list_(tenant: TenantOpt, store_url: StoreUrlOpt = None, as_json: JsonOpt = False) -> None:
    """The tenant's people, in escalation order."""
    people = _run(store_url, tenant, lambda r: r.list(tenant), writes=False)
    if as_json:
        print_json([p.to_doc() for p in people])
        return
    rows = [
        (
            p.actor,
            p.name,
            ", ".join(_masked(c) for c in p.channels) or "-",
            ", ".join(p.github_logins) or "-",
        )
        for p in people
    ]
    table = id_table(("person", "name", "channels", "github"), rows, ids=("person",))
    stdout_console().print(table)


@app.command()
def show(
    person_id: str, tenant: TenantOpt, store_url: StoreUrlOpt = None, as_json: JsonOpt = False
) -> None:
    """One person and their channels."""

    async def go(r: PersonRegistry) -> Person:
        p = await r.get(tenant, person_id)
        if p is None:
            raise PersonError(f"no person {person_id!r} in tenant {tenant!r}")
        return p

    _out(_run(store_url, tenant, go, writes=False), as_json)


@app.command()
def remove(
    person_id: str,
    tenant: TenantOpt,
    actor: ActorOpt = None,
    store_url: StoreUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a person (ledgered); their approval links stop working."""
    gone = _run(
        store_url, tenant, lambda r: r.remove(tenant, person_id, actor=_actor(actor)), writes=True
    )
    if as_json:
        print_json({"removed": gone.actor})
    else:
        typer.echo(f"removed {gone.actor}")


@channel_app.command("add")
def channel_add(
    person_id: str,
    kind: Annotated[str, typer.Argument(help="telegram, whatsapp, slack, web, webhook")],
    address: str,
    tenant: TenantOpt,
    user_id: Annotated[
        str, typer.Option("--user-id", help="the id the channel reports, if not the address")
    ] = "",
    actor: ActorOpt = None,
    store_url: StoreUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give a person another channel (ledgered as its kind and a marker)."""

    async def go(r: PersonRegistry) -> Person:
        return await r.add_channel(
            tenant, person_id, Channel(kind, address, user_id), actor=_actor(actor)
        )

    _out(_run(store_url, tenant, go, writes=True), as_json)


@channel_app.command("remove")
def channel_remove(
    person_id: str,
    kind: str,
    address: Annotated[str | None, typer.Argument(help="needed if they have several")] = None,
    *,
    tenant: TenantOpt,
    actor: ActorOpt = None,
    store_url: StoreUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove one of a person's channels (ledgered)."""

    async def go(r: PersonRegistry) -> Person:
        return await r.remove_channel(tenant, person_id, kind, address, actor=_actor(actor))

    _out(_run(store_url, tenant, go, writes=True), as_json)
