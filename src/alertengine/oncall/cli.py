"""``alertengine oncall who|set|show|remove`` and ``alertengine silence add|list|expire|delete``.

Reads need only the store (``--store-url`` or ALERTENGINE_STORE_URL); changes are ledgered
too, so they need ALERTENGINE_LEDGER_KEY. The actor of a change is ``operator:<--by>``
(default: the login name).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
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
from alertengine.engine import IncidentEngine
from alertengine.ledger.tools import ENV_LEDGER_KEY, ledger_key_from_env, store_url_from_env
from alertengine.oncall.registry import OnCallRegistry, Record, engine_record
from alertengine.oncall.schedule import ScheduleError, schedule_from_dict, schedule_to_dict
from alertengine.oncall.silences import SilenceError, parse_matcher
from alertengine.policy import load_policy
from alertengine.stores.factory import open_state_store, open_stores

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

app = typer.Typer(help="On-call schedules: who is asked first.", no_args_is_help=True)
silence_app = typer.Typer(help="Silences: nobody is paged while one matches.", no_args_is_help=True)
T = TypeVar("T")

TenantOpt = Annotated[str, typer.Option("--tenant", help="The tenant id.")]
ByOpt = Annotated[
    str, typer.Option("--by", help="Who makes the change (ledgered as operator:<name>).")
]
_err = Console(stderr=True)


def _actor(by: str) -> str:
    name = (by or getpass.getuser()).strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}", name):
        _err.print(f"[red]--by {name!r}: use a plain name (letters, digits, . _ @ -)[/]")
        raise typer.Exit(2)
    return f"operator:{name}"


def _run(
    url: str | None, fn: Callable[[OnCallRegistry], Awaitable[T]], *, write: bool = False
) -> T:
    async def go() -> T:
        store_url = url or store_url_from_env()
        if not write:
            store = open_state_store(store_url)

            async def nothing(*_: Any) -> None:
                raise RuntimeError("read-only")

            try:
                return await fn(OnCallRegistry(store, nothing))
            finally:
                await store.close()
        key = ledger_key_from_env()
        if key is None:
            _err.print(f"[red]{ENV_LEDGER_KEY} is not set[/]: every change is ledgered.")
            raise typer.Exit(2)
        ledger, store = open_stores(store_url, ledger_key=key)
        policy = load_policy()
        engine = IncidentEngine(ledger, SystemClock(), lambda _t: policy)
        record: Record = engine_record(engine)
        try:
            return await fn(OnCallRegistry(store, record))
        finally:
            await store.close()
            await ledger.close()

    try:
        return asyncio.run(go())
    except (ScheduleError, SilenceError) as exc:
        _err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    except KeyError as exc:
        _err.print(f"[red]not found: {exc.args[0]}[/]")
        raise typer.Exit(1) from None


def parse_time(text: str) -> datetime:
    """ISO 8601; without an offset, UTC. ``now`` is now."""
    if text.strip().lower() == "now":
        return datetime.now(timezone.utc)
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r}: use ISO 8601, e.g. 2027-06-12T09:00+02:00") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def parse_duration(text: str) -> timedelta:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if m is None:
        raise typer.BadParameter(f"{text!r}: use e.g. 90s, 30m, 2h, 1d")
    n, unit = float(m.group(1)), m.group(2)
    return timedelta(seconds=n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


# --- oncall ---------------------------------------------------------------------------------


@app.command()
def who(
    tenant: TenantOpt,
    at: Annotated[str, typer.Option("--at", help="ISO 8601 (default: now).")] = "now",
    store_url: StoreUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Who is on call (primary first), per schedule and layer."""
    when = parse_time(at)

    async def go(reg: OnCallRegistry) -> dict[str, Any]:
        schedules = await reg.schedules(tenant)
        layers = [
            {"schedule": s.name, "layer": lv.name, "who": s.layer_on_call(lv, when)}
            for s in schedules
            for lv in s.layers
        ]
        return {
            "tenant": tenant,
            "at": when.isoformat(),
            "on_call": await reg.who(tenant, when),
            "layers": layers,
        }

    result = _run(store_url, go)
    if as_json:
        print_json(result)
        return
    if not result["layers"]:
        typer.echo(f"tenant {tenant} has no on-call schedule: the escalation chain as configured")
        return
    rows = [[x["schedule"], x["layer"], x["who"] or "(nobody yet)"] for x in result["layers"]]
    typer.echo(f"{tenant} at {result['at']}")
    stdout_console().print(id_table(("schedule", "layer", "on call"), rows))
    typer.echo("order: " + ", ".join(result["on_call"]))


@app.command("set")
def set_(
    tenant: TenantOpt,
    file: Annotated[Path, typer.Argument(help="A schedule as TOML or JSON (docs/oncall.md).")],
    store_url: StoreUrlOpt = None,
    by: ByOpt = "",
) -> None:
    """Add or replace a schedule (ledgered, kind=schedule)."""
    text = file.read_text()
    try:
        data = json.loads(text) if file.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        _err.print(f"[red]{file}: cannot read it: {exc}[/]")
        raise typer.Exit(2) from None
    actor = _actor(by)
    changed = _run(
        store_url,
        lambda r: r.set_schedule(tenant, schedule_from_dict(data), actor=actor, source="cli"),
        write=True,
    )
    typer.echo("schedule saved" if changed else "no change")


