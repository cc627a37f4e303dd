"""``alertengine ledger verify|export|prove|check-proof|…``: check and hand over the audit trail.

The store comes from ``--store-url`` or ``ALERTENGINE_STORE_URL`` (default
``sqlite:///var/alertengine.db``); verify needs ``ALERTENGINE_LEDGER_KEY``. Checkpoints are
signed with the checkpoint key (:mod:`alertengine.ledger.keys`); ``check-proof`` needs
nothing but the public key.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, TextIO, TypeVar

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
from alertengine.ledger.base import LedgerError, LedgerStore, TreeStore
from alertengine.ledger.chain import VerifyResult
from alertengine.ledger.checkpoint import CheckpointError, NoteSigner, NoteVerifier
from alertengine.ledger.merkle import ProofError
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

T = TypeVar("T")

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


def _run_or_exit(
    work: Coroutine[Any, Any, T], err: Console, what: str, *also: type[Exception]
) -> T:
    """Run the verb's store work; a store that fails (or ``also``) exits 2: "Cannot <what>"."""
    caught: tuple[type[Exception], ...] = (LedgerError, *also)
    try:
        return asyncio.run(work)
    except caught as exc:
        err.print(f"[red]Cannot {what}:[/] {exc}")
        raise typer.Exit(2) from exc


def _signer_or_exit(url: str | None, err: Console) -> NoteSigner:
    """The checkpoint signer; without one, exit 2 saying why."""
    try:
        return _signer(url, create=False)
    except CheckpointError as exc:
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
    witness: Annotated[
        Path | None,
        typer.Option(
            "--witness",
            help="Checkpoints a witness saw (signed notes one after another, or a JSON list):"
            " each must verify with the public key and be a prefix of the current tree.",
        ),
    ] = None,
    public_key: Annotated[
        list[str] | None,
        typer.Option("--public-key", help="Verifier key(s) for --witness (default: the log's)."),
    ] = None,
    tree: Annotated[
        bool,
        typer.Option(
            "--tree", help="Also recompute each Merkle tree from the entries (a 2nd pass)."
        ),
    ] = False,
) -> None:
    """Re-hash and re-chain every entry and check the signed head; with --witness, also
    catch a rollback, fork or truncation; with --tree, check the stored Merkle tree.

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

    notes: list[str] = []
    verifiers: list[NoteVerifier] = []
    if witness is not None:
        from alertengine.ledger.tlog import parse_witness_file

        try:
            notes = parse_witness_file(witness.read_text(encoding="utf-8"))
            verifiers = _verifiers(public_key, url)
        except (OSError, CheckpointError) as exc:
            err.print(f"[red]Cannot read the witness file or keys:[/] {exc}")
            raise typer.Exit(2) from exc

    async def run_all() -> tuple[list[VerifyResult], bool]:
        results = await run()
        if witness is None and not tree:
            return results, True
        extra_ok = True
        store2 = _open(url, key, err)
        try:
            tenants = [tenant] if tenant else sorted({r.tenant_id for r in results})
            for t in tenants:
                if tree:
                    extra_ok &= await _check_tree(console, err, store2, t)
                if witness is not None:
                    extra_ok &= await _check_witness(console, store2, t, notes, verifiers)
        finally:
            await store2.close()
        return results, extra_ok

    results, witnessed_ok = _run_or_exit(run_all(), err, "verify")
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
    if not all(r.ok for r in results) or not witnessed_ok:
        raise typer.Exit(1)


def _verifiers(public_keys: list[str] | None, url: str | None) -> list[NoteVerifier]:
    """The given verifier keys, else the log's own (from its signing key)."""
    if public_keys:
        return [NoteVerifier.from_vkey(k) for k in public_keys]
    return [_signer(url, create=False).verifier]


def _signer(url: str | None, *, create: bool) -> NoteSigner:
    from alertengine.ledger.keys import load_signer, state_dir_for

    return load_signer(state_dir=state_dir_for(url or store_url_from_env()), create=create)


async def _log_keys(store: LedgerStore, tenant: str, current: NoteVerifier) -> list[NoteVerifier]:
    """``current`` and the keys the tenant's ledger says it rotated from."""
    from alertengine.ledger.base import LedgerQuery
    from alertengine.ledger.tlog import ROTATION_KIND, keys_from_rotations

    entries = await store.read(LedgerQuery(tenant_id=tenant, kinds=frozenset({ROTATION_KIND})))
    return keys_from_rotations([e.data for e in entries], current)


