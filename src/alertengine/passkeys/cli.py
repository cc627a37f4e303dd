"""``alertengine person enroll | credentials | revoke-credential``: people's passkeys.

Registered under the ``person`` group (the person registry's verbs live beside these). The
store comes from ``--store-url``, else the ``--config`` file's ``store_url``, else
``ALERTENGINE_STORE_URL``; enroll and revoke write to the ledger, so they need
``ALERTENGINE_LEDGER_KEY``. The RP ID and origin come from the orchestrator's ``base_url``
(``--config`` or ``--base-url``): passkeys are bound to that host.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, TypeVar

import httpx
import typer
from rich.console import Console

from alertengine.cli_common import JsonOpt, StoreUrlOpt, id_table, print_json, stdout_console
from alertengine.clock import SystemClock
from alertengine.engine import IncidentEngine
from alertengine.ledger.tools import ENV_LEDGER_KEY, ledger_key_from_env, store_url_from_env
from alertengine.notify.channel import DeliveryResult
from alertengine.notify.render import Button, RenderedMessage
from alertengine.orchestrator.config import Config, ConfigError, load_config
from alertengine.passkeys.binding import person_of
from alertengine.passkeys.service import EnrollmentLink, PasskeyError, Passkeys
from alertengine.people import PersonRegistry
from alertengine.policy import Policy, PolicyError, load_policy
from alertengine.stores.factory import open_stores
from alertengine.tenants import TenantRegistry

app = typer.Typer(help="People: their passkeys (enroll, list, revoke).", no_args_is_help=True)
T = TypeVar("T")

TenantOpt = Annotated[str, typer.Option("--tenant", help="The person's tenant.")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="The orchestrator's TOML (base_url, store).")
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="The orchestrator's public URL (overrides --config)."),
]


@dataclass(frozen=True)
class _Context:
    passkeys: Passkeys
    tenants: TenantRegistry
    config: Config | None


def _fail(message: str, code: int = 2) -> typer.Exit:
    Console(stderr=True).print(message, highlight=False)
    return typer.Exit(code)


def _config(path: Path | None) -> Config | None:
    if path is None:
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise _fail(f"[red]{exc}[/]") from None


def _run(
    store_url: str | None,
    config_path: Path | None,
    base_url: str | None,
    fn: Callable[[_Context], Awaitable[T]],
    *,
    writes: bool,
) -> T:
    config = _config(config_path)
    key = ledger_key_from_env()
    if writes and key is None:
        raise _fail(
            f"[red]No ledger key.[/] Set {ENV_LEDGER_KEY} (the orchestrator's value): "
            "passkey enrollments and revocations are ledgered."
        )
    url = store_url or (config.orchestrator.store_url if config else None) or store_url_from_env()
    origin = base_url or (config.orchestrator.base_url if config else "")
    if writes and not origin:
        raise _fail("[red]No base URL.[/] Pass --config or --base-url: passkeys are bound to it.")

    async def go() -> T:
        ledger, store = open_stores(url, ledger_key=key)
        clock = SystemClock()
        env_policy = load_policy()

        def policy_for(tenant_id: str) -> Policy:
            return config.policy_for(tenant_id) if config else env_policy

        engine = IncidentEngine(ledger, clock, policy_for)
        try:
            ctx = _Context(Passkeys(engine, store, clock, origin), TenantRegistry(store), config)
            return await fn(ctx)
        finally:
            await store.close()
            await ledger.close()

    try:
        return asyncio.run(go())
    except (PasskeyError, PolicyError, ValueError) as exc:
        raise _fail(f"[red]{exc}[/]") from None


async def _check_person(ctx: _Context, tenant_id: str, person_id: str) -> None:
    """The person must be in the tenant's person registry (or, for a config not yet synced
    by ``serve``, one of its approvers)."""
    if await PersonRegistry(ctx.passkeys.store).get(tenant_id, person_id) is not None:
        return
    tenant = await ctx.tenants.get(tenant_id)
    configured = ctx.config.tenant(tenant_id) if ctx.config else None
    if tenant is None and configured is None:
        raise PasskeyError("unknown_tenant", f"no such tenant: {tenant_id!r}")
    known = {person_of(i) for i in (tenant.identities() if tenant else [])}
    known |= {person_of(a.approver) for a in (configured.approvers if configured else [])}
    if person_id not in known:
        raise PasskeyError(
            "unknown_person",
            f"{person_id!r} is not an approver of tenant {tenant_id!r} "
            f"(approvers: {', '.join(sorted(known)) or 'none'})",
        )


def _utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command()
def enroll(
    person_id: Annotated[str, typer.Argument(help="The person, e.g. alice.")],
    tenant: TenantOpt,
    send: Annotated[
        bool, typer.Option("--send", help="Also send the link to the person's channels.")
    ] = False,
    ttl_s: Annotated[float, typer.Option("--ttl", help="Seconds the link stays valid.")] = 900.0,
    config: ConfigOpt = None,
    base_url: BaseUrlOpt = None,
    store_url: StoreUrlOpt = None,
) -> None:
    """Print a single-use, short-lived link that enrolls a passkey for PERSON_ID."""
    if not 30 <= ttl_s <= 86_400:
        raise _fail("[red]--ttl must be between 30 and 86400 seconds.[/]")
    if send and config is None:
        raise _fail("[red]--send needs --config[/]: the person's channels are configured there.")

    async def go(ctx: _Context) -> tuple[EnrollmentLink, list[DeliveryResult]]:
        await _check_person(ctx, tenant, person_id)
        ctx.passkeys.enroll_ttl_s = ttl_s
        link = await ctx.passkeys.issue_enrollment(
            tenant, person_id, actor=f"admin:{getpass.getuser()}"
        )
        sent = await _send(ctx, link) if send else []
        return link, sent

    link, sent = _run(store_url, config, base_url, go, writes=True)
    typer.echo(link.url)
    err = Console(stderr=True)
    err.print(f"valid until {_utc(link.expires_at)}, once", highlight=False)
    for r in sent:
        status = "sent" if r.ok else f"NOT sent ({r.error or r.status})"
        err.print(f"{r.channel}: {status}", highlight=False)
    if send and not any(r.ok for r in sent):
        raise typer.Exit(1)


async def _send(ctx: _Context, link: EnrollmentLink) -> list[DeliveryResult]:
    """Send the link through each channel of the person that has credentials; ledgered."""
    from alertengine.orchestrator.settings import Settings
    from alertengine.orchestrator.wiring import build_channels

    assert ctx.config is not None
    tenant = ctx.config.tenant(link.tenant_id)
    routes = [
        a for a in (tenant.approvers if tenant else []) if person_of(a.approver) == link.person_id
    ]
    settings = Settings.from_env()
    secret = settings.alert_secret.encode()
    webhook_secret = (
        settings.notify_webhook_secret.encode()
        or hmac.new(secret, b"alertengine notify webhook", hashlib.sha256).digest()
    )
    title = "Enroll your passkey"
    text = (
        f"{title} for AlertEngine ({link.tenant_id}). From now on your approvals must be "
        f"signed by your device. Open once, before {_utc(link.expires_at)}:\n{link.url}"
    )
    msg = RenderedMessage(
        tenant_id=link.tenant_id,
        incident_id="",
        kind="incident",
        title=title,
        text=text,
        html=f"<b>{title}</b> for AlertEngine ({link.tenant_id}). Open once, before "
        f"{_utc(link.expires_at)}.",
        approve_url=link.url,
        buttons=(Button("🔐 Enroll passkey", url=link.url),),
    )
    out: list[DeliveryResult] = []
    async with httpx.AsyncClient(timeout=10.0) as http:
        channels = build_channels(settings, http, SystemClock(), webhook_secret=webhook_secret)
        for route in routes:
            channel = channels.get(route.channel)
            if channel is None:
                out.append(DeliveryResult(False, route.channel, error="no credentials"))
                continue
            out.append(await channel.send(route.address, msg))
    for r in out:
        await ctx.passkeys.engine.record(
            link.tenant_id,
            None,
            kind="passkey",
            actor="orchestrator",
            decision="enrollment_link_sent" if r.ok else "enrollment_link_not_sent",
            reason=f"enrollment link for person:{link.person_id} via {r.channel}",
            data={"person": link.person_id, "channel": r.channel, "status": r.status},
        )
    return out


@app.command()
def credentials(
    person_id: Annotated[str | None, typer.Argument(help="Only this person.")] = None,
    tenant: TenantOpt = "",
    config: ConfigOpt = None,
    store_url: StoreUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The passkeys enrolled in a tenant (active and revoked)."""
    if not tenant:
        raise _fail("[red]--tenant is required.[/]")

    async def go(ctx: _Context) -> list[dict[str, object]]:
        found = await ctx.passkeys.credentials.of_person(tenant, person_id)
        return [
            {
                "person": c.person_id,
                "credential_id": c.credential_id,
                "enrolled_at": c.enrolled_at,
                "sign_count": c.sign_count,
                "rp_id": c.rp_id,
                "revoked_at": c.revoked_at,
                "revoked_by": c.revoked_by,
            }
            for c in found
        ]

    rows = _run(store_url, config, None, go, writes=False)
    if as_json:
        print_json(rows)
        return
    table = id_table(
        ("person", "credential", "enrolled", "status"),
        (
            (
                str(r["person"]),
                str(r["credential_id"]),
                _utc(float(str(r["enrolled_at"]))),
                "active" if r["revoked_at"] is None else f"revoked by {r['revoked_by']}",
            )
            for r in rows
        ),
        ids=("credential",),
        title=f"tenant {tenant}: {len(rows)} passkey(s)",
    )
    stdout_console().print(table)


@app.command("revoke-credential")
def revoke_credential(
    credential_id: Annotated[str, typer.Argument(help="From `person credentials`.")],
    tenant: TenantOpt,
    config: ConfigOpt = None,
    store_url: StoreUrlOpt = None,
) -> None:
    """Revoke a passkey (a lost device): ledgered; approvals with it are refused from now."""

    async def go(ctx: _Context) -> str:
        cred = await ctx.passkeys.revoke(tenant, credential_id, actor=f"admin:{getpass.getuser()}")
        return cred.person_id

    person = _run(store_url, config, "http://unused.invalid", go, writes=True)
    typer.echo(
        f"revoked {credential_id} of {person}: enroll a new one with "
        f"`alertengine person enroll {person} --tenant {tenant}`"
    )
