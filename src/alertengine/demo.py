"""``alertengine demo``: the whole loop on one machine, no Redis, no API keys.

detect → diagnose → approve → execute → audit, with the real orchestrator (SQLite ledger,
rules diagnoser), a real instrumented app, a recovery webhook (the shipped receiver: it
witnesses the log and answers signed receipts) and a "phone" that receives the approval
message. ``--headless`` approves through the real HTTP path by itself (for CI). The audit
ends with ``ledger verify`` and ``ledger reconcile`` (balanced: the receipt is there).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from alertengine.demo_parts import (
    DEMO_COMMIT,
    DEMO_WHATSAPP,
    DEMO_WHATSAPP_FROM,
    TenantSide,
    WhatsAppClient,
    github_push,
    link_ref,
    shop_app,
    tenant_app,
)
from alertengine.incidents import Stage

app = typer.Typer()
# soft_wrap: long lines (the approval link above all) are printed whole, never broken at the
# terminal's width; a broken link cannot be copied or clicked.
console = Console(soft_wrap=True)

TENANT = "demo"
SERVICE = "shop"
RECEIVER_NAME = "demo-recovery"  # the tenant's receiver key's name
RECEIVER_DB = "receiver-witness.db"  # what it ran and witnessed, next to the demo's ledger


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DemoResult:
    incidents: int
    approvals: int
    webhook_calls: int
    ledger_ok: bool
    final_stage: str
    approve_url: str
    entries: int
    balanced: bool = False
    receipts: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.incidents == 1
            and self.approvals == 1
            and self.webhook_calls == 1
            and self.ledger_ok
            and self.balanced
            and self.final_stage == Stage.RESOLVED.value
        )


class _QuietServer(uvicorn.Server):
    """Several servers share one loop here: Ctrl-C belongs to the demo, not to each server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def _serve(asgi: Any, port: int) -> AsyncIterator[None]:
    config = uvicorn.Config(
        asgi, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"server on port {port} did not start")
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task


def _shorten(text: str, width: int) -> str:
    """At most ``width`` characters, cut at a word with an ellipsis (the ledger has it all)."""
    return textwrap.shorten(text, width, placeholder=" …")


async def _traffic(base: str, stop: asyncio.Event, concurrency: int = 8) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def worker(i: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(f"/checkout/{i * 100000 + n}")
                await asyncio.sleep(0.02)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))


def _config(
    ports: dict[str, int], recovery_secret_env: str, github_secret_env: str
) -> dict[str, Any]:
    return {
        "orchestrator": {
            "base_url": f"http://127.0.0.1:{ports['orch']}",
            "loop_interval_s": 1.0,
            "demo": True,
        },
        "tenants": [
            {
                "id": TENANT,
                "name": "Demo Shop Ltd",
                "github_secret_env": github_secret_env,
                "approvers": [
                    {
                        "channel": "webhook",
                        "address": f"http://127.0.0.1:{ports['tenant']}/phone/inbox",
                        "identity": "oncall-alice",
                    },
                    # Her WhatsApp: the phone page's quick replies come from this number.
                    {"channel": "whatsapp", "address": DEMO_WHATSAPP, "identity": "oncall-alice"},
                ],
                # A demo wants to see the loop in seconds, not minutes. It opens on the latency
                # it announces (P95 >= 1 s), not on the score's early dip, so the message and
                # the diagnosis show the spike itself.
                "policy": {
                    "open_p95_ms": 1000,
                    "min_score_to_alert": 10,
                    "open_on_critical_status": False,
                    "recover_polls": 2,
                    "min_sample_size": 10,
                },
            }
        ],
        "targets": [
            {
                "tenant": TENANT,
                "service": SERVICE,
                "health_url": f"http://127.0.0.1:{ports['shop']}/health/alerts",
                "recovery_webhook": f"http://127.0.0.1:{ports['tenant']}/recover",
                "webhook_secret_env": recovery_secret_env,
                "action": "restart checkout workers",
            }
        ],
    }


