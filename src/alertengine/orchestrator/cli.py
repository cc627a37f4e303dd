"""``alertengine serve`` and ``alertengine check-config``."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import typer
import uvicorn
from rich.console import Console
from rich.markup import escape

from alertengine.authorize.tokens import SecretError
from alertengine.orchestrator.config import Config, ConfigError, load_config
from alertengine.orchestrator.preflight import Preflight, preflight
from alertengine.orchestrator.settings import EnvSettingError, Settings
from alertengine.policy import PolicyError

app = typer.Typer()
err = Console(stderr=True, soft_wrap=True)

CONFIG_OPT = typer.Option(Path("alertengine.toml"), "--config", "-c", help="the TOML config")
ALLOW_UNREACHABLE_OPT = typer.Option(
    False,
    "--allow-unreachable-approvers",
    help="start even if some approver's channel has no credentials (warned, shown in status "
    "and on the dashboard)",
)


def _load(path: Path) -> Config:
    try:
        config = load_config(path)
        Settings.from_env()  # environment errors surface before anything starts
        return config
    except (ConfigError, PolicyError, EnvSettingError) as exc:
        err.print(f"[bold red]config error:[/] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


def store_url_for(config: Config, settings: Settings, override: str | None) -> str:
    """--store-url / --redis-url, then ALERTENGINE_STORE_URL, then REDIS_URL, then the file."""
    return override or settings.store_url or settings.redis_url or config.orchestrator.store_url


def _store_origin(settings: Settings, override: str | None) -> tuple[str, str] | None:
    """Where the store URL comes from when not from the file (it was checked on parsing)."""
    if override:
        return "--store-url", override
    if settings.store_url:
        return "ALERTENGINE_STORE_URL", settings.store_url
    if settings.redis_url:
        return "REDIS_URL", settings.redis_url
    return None


def _checked(
    path: Path, *, allow_unreachable: bool, store_override: str | None = None
) -> tuple[Config, Settings, Preflight]:
    """The config and settings, or exit 2 with one line per problem (each names its field)."""
    cfg = _load(path)
    settings = Settings.from_env()
    report = preflight(
        cfg,
        settings,
        os.environ,
        store_url=_store_origin(settings, store_override),
        allow_unreachable_approvers=allow_unreachable,
    )
    for line in report.warnings:
        err.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False)
    if not report.ok:
        for line in report.problems:
            err.print(f"[bold red]config error:[/] {escape(line)}", highlight=False)
        if len(report.problems) > 1:
            err.print(f"{len(report.problems)} problems; nothing started.", highlight=False)
        raise typer.Exit(2)
    return cfg, settings, report


@app.command("check-config")
def check_config(
    config: Path = CONFIG_OPT, allow_unreachable_approvers: bool = ALLOW_UNREACHABLE_OPT
) -> None:
    """Validate the config file and the environment's secrets; print the effective policies
    and, per approver, which channels can reach them."""
    cfg, settings, report = _checked(config, allow_unreachable=allow_unreachable_approvers)
    people = report.by_approver()
    for t in cfg.tenants:
        persons = t.persons()
        typer.echo(
            f"tenant {t.id}: policy {cfg.policy_for(t.id).version}, "
            f"{len(persons)} approver(s) (people), "
            f"{sum(len(p.channels) for p in persons)} channel(s)"
        )
        if t.approvers:
            explicit = {p.id for p in t.people}
            derived = [
                p
                for p in persons
                if p.id not in explicit
                or p.channels != next((q.person().channels for q in t.people if q.id == p.id), ())
            ]
            typer.echo(
                "  note: the flat `approvers` list is deprecated; write [[tenants.people]] "
                "instead. People derived from it (entries sharing an identity are one person):"
            )
            for p in derived:
                kinds = ", ".join(c.kind for c in p.channels)
                typer.echo(f"    {p.actor} ({p.name}): {kinds}")
        for (tenant_id, identity), entries in people.items():
            if tenant_id != t.id:
                continue
            can = [r.channel for r in entries if r.ok]
            cannot = [f"{r.channel} ({r.missing})" for r in entries if not r.ok]
            line = f"  approver {identity}: reachable via {', '.join(can) or 'NOTHING'}"
            typer.echo(line + (f"; not via {', '.join(cannot)}" if cannot else ""))
    typer.echo(f"{len(cfg.targets)} target(s); store {store_url_for(cfg, settings, None)}")
    typer.echo("config OK" if not report.warnings else "config OK, with warnings (see above)")


@app.command()
def serve(
    config: Path = CONFIG_OPT,
    host: str | None = typer.Option(None, help="listen address (default: from the config)"),
    port: int | None = typer.Option(None, help="listen port (default: from the config)"),
    store_url: str | None = typer.Option(None, "--store-url", help="sqlite:///… or redis://…"),
    redis_url: str | None = typer.Option(None, "--redis-url", help="shorthand for a Redis store"),
    log_level: str = typer.Option("info", help="debug | info | warning | error"),
    allow_unreachable_approvers: bool = ALLOW_UNREACHABLE_OPT,
) -> None:
    """Run the orchestrator: poll targets, run the incident pipeline, serve the API and pages."""
    cfg, settings, _ = _checked(
        config,
        allow_unreachable=allow_unreachable_approvers,
        store_override=store_url or redis_url,
    )
    if settings.loop_interval_s is not None:
        cfg = cfg.model_copy(
            update={
                "orchestrator": cfg.orchestrator.model_copy(
                    update={"loop_interval_s": settings.loop_interval_s}
                )
            }
        )
    ledger_key = settings.ledger_key_bytes(demo=cfg.orchestrator.demo)  # checked above
    url = store_url_for(cfg, settings, store_url or redis_url)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    from alertengine.log_redaction import install_url_redaction

    install_url_redaction()

    from alertengine.orchestrator.runtime import build_runtime, create_app
    from alertengine.stores.factory import open_stores

    ledger, store = open_stores(url, ledger_key=ledger_key)

    async def main() -> None:
        # One event loop for everything: stores, HTTP clients and the server share it.
        rt = await build_runtime(cfg, ledger=ledger, store=store, settings=settings)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(rt),
                host=host or cfg.orchestrator.host,
                port=port if port is not None else cfg.orchestrator.port,
                log_level=log_level,
                access_log=False,
            )
        )
        try:
            await server.serve()
        finally:
            await rt.http.aclose()
            await ledger.close()
            await store.close()

    try:
        asyncio.run(main())
    except SecretError as exc:
        err.print(f"[bold red]secret error:[/] {exc}")
        raise typer.Exit(2) from None