async def _check_tree(console: Console, err: Console, store: LedgerStore, tenant: str) -> bool:
    from alertengine.ledger.tlog import verify_tree

    n = await store.count(tenant)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(f"tree of {tenant}", total=n)
        problem = await verify_tree(
            _tree(store),
            store.scan(tenant),
            tenant,
            progress=lambda k: bar.advance(task, k),
        )
    if problem:
        console.print(f"[red]FAIL[/] {tenant}: Merkle tree: {problem}")
        return False
    console.print(f"[green]OK[/]   {tenant}: Merkle tree of {n:,} leaves matches the entries")
    return True


async def _check_witness(
    console: Console, store: LedgerStore, tenant: str, notes: list[str], keys: list[NoteVerifier]
) -> bool:
    from alertengine.ledger.base import TreeStore
    from alertengine.ledger.tlog import ConsistencyProof, TransparencyLog, check_witnessed

    assert isinstance(store, TreeStore)
    # The log's signer is not needed to check: only the tree and the public keys.
    log = TransparencyLog(store, NoteSigner.generate("unused"))
    current = await log.tree_head(tenant)
    if current.size < await store.count(tenant):
        console.print(
            f"[red]FAIL[/] {tenant}: the Merkle tree covers {current.size} entries of "
            f"{await store.count(tenant)}: run `alertengine ledger migrate` first"
        )
        return False
    verifiers = list(keys)
    for k in keys:
        verifiers += [v for v in await _log_keys(store, tenant, k) if v not in verifiers]

    async def consistency(a: int, b: int) -> ConsistencyProof:
        return await log.consistency_proof(tenant, a, b)

    found = await check_witnessed(tenant, notes, current, verifiers, consistency)
    for f in found:
        if f.ok:
            console.print(
                f"[green]OK[/]   {tenant}: witnessed checkpoint #{f.index} (size {f.size}) is a"
                f" prefix of the current tree (size {current.size})"
            )
        else:
            console.print(f"[red]FAIL[/] {tenant}: witnessed checkpoint #{f.index}: {f.problem}")
    if not found:
        console.print(f"{tenant}: the witness file holds no checkpoint of this tenant's log")
    return all(f.ok for f in found)


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
    with target as stream:
        n = _run_or_exit(run(stream), err, "export")
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

    result = _run_or_exit(run(), err, "replay")
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


@app.command("public-key")
def public_key_cmd(store_url: StoreUrlOpt = None, url: LegacyUrlOpt = None) -> None:
    """Print the verifier key checkpoints are signed with (<name>+<key id>+<base64 key>)."""
    url = store_url_option(store_url, url)
    err = Console(stderr=True)
    try:
        signer = _signer(url, create=False)
    except CheckpointError as exc:
        err.print(
            f"[red]{exc}[/]\nThe orchestrator creates the key on its first start; see"
            " docs/ledger.md (Checkpoint key)."
        )
        raise typer.Exit(2) from exc
    print(signer.verifier.vkey)


@app.command("checkpoint")
def checkpoint_cmd(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose tree.")],
    store_url: StoreUrlOpt = None,
    url: LegacyUrlOpt = None,
) -> None:
    """Print the tenant's current tree head as a signed C2SP checkpoint."""
    url = store_url_option(store_url, url)
    from alertengine.ledger.tlog import TransparencyLog

    err = Console(stderr=True)
    signer = _signer_or_exit(url, err)
    store = _open(url, ledger_key_from_env(), err)

    async def run() -> str:
        try:
            return await TransparencyLog(_tree(store), signer).checkpoint(tenant)
        finally:
            await store.close()

    sys.stdout.write(_run_or_exit(run(), err, "sign a checkpoint"))


def _tree(store: LedgerStore) -> TreeStore:
    if not isinstance(store, TreeStore):
        raise LedgerError("this store keeps no Merkle tree")
    return store