async def run_demo(*, headless: bool, workdir: Path, timeout_s: float = 120.0) -> DemoResult:
    from alertengine import instrument
    from alertengine.orchestrator.config import parse_config
    from alertengine.orchestrator.runtime import build_runtime, create_app
    from alertengine.orchestrator.settings import Settings
    from alertengine.sdk.config import SDKConfig
    from alertengine.stores.factory import open_stores

    ports = {name: _free_port() for name in ("shop", "tenant", "orch")}
    recovery_secret = secrets.token_urlsafe(32)
    notify_secret = secrets.token_urlsafe(32)
    github_secret = secrets.token_urlsafe(32)
    secret_env = "DEMO_RECOVERY_WEBHOOK_SECRET"  # noqa: S105 - the name of a variable
    github_env = "DEMO_GITHUB_WEBHOOK_SECRET"
    os.environ[secret_env] = recovery_secret
    os.environ[github_env] = github_secret
    side = TenantSide(recovery_secret.encode(), notify_secret.encode(), github_secret.encode())
    twilio_sid, twilio_token = "AC" + secrets.token_hex(16), secrets.token_urlsafe(32)
    side.whatsapp = WhatsAppClient(f"http://127.0.0.1:{ports['orch']}", twilio_sid, twilio_token)

    shop = shop_app(side.chaos)
    instrument(shop, service=SERVICE, config=SDKConfig(service=SERVICE, window_s=10))

    config = parse_config(_config(ports, secret_env, github_env), source="demo")
    # The demo's ledger key is kept next to its ledger so you can audit it afterwards
    # (a real deployment keeps ALERTENGINE_LEDGER_KEY in its secret store, never on disk here).
    ledger_key = secrets.token_urlsafe(32).encode()
    key_file = workdir / "ledger.key"
    key_file.write_bytes(ledger_key)
    key_file.chmod(0o600)
    db = workdir / "alertengine-demo.db"
    ledger, store = open_stores(f"sqlite:///{db}", ledger_key=ledger_key)
    settings = Settings.from_env(
        {
            "ALERT_SECRET": secrets.token_urlsafe(48),
            "NOTIFY_WEBHOOK_SECRET": notify_secret,
            "ALERTENGINE_ADMIN_KEY": secrets.token_urlsafe(32),
            # WhatsApp through "Twilio": the phone page signs its quick replies with this.
            "TWILIO_ACCOUNT_SID": twilio_sid,
            "TWILIO_AUTH_TOKEN": twilio_token,
            "TWILIO_WHATSAPP_FROM": DEMO_WHATSAPP_FROM,
            "TWILIO_API_BASE": f"http://127.0.0.1:{ports['tenant']}",
        }
    )
    rt = await build_runtime(config, ledger=ledger, store=store, settings=settings)
    orch_app = create_app(rt)
    orch_url = f"http://127.0.0.1:{ports['orch']}"
    tenant_url = f"http://127.0.0.1:{ports['tenant']}"
    stop_traffic = asyncio.Event()

    # The stores close after the servers stop: the orchestrator's loop may still be writing
    # (health history, a last tick) until its server has shut down.
    try:
        async with (
            _serve(shop, ports["shop"]),
            _serve(tenant_app(side), ports["tenant"]),
            _serve(orch_app, ports["orch"]),
        ):
            console.rule("[bold]AlertEngine demo")
            console.print(
                f"shop API (instrumented)   http://127.0.0.1:{ports['shop']}/health/alerts"
            )
            console.print(f"orchestrator              {orch_url}   (ledger: {db})")
            console.print(f"dashboard                 {orch_url}/dashboard")
            console.print(f"on-call phone (outbox)    {tenant_url}/phone")
            key = rt.new_keys.get(TENANT, "")
            if key:
                console.print(f"tenant API key (demo)     {key}")
            side.receiver = await _tenant_receiver(
                orch_url, key or await rt.registry.rotate_key(TENANT), recovery_secret, workdir
            )
            side.tenant_id = TENANT
            shop_url = f"http://127.0.0.1:{ports['shop']}"
            traffic = asyncio.create_task(_traffic(shop_url, stop_traffic))
            try:
                result = await _story(
                    rt,
                    side,
                    headless=headless,
                    orch_url=orch_url,
                    tenant_url=tenant_url,
                    timeout_s=timeout_s,
                    workdir=workdir,
                )
                if not headless:
                    console.print(
                        "\n[bold]The demo keeps running[/] so you can look around "
                        f"({orch_url}/dashboard, {tenant_url}/phone). Press Ctrl-C to stop."
                    )
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.Event().wait()
                return result
            finally:
                stop_traffic.set()
                traffic.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await traffic
    finally:
        await rt.http.aclose()
        if side.receiver is not None:
            await side.receiver.store.close()
        await ledger.close()
        await store.close()


async def _tenant_receiver(orch_url: str, api_key: str, secret: str, workdir: Path) -> Any:
    """The tenant's own receiver, set up as docs/webhooks.md says: our public key from the
    public route, its own signing key, a SQLite witness store, and consistency proofs from
    the tenant API with the tenant's key."""
    from alertengine.ledger.checkpoint import NoteSigner
    from alertengine.receiver import HttpConsistencyFetcher, Receiver, SqliteWitnessStore

    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(f"{orch_url}/ledger/public-key")
        r.raise_for_status()
    return Receiver(
        secret=secret,
        log_keys=[str(r.json()["public_key"])],
        signer=NoteSigner.generate(RECEIVER_NAME),
        store=SqliteWitnessStore(workdir / RECEIVER_DB),
        fetch_consistency=HttpConsistencyFetcher(orch_url, api_key),
        tenant_id=TENANT,
    )


