"""The one command-line tool: ``alertengine``.

Each area registers its own Typer sub-app here; the modules stay importable without the CLI.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="alertengine",
    help="Human-authorized incident recovery: detect, diagnose, approve, execute, audit.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Human-authorized incident recovery: detect, diagnose, approve, execute, audit."""


def _register() -> None:
    # Sub-apps are added as their modules land; each import is cheap and side-effect free.
    import importlib

    for module, name in (
        ("alertengine.ledger.cli", "ledger"),
        ("alertengine.orchestrator.cli", None),
        ("alertengine.tenants.cli", "tenant"),
        ("alertengine.people.cli", "person"),
        ("alertengine.execute.cli", "dlq"),
        ("alertengine.oncall.cli", "oncall"),
        ("alertengine.oncall.cli:silence_app", "silence"),
        ("alertengine.simulate.cli", None),
        ("alertengine.passkeys.cli", "person"),
        ("alertengine.people.signin_cli", "person"),
        ("alertengine.demo", None),
    ):
        module, _, attr = module.partition(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        sub = getattr(mod, attr or "app")
        shared = next((g.typer_instance for g in app.registered_groups if g.name == name), None)
        if name and shared is not None:
            # Several areas add verbs to one group (``person``: the registry and passkeys).
            shared.registered_commands.extend(sub.registered_commands)
        elif name:
            app.add_typer(sub, name=name)
        else:
            for cmd in sub.registered_commands:
                app.registered_commands.append(cmd)


_register()


def main() -> None:
    app()