@app.command()
def show(tenant: TenantOpt, store_url: StoreUrlOpt = None) -> None:
    """Every schedule of the tenant, as JSON."""
    schedules = _run(store_url, lambda r: r.schedules(tenant))
    print_json([schedule_to_dict(s) for s in schedules])


@app.command()
def override(
    tenant: TenantOpt,
    schedule: Annotated[str, typer.Argument(help="The schedule's name.")],
    who: Annotated[str, typer.Option("--who", help="Who is on call instead.")],
    start: Annotated[
        str, typer.Option("--start", help="ISO 8601; no offset: the schedule's zone.")
    ],
    end: Annotated[str, typer.Option("--end", help="ISO 8601; no offset: the schedule's zone.")],
    covers: Annotated[
        str, typer.Option("--covers", help="Whom they cover (default: the layer).")
    ] = "",
    layer: Annotated[str, typer.Option("--layer", help="Which layer (default: the first).")] = "",
    store_url: StoreUrlOpt = None,
    by: ByOpt = "",
) -> None:
    """ "Bob covers Alice Saturday 09:00-21:00": add an override (ledgered)."""
    actor = _actor(by)
    o = {"who": who, "covers": covers, "layer": layer, "start": start, "end": end}
    _run(store_url, lambda r: r.add_override(tenant, schedule, o, actor=actor), write=True)
    typer.echo(f"override added to {schedule}")


@app.command()
def remove(tenant: TenantOpt, name: str, store_url: StoreUrlOpt = None, by: ByOpt = "") -> None:
    """Remove a schedule (ledgered)."""
    actor = _actor(by)
    if not _run(store_url, lambda r: r.remove_schedule(tenant, name, actor=actor), write=True):
        _err.print(f"[red]no schedule {name!r}[/]")
        raise typer.Exit(1)
    typer.echo(f"schedule {name} removed")


# --- silence --------------------------------------------------------------------------------


@silence_app.command("add")
def silence_add(
    tenant: TenantOpt,
    matcher: Annotated[
        list[str], typer.Option("--matcher", "-m", help="name=value, !=, =~ or !~ (repeat).")
    ],
    comment: Annotated[str, typer.Option("--comment", help="Why (required).")],
    duration: Annotated[str, typer.Option("--duration", help="e.g. 2h (or --end).")] = "",
    start: Annotated[str, typer.Option("--start", help="ISO 8601 (default: now).")] = "now",
    end: Annotated[str, typer.Option("--end", help="ISO 8601.")] = "",
    store_url: StoreUrlOpt = None,
    by: ByOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a silence: matching incidents are detected and ledgered, nobody is paged."""
    actor = _actor(by)
    try:
        matchers = [parse_matcher(m) for m in matcher]
    except SilenceError as exc:
        _err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    starts = parse_time(start)
    if bool(duration) == bool(end):
        _err.print("[red]give exactly one of --duration and --end[/]")
        raise typer.Exit(2)
    ends = starts + parse_duration(duration) if duration else parse_time(end)
    s = _run(
        store_url,
        lambda r: r.add_silence(
            tenant,
            matchers,
            starts_at=starts.timestamp(),
            ends_at=ends.timestamp(),
            created_by=actor.removeprefix("operator:"),
            comment=comment,
            actor=actor,
        ),
        write=True,
    )
    if as_json:
        print_json(s.to_dict())
    else:
        typer.echo(s.id)


@silence_app.command("list")
def silence_list(
    tenant: TenantOpt,
    store_url: StoreUrlOpt = None,
    expired: Annotated[bool, typer.Option("--expired", help="Include ended ones.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The tenant's silences (active and pending; --expired for all)."""
    now = SystemClock().now()
    items = [
        s
        for s in _run(store_url, lambda r: r.silences(tenant))
        if expired or s.state(now) != "expired"
    ]
    if as_json:
        print_json([s.to_dict(now) for s in items])
        return

    def t(ts: float) -> str:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    rows = [
        [
            s.id,
            s.state(now),
            " ".join(str(m) for m in s.matchers),
            t(s.starts_at),
            t(s.ends_at),
            s.created_by,
            s.comment,
        ]
        for s in items
    ]
    cols = ("id", "state", "matchers", "starts (UTC)", "ends (UTC)", "by", "comment")
    stdout_console().print(id_table(cols, rows, ids=("id",)))


@silence_app.command("expire")
def silence_expire(
    tenant: TenantOpt, silence_id: str, store_url: StoreUrlOpt = None, by: ByOpt = ""
) -> None:
    """End a silence now (ledgered); matching open incidents resume at the next tick."""
    actor = _actor(by)
    _run(store_url, lambda r: r.expire_silence(tenant, silence_id, actor=actor), write=True)
    typer.echo(f"silence {silence_id} expired")


@silence_app.command("delete")
def silence_delete(
    tenant: TenantOpt, silence_id: str, store_url: StoreUrlOpt = None, by: ByOpt = ""
) -> None:
    """Remove a silence's record (ledgered; the ledger keeps its history)."""
    actor = _actor(by)
    _run(store_url, lambda r: r.delete_silence(tenant, silence_id, actor=actor), write=True)
    typer.echo(f"silence {silence_id} deleted")