async def _reconcile(rt: Any, receiver: Any, workdir: Path) -> Any:
    """``ledger reconcile`` on the demo's ledger, with the receiver's own receipts too."""
    from alertengine.ledger.checkpoint import NoteSigner
    from alertengine.ledger.reconcile import ReceiptRecord, reconcile
    from alertengine.ledger.tlog import ConsistencyProof, TransparencyLog

    entries = [e async for e in rt.ledger.scan(TENANT)]
    # Proofs need the tree only; no signing key is involved in checking them.
    log = TransparencyLog(rt.ledger, NoteSigner.generate("reconcile"))

    async def consistency(a: int, b: int) -> ConsistencyProof:
        return await log.consistency_proof(TENANT, a, b)

    theirs = [
        ReceiptRecord(note, str(workdir / RECEIVER_DB), receiver_key=receiver.public_key, index=i)
        for i, note in enumerate(await receiver.store.receipts())
    ]
    return await reconcile(
        TENANT,
        entries,
        await log.tree_head(TENANT),
        consistency,
        receipts=theirs,
        receiver_keys=[receiver.signer.verifier],
    )


async def _wait_stage(rt: Any, stages: set[Stage], deadline: float) -> Any:
    while time.monotonic() < deadline:
        for s in await rt.engine.incidents(TENANT):
            if s.stage in stages:
                return s
        await asyncio.sleep(0.2)
    raise TimeoutError(f"no incident reached {sorted(s.value for s in stages)} in time")


