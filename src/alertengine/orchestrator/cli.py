"""``alertengine serve`` and ``alertengine check-config``."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer
import uvicorn
from rich.console import Console

from alertengine.authorize.tokens import SecretError
from alertengine.orchestrator.config import Config, ConfigError, load_config
from alertengine.orchestrator.settings import SecretSettingError, Settings
from alertengine.policy import PolicyError

app = typer.Typer()
err = Console(stderr=True, soft_wrap=True)

CONFIG_OPT = typer.Option(Path("alertengine.toml"), "--config", "-c", help="the TOML config")


def _load(path: Path) -> Config:
    try:
        config = load_config(path)
        Settings.from_env()  # environment errors surface before anything starts
        return config
    except (ConfigError, PolicyError) as exc:
        err.print(f"[bold red]config error:[/] {exc}")
        raise typer.Exit(2) from None


def store_url_for(config: Config, settings: Settings, override: str | None) -> str:
    """--store-url / --redis-url, then ALERTENGINE_STORE_URL, then REDIS_URL, then the file."""
    return override or settings.store_url or settings.redis_url or config.orchestrator.store_url


@app.command("check-config")
def check_config(config: Path = CONFIG_OPT) -> None:
    """Validate the config file and the environment's secrets; print the effective policies."""
    cfg = _load(config)
    settings = Settings.from_env()
    demo = cfg.orchestrator.demo
    try:
        from alertengine.authorize.tokens import check_secret

        check_secret(settings.alert_secret or None, demo=demo)
        settings.ledger_key_bytes(demo=demo)
    except (SecretError, SecretSettingError) as exc:
        err.print(f"[bold red]secret error:[/] {exc}")
        raise typer.Exit(2) from None
    for t in cfg.tenants:
        typer.echo(
            f"tenant {t.id}: policy {cfg.policy_for(t.id).version}, "
            f"{len(t.approvers)} approver channel(s)"
        )
    typer.echo(f"{len(cfg.targets)} target(s); store {store_url_for(cfg, settings, None)}")
    typer.echo("config OK")


@app.command()
def serve(
    config: Path = CONFIG_OPT,
    host: str | None = typer.Option(None, help="listen address (default: from the config)"),
    port: int | None = typer.Option(None, help="listen port (default: from the config)"),
    store_url: str | None = typer.Option(None, "--store-url", help="sqlite:///… or redis://…"),
    redis_url: str | None = typer.Option(None, "--redis-url", help="shorthand for a Redis store"),
    log_level: str = typer.Option("info", help="debug | info | warning | error"),
) -> None:
    """Run the orchestrator: poll targets, run the incident pipeline, serve the API and pages."""
    cfg = _load(config)
    settings = Settings.from_env()
    if settings.loop_interval_s is not None:
        cfg = cfg.model_copy(
            update={
                "orchestrator": cfg.orchestrator.model_copy(
                    update={"loop_interval_s": settings.loop_interval_s}
                )
            }
        )
    demo = cfg.orchestrator.demo
    try:
        ledger_key = settings.ledger_key_bytes(demo=demo)
    except SecretSettingError as exc:
        err.print(f"[bold red]secret error:[/] {exc}")
        raise typer.Exit(2) from None
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
