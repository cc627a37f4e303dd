"""``alertengine ledger verify|export``: check and hand over the audit trail.

The store comes from ``--store-url`` or ``ALERTENGINE_STORE_URL`` (default
``sqlite:///var/alertengine.db``); verify needs ``ALERTENGINE_LEDGER_KEY``.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from alertengine.cli_common import (
    JsonOpt,
    LegacyUrlOpt,
    StoreUrlOpt,
    id_table,
    print_json,
    stdout_console,
    store_url_option,
)
from alertengine.ledger.base import LedgerError, LedgerStore
from alertengine.ledger.chain import VerifyResult
from alertengine.ledger.tools import (
    ENV_LEDGER_KEY,
    ExportFormat,
    export_entries,
    ledger_key_from_env,
    parse_time,
    store_url_from_env,
    verify_tenants,
)
from alertengine.stores.factory import open_ledger, sqlite_path

app = typer.Typer(
    help="The append-only, hash-chained audit ledger: verify it, export it.",
    no_args_is_help=True,
    add_completion=False,
)

TenantOpt = Annotated[str | None, typer.Option("--tenant", help="Only this tenant (default: all).")]
ApprovalsOpt = Annotated[
    bool,
    typer.Option("--approvals", help="Re-check every approval's passkey proof, offline."),
]
ExportFileOpt = Annotated[
    Path | None,
    typer.Option("--file", help="With --approvals: a `ledger export` JSONL file, not a store."),
]
RequirePasskeysOpt = Annotated[
    bool,
    typer.Option("--require-passkeys", help="With --approvals: a bearer-only approval fails."),
]


def _open(url: str | None, key: bytes | None, err: Console) -> LedgerStore:
    url = url or store_url_from_env()
    try:
        if url.startswith("sqlite:") and not sqlite_path(url).exists():
            err.print(f"[red]No ledger at {sqlite_path(url)}[/] (from {url}).")
            raise typer.Exit(2)
        return open_ledger(url, key=key)
    except (ValueError, LedgerError) as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc


def _report(console: Console, r: VerifyResult) -> None:
    if r.ok:
        console.print(
            f"[green]OK[/]   {r.tenant_id}: {r.count:,} entries, head seq {r.head_seq}, "
            f"head hash {r.head_hash}"
        )
    else:
        console.print(
            f"[red]FAIL[/] {r.tenant_id}: first bad seq {r.first_bad_seq}: {r.problem} "
            f"({r.count:,} entries good before it)"
        )


@app.command("verify")
def verify_cmd(
    tenant: TenantOpt = None,
    store_url: StoreUrlOpt = None,
    url: LegacyUrlOpt = None,
    as_json: JsonOpt = False,
    approvals: ApprovalsOpt = False,
    from_file: ExportFileOpt = None,
    require_passkeys: RequirePasskeysOpt = False,
) -> None:
    """Re-hash and re-chain every entry and check the signed head.

    Exit 0 when every chain is intact, 1 on any failure, 2 when it cannot run (no key, no
    ledger, or a ``--tenant`` this ledger has never heard of)."""
    console, err = stdout_console(), Console(stderr=True)
    url = store_url_option(store_url, url)
    if approvals or from_file is not None:
        from alertengine.ledger.approvals import verify_approvals_command

        verify_approvals_command(tenant, url, from_file, as_json, require_passkeys)
        return
    key = ledger_key_from_env()
    if key is None:
        err.print(
            f"[red]No ledger key.[/] Set {ENV_LEDGER_KEY} to the key the ledger was written "
            f"with, e.g. `export {ENV_LEDGER_KEY}=...` (the orchestrator's value). Without it "
            "a cut-off tail cannot be told from a short ledger, so verify refuses to run."
        )
        raise typer.Exit(2)
    store = _open(url, key, err)

    async def run() -> list[VerifyResult]:
        tasks: dict[str, TaskID] = {}
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=True) as bar:

            def on_start(name: str, total: int) -> None:
                tasks[name] = bar.add_task(f"verify {name}", total=total)

            def progress(name: str, n: int) -> None:
                bar.advance(tasks[name], n)

            try:
                return await verify_tenants(
                    store,
                    None if tenant is None else [tenant],
                    on_start=on_start,
                    progress=progress,
                )
            finally:
                await store.close()

    try:
        results = asyncio.run(run())
    except LedgerError as exc:
        err.print(f"[red]Cannot verify:[/] {exc}")
        raise typer.Exit(2) from exc
    # A named tenant with no entries and no checkpoint is a typo or the wrong store, not an
    # intact ledger: saying "OK" would let an auditor sign off on nothing.
    unknown = tenant is not None and all(r.ok and r.count == 0 for r in results)
    if as_json:
        print_json(
            {
                "ok": bool(results) and all(r.ok for r in results) and not unknown,
                "results": [r.to_dict() for r in results],
                **({"error": f"no ledger entries for tenant {tenant!r}"} if unknown else {}),
            }
        )
    elif unknown:
        err.print(
            f"[red]No ledger entries for tenant {tenant!r}[/] in this store: check the "
            "tenant id and --store-url. Nothing was verified."
        )
    else:
        if not results:
            console.print("The ledger is empty: nothing to verify.")
        for r in results:
            _report(console, r)
    if unknown:
        raise typer.Exit(2)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    fmt: Annotated[
        str, typer.Option("--format", help="jsonl (one canonical entry per line) or csv.")
    ] = "jsonl",
    tenant: TenantOpt = None,
    incident: Annotated[str | None, typer.Option("--incident", help="Only this incident.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this time (epoch s or ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Before this time (epoch s or ISO 8601).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default stdout).")
    ] = None,
    store_url: StoreUrlOpt = None,
    url: LegacyUrlOpt = None,
) -> None:
    """Write entries in seq order per tenant, filtered as asked."""
    err = Console(stderr=True)
    url = store_url_option(store_url, url)
    if fmt not in ("jsonl", "csv"):
        err.print(f"[red]Unknown format {fmt!r}[/]: use jsonl or csv.")
        raise typer.Exit(2)
    try:
        t_since = None if since is None else parse_time(since)
        t_until = None if until is None else parse_time(until)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    store = _open(url, ledger_key_from_env(), err)
    export_format: ExportFormat = "csv" if fmt == "csv" else "jsonl"

    async def run(stream: TextIO) -> int:
        try:
            return await export_entries(
                store,
                stream,
                fmt=export_format,
                tenants=None if tenant is None else [tenant],
                incident_id=incident,
                since=t_since,
                until=t_until,
            )
        finally:
            await store.close()

    target = open(out, "w", newline="", encoding="utf-8") if out else nullcontext(sys.stdout)
    try:
        with target as stream:
            n = asyncio.run(run(stream))
    except LedgerError as exc:
        err.print(f"[red]Cannot export:[/] {exc}")
        raise typer.Exit(2) from exc
    err.print(f"exported {n:,} entries" + (f" to {out}" if out else ""))


@app.command("replay")
def replay_cmd(
    tenant: TenantOpt = None,
    store_url: StoreUrlOpt = None,
    url: LegacyUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild every incident's state from the ledger alone and print it (stage, approvers …)."""
    from alertengine.ledger.replay import replay

    console, err = stdout_console(), Console(stderr=True)
    url = store_url_option(store_url, url)
    store = _open(url, ledger_key_from_env(), err)

    async def run() -> dict[str, list[dict[str, object]]]:
        out: dict[str, list[dict[str, object]]] = {}
        try:
            tenants = [tenant] if tenant else await store.tenants()
            with Progress(
                TextColumn("{task.description}"),
                TextColumn("{task.completed:,} entries"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                for t in tenants:
                    task = bar.add_task(f"replay {t}", total=None)

                    def advance(n: int, task: TaskID = task) -> None:
                        bar.update(task, completed=n)

                    states = await replay(store, t, progress=advance)
                    out[t] = [
                        {
                            "incident_id": s.incident_id,
                            "service": s.service,
                            "stage": s.stage.value,
                            "opened_at": s.opened_at,
                            "updated_at": s.updated_at,
                            "policy_version": s.policy_version,
                            "approvers": list(s.approvers)
                            or [
                                h.actor
                                for h in s.history
                                if h.actor.startswith(("engineer:", "person:"))
                            ],
                            "last_actor": s.history[-1].actor,
                        }
                        for s in sorted(states.values(), key=lambda s: s.opened_at)
                    ]
        finally:
            await store.close()
        return out

    try:
        result = asyncio.run(run())
    except LedgerError as exc:
        err.print(f"[red]Cannot replay:[/] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        print_json(result)
        return
    for t, rows in result.items():
        table = id_table(
            ("incident", "service", "stage", "approved by", "last actor", "policy"),
            (
                (
                    str(r["incident_id"]),
                    str(r["service"]),
                    str(r["stage"]),
                    ", ".join(str(a) for a in approvers) if isinstance(approvers, list) else "",
                    str(r["last_actor"]),
                    str(r["policy_version"]),
                )
                for r in rows
                for approvers in [r["approvers"]]
            ),
            ids=("incident",),
            title=f"tenant {t}: {len(rows)} incident(s) replayed from the ledger",
        )
        console.print(table)


def _attach_report() -> None:
    # The auditor's report lives with the other audit renderings; it is a ledger command.
    from alertengine.report import report_command

    app.command("report")(report_command)
    from alertengine.ledger.reconcile_cli import reconcile_command

    app.command("reconcile")(reconcile_command)


_attach_report()