@app.command("prove")
def prove_cmd(
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant whose tree.")],
    seq: Annotated[int | None, typer.Option("--seq", help="Inclusion proof of entry N.")] = None,
    from_size: Annotated[
        int | None, typer.Option("--from-size", help="Consistency proof from tree size A.")
    ] = None,
    to_size: Annotated[
        int | None, typer.Option("--to-size", help="… to size B (default: the current size).")
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", help="Inclusion in the tree of this size.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="File (default stdout).")] = None,
    store_url: StoreUrlOpt = None,
    url: LegacyUrlOpt = None,
) -> None:
    """An inclusion (--seq) or consistency (--from-size) proof, as JSON with its checkpoint(s)
    and (for inclusion) the entry: everything `check-proof` needs but the public key."""
    url = store_url_option(store_url, url)
    import json

    from alertengine.ledger.base import LedgerQuery
    from alertengine.ledger.tlog import TransparencyLog

    err = Console(stderr=True)
    if (seq is None) == (from_size is None):
        err.print("[red]Give exactly one of --seq N or --from-size A.[/]")
        raise typer.Exit(2)
    signer = _signer_or_exit(url, err)
    store = _open(url, ledger_key_from_env(), err)

    async def run() -> dict[str, object]:
        try:
            log = TransparencyLog(_tree(store), signer)
            if seq is not None:
                proof = await log.inclusion_proof(tenant, seq, size)
                (entry,) = await store.read(
                    LedgerQuery(tenant_id=tenant, after_seq=seq - 1, limit=1)
                )
                return {
                    "proof": proof.to_dict(),
                    "entry": entry.to_dict(),
                    "checkpoint": await log.checkpoint(tenant, proof.tree_size),
                }
            assert from_size is not None
            cproof = await log.consistency_proof(tenant, from_size, to_size)
            return {
                "proof": cproof.to_dict(),
                "old_checkpoint": await log.checkpoint(tenant, cproof.from_size),
                "checkpoint": await log.checkpoint(tenant, cproof.to_size),
            }
        finally:
            await store.close()

    bundle = _run_or_exit(run(), err, "prove", ValueError)
    text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