async def _story(
    rt: Any,
    side: TenantSide,
    *,
    headless: bool,
    orch_url: str,
    tenant_url: str,
    timeout_s: float,
    workdir: Path,
) -> DemoResult:
    deadline = time.monotonic() + timeout_s
    console.print("\n[green]1.[/] Normal traffic for a few seconds…")
    await asyncio.sleep(4)
    sha = str(DEMO_COMMIT["id"])[:7]
    console.print(
        f"[yellow]2.[/] The shop deploys {sha} ({DEMO_COMMIT['message']!r}, touches "
        "app/db/queries.py); GitHub tells AlertEngine through the signed push webhook"
    )
    body, headers = github_push(side.github_secret, time.time() - 30)
    async with httpx.AsyncClient(timeout=10) as client:
        pushed = await client.post(
            f"{orch_url}/commits/webhook",
            params={"tenant": TENANT, "service": SERVICE},
            content=body,
            headers=headers,
        )
        pushed.raise_for_status()
    console.print("   …and checkout now takes ~1.2 s per request (a latency spike)")
    side.chaos.latency_s = 1.2
    state = await _wait_stage(rt, {Stage.DETECTED, Stage.PROPOSED, Stage.VALIDATED}, deadline)
    console.print(
        f"[red]3.[/] Policy opened incident [bold]{state.incident_id}[/]: {state.history[0].reason}"
    )
    await asyncio.wait_for(side.message_arrived.wait(), max(1.0, deadline - time.monotonic()))
    msg = side.messages[-1]
    console.print("[cyan]4.[/] The on-call phone got this message:\n")
    console.print(msg.get("text", ""), markup=False, highlight=False)
    url = str(msg.get("approve_url", ""))
    console.print(f"\n   Approval link: [link={url}]{url}[/link]")
    if headless:
        assert side.whatsapp is not None
        ref = link_ref(url)
        said = await side.whatsapp.press("ack", ref)
        console.print(f'   [headless] Alice taps "I\'m on it" in WhatsApp → {said}')
        await _approve_over_http(url, preview_only=True)
        said = await side.whatsapp.press("approve", ref)
        console.print(f'   [headless] Alice taps "Approve" in WhatsApp → {said}')
    else:
        console.print(
            '   On the phone page: "I\'m on it" acknowledges, "Approve" approves in chat '
            "(a signed Twilio webhook)."
        )
        console.print("   Open it (or the phone page) in a browser and press Confirm…")
    await asyncio.wait_for(side.recovered.wait(), max(1.0, deadline - time.monotonic()))
    call = side.recoveries[-1]
    console.print(
        f"[green]5.[/] Recovery webhook called (Idempotency-Key {call['idempotency_key'][:16]}…):"
        f" {call['payload'].get('action')!r}, approved by {call['payload'].get('approvers')}"
    )
    final = await _wait_stage(rt, {Stage.RESOLVED}, deadline)
    verify = await rt.ledger.verify(TENANT)
    entries = await rt.ledger.count(TENANT)
    _print_timeline(final)
    console.print(
        f"[green]6.[/] ledger verify: {'[bold green]OK' if verify.ok else '[bold red]FAILED'}[/] "
        f"— {verify.count} entries, head {verify.head_hash[:16]}…"
    )
    receiver = side.receiver
    books = await _reconcile(rt, receiver, workdir) if receiver is not None else None
    if receiver is not None and books is not None:
        sizes = " → ".join(str(n) for n in side.witnessed)
        verdict = "[bold green]BALANCED" if books.balanced else "[bold red]UNBALANCED"
        console.print(
            f"   ledger reconcile: {verdict}[/] — {books.authorizations} authorization(s), "
            f"{books.executions} execution(s), "
            f"{books.receipts} receipt(s) signed by the receiver ({RECEIVER_NAME}; it witnessed "
            f"tree sizes {sizes}, checked by consistency proof)"
        )
        for m in books.mismatches:
            console.print(f"   [red]MISMATCH[/] {m.line()}", markup=True, highlight=False)
        console.print(
            f"   checkpoint: {orch_url}/ledger/checkpoint (tenant key) · public key "
            f"{receiver.verifiers[0].vkey} ({orch_url}/ledger/public-key; signing key "
            f"{workdir}/checkpoint.key)",
            highlight=False,
        )
    console.print(
        "   audit it yourself:\n"
        f"   ALERTENGINE_LEDGER_KEY=$(cat {workdir}/ledger.key) alertengine ledger verify "
        f"--store-url sqlite:///{workdir}/alertengine-demo.db\n"
        f"   ALERTENGINE_LEDGER_KEY=$(cat {workdir}/ledger.key) alertengine ledger reconcile "
        f"--tenant {TENANT} --store-url sqlite:///{workdir}/alertengine-demo.db\n"
        f"   alertengine ledger replay --store-url sqlite:///{workdir}/alertengine-demo.db",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    incidents = await rt.engine.incidents(TENANT)
    approvals = sum(
        len(s.approvals) or (1 if any(h.stage is Stage.AUTHORIZED for h in s.history) else 0)
        for s in incidents
    )
    return DemoResult(
        incidents=len(incidents),
        approvals=approvals,
        webhook_calls=len(side.recoveries),
        ledger_ok=verify.ok,
        final_stage=final.stage.value,
        approve_url=url,
        entries=entries,
        balanced=books is not None and books.balanced,
        receipts=books.receipts if books is not None else 0,
    )


async def _approve_over_http(url: str, *, preview_only: bool = False) -> None:
    """What a person does: open the link (GET, changes nothing), then press Confirm (POST)."""
    token = dict(p.split("=", 1) for p in urlparse(url).query.split("&") if "=" in p)["token"]
    async with httpx.AsyncClient(timeout=10) as client:
        preview = await client.get(url, headers={"Accept": "application/json"})
        preview.raise_for_status()
        if preview_only:
            return
        base = url.split("/action/recover")[0]
        r = await client.post(f"{base}/action/recover/confirm", data={"token": token})
        console.print(f"   [headless] confirmed: HTTP {r.status_code}")
        r.raise_for_status()


def _print_timeline(state: Any) -> None:
    table = Table(title=f"Incident {state.incident_id}", show_lines=False)
    for col in ("stage", "actor", "reason"):
        table.add_column(col)
    for h in state.history:
        table.add_row(h.stage.value, h.actor, _shorten(h.reason, 120))
    console.print(table)


@app.command()
def demo(
    headless: bool = typer.Option(False, help="approve automatically through the real HTTP path"),
    timeout: float = typer.Option(180.0, help="seconds before giving up (headless)"),
    workdir: Path | None = typer.Option(None, help="where the demo's SQLite ledger goes"),
) -> None:
    """Run detect → diagnose → approve → execute → audit locally, end to end."""
    wd = workdir or Path(tempfile.mkdtemp(prefix="alertengine-demo-"))
    wd.mkdir(parents=True, exist_ok=True)
    try:
        result = asyncio.run(run_demo(headless=headless, workdir=wd, timeout_s=timeout))
    except KeyboardInterrupt:
        console.print("\nstopped.")
        raise typer.Exit(0) from None
    except TimeoutError as exc:
        console.print(f"[bold red]demo failed:[/] {exc}")
        raise typer.Exit(1) from None
    summary = (
        f"incidents={result.incidents} approvals={result.approvals} "
        f"webhook_calls={result.webhook_calls} ledger_ok={result.ledger_ok} "
        f"final={result.final_stage} balanced={result.balanced}"
    )
    if result.ok:
        console.print(f"[bold green]demo OK[/] {summary}")
    else:
        console.print(f"[bold red]demo FAILED[/] {summary}")
        raise typer.Exit(1)