@app.command("check-proof")
def check_proof_cmd(
    proof_file: Annotated[Path, typer.Argument(help="A proof from `ledger prove` (JSON).")],
    public_key: Annotated[
        list[str], typer.Option("--public-key", help="The log's verifier key (repeatable).")
    ],
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="Check against this checkpoint (e.g. a witness's)."),
    ] = None,
    old_checkpoint: Annotated[
        Path | None, typer.Option("--old-checkpoint", help="Consistency: the older checkpoint.")
    ] = None,
    entry: Annotated[
        Path | None,
        typer.Option("--entry", help="Inclusion: the entry (one `ledger export` JSON line)."),
    ] = None,
) -> None:
    """Verify a proof offline with nothing but the public key. Exit 0 if it holds, 1 if
    it does not (the reason is printed), 2 if the input cannot be read."""
    import json

    from alertengine.ledger.chain import Entry
    from alertengine.ledger.tlog import (
        ConsistencyProof,
        InclusionProof,
        check_consistency,
        check_inclusion,
    )

    console, err = Console(), Console(stderr=True)
    try:
        bundle = json.loads(proof_file.read_text(encoding="utf-8"))
        verifiers = [NoteVerifier.from_vkey(k) for k in public_key]
        note = checkpoint.read_text(encoding="utf-8") if checkpoint else bundle["checkpoint"]
        kind = bundle["proof"]["type"]
        if kind == "inclusion":
            raw = json.loads(entry.read_text(encoding="utf-8")) if entry else bundle["entry"]
            the_entry = Entry.from_dict(raw)
            proof = InclusionProof.from_dict(bundle["proof"])
        else:
            old = (
                old_checkpoint.read_text(encoding="utf-8")
                if old_checkpoint
                else bundle["old_checkpoint"]
            )
            cproof = ConsistencyProof.from_dict(bundle["proof"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        err.print(f"[red]Cannot read the proof:[/] {exc!r}")
        raise typer.Exit(2) from exc
    try:
        if kind == "inclusion":
            head = check_inclusion(the_entry, proof, note, verifiers)
            console.print(
                f"[green]OK[/] entry {the_entry.seq} of {the_entry.tenant_id!r} is in the tree"
                f" of size {head.size} ({head.origin}) signed by the given key"
            )
        else:
            a, b = check_consistency(old, note, cproof, verifiers)
            console.print(
                f"[green]OK[/] the tree of size {a.size} is a prefix of the tree of size"
                f" {b.size} ({b.origin}), both signed by the given key"
            )
    except (ProofError, CheckpointError) as exc:
        console.print(f"[red]INVALID[/] {exc}")
        raise typer.Exit(1) from exc


@app.command("migrate")
def migrate_cmd(
    tenant: TenantOpt = None, store_url: StoreUrlOpt = None, url: LegacyUrlOpt = None
) -> None:
    """Build the Merkle tree of a ledger written before the tree existed (with progress).
    Appends do it on their own; this does it ahead of time, in batches."""
    url = store_url_option(store_url, url)
    console, err = Console(), Console(stderr=True)
    store = _open(url, ledger_key_from_env(), err)

    async def run() -> dict[str, int]:
        done: dict[str, int] = {}
        try:
            trees = _tree(store)
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                for t in [tenant] if tenant else await store.tenants():
                    missing = await store.count(t) - await trees.tree_size(t)
                    task = bar.add_task(f"tree of {t}", total=max(missing, 0))

                    def advance(n: int, task: TaskID = task) -> None:
                        bar.advance(task, n)

                    done[t] = await trees.build_tree(t, progress=advance)
        finally:
            await store.close()
        return done

    done = _run_or_exit(run(), err, "build the tree")
    for t, n in done.items():
        console.print(f"{t}: {n:,} leaves added" if n else f"{t}: tree already complete")


@app.command("rotate-checkpoint-key")
def rotate_key_cmd(
    store_url: StoreUrlOpt = None,
    url: LegacyUrlOpt = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The new key's name (default: the old one's).")
    ] = None,
) -> None:
    """Replace the checkpoint key, and ledger the change for every tenant: an entry with
    both public keys, each signing the pair (old → new), so checkpoints a witness saw
    before the rotation stay verifiable. Needs ALERTENGINE_LEDGER_KEY to append."""
    url = store_url_option(store_url, url)
    import time

    from alertengine.ledger.chain import EntryDraft
    from alertengine.ledger.keys import (
        ENV_CHECKPOINT_KEY,
        key_file_path,
        state_dir_for,
        write_key_file,
    )
    from alertengine.ledger.tlog import ROTATION_KIND, rotation_data

    console, err = Console(), Console(stderr=True)
    key = ledger_key_from_env()
    if key is None:
        err.print(f"[red]No ledger key.[/] Set {ENV_LEDGER_KEY}: the rotation is ledgered.")
        raise typer.Exit(2)
    old = _signer_or_exit(url, err)
    new = NoteSigner.generate(name or old.name)
    data = rotation_data(old, new)
    store = _open(url, key, err)

    async def run() -> list[str]:
        try:
            tenants = await store.tenants()
            for t in tenants:
                await store.append(
                    t,
                    [
                        EntryDraft(
                            tenant_id=t,
                            kind=ROTATION_KIND,
                            actor="operator:cli",
                            timestamp=time.time(),
                            decision="rotated",
                            reason="checkpoint signing key rotated",
                            data=data,
                        )
                    ],
                )
            return tenants
        finally:
            await store.close()

    tenants = _run_or_exit(run(), err, "ledger the rotation; the key is unchanged")
    import os

    if os.environ.get(ENV_CHECKPOINT_KEY):
        err.print(
            f"Rotation ledgered for {len(tenants)} tenant(s). Put the new signer key in "
            f"{ENV_CHECKPOINT_KEY} (printed on stdout, once) and restart the orchestrator."
        )
        print(new.skey)
    else:
        path = key_file_path(os.environ, state_dir_for(url or store_url_from_env()))
        write_key_file(path.with_name(f"{path.name}.{old.verifier.key_id.hex()}.old"), old)
        write_key_file(path, new, replace=True)
        err.print(
            f"Rotation ledgered for {len(tenants)} tenant(s); new key in {path} (the old one"
            " kept beside it). Restart the orchestrator to sign with it."
        )
    console.print(new.verifier.vkey)


def _attach_report() -> None:
    # The auditor's report lives with the other audit renderings; it is a ledger command.
    from alertengine.ledger.audit_report import report_command

    app.command("report")(report_command)
    from alertengine.ledger.reconcile_cli import reconcile_command

    app.command("reconcile")(reconcile_command)


_attach_report()
