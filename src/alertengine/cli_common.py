"""What every ``alertengine`` sub-command shares: the store option and output that never lies.

- One name for the store everywhere: ``--store-url`` (as ``serve`` and ``ledger report``
  always had). ``--url``, the older spelling of some commands, still works, hidden, with a
  deprecation note on stderr.
- Tables never cut an id: a person copies an id from ``dlq list`` into ``dlq replay``. When
  stdout is not a terminal (a pipe, a file, CI) Rich would assume 80 columns and shorten
  cells with "…"; here the console is as wide as the content instead, and id columns fold
  rather than truncate on a narrow terminal.
- ``--json`` gives the same data, machine-readable, on every listing and show command.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from alertengine.ledger.tools import ENV_STORE_URL

#: Wide enough for any row we print; Rich lays a table out no wider than its content.
_PIPE_WIDTH = 10_000

StoreUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--store-url",
        help=f"Store URL, sqlite:///… or redis://… (default: ${ENV_STORE_URL} or "
        "sqlite:///var/alertengine.db).",
        show_default=False,
    ),
]
LegacyUrlOpt = Annotated[
    str | None,
    typer.Option("--url", hidden=True, help="Deprecated spelling of --store-url."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (JSON).")]


def store_url_option(store_url: str | None, legacy_url: str | None) -> str | None:
    """``--store-url``, else the deprecated ``--url`` (with a note saying so)."""
    if legacy_url and not store_url:
        Console(stderr=True).print(
            "[yellow]note:[/] --url is deprecated; use --store-url", highlight=False
        )
    return store_url or legacy_url


def stdout_console() -> Console:
    """A console for tables: the terminal's width on a tty, unbounded when piped."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=_PIPE_WIDTH)


def id_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    ids: Collection[str] = (),
    title: str | None = None,
) -> Table:
    """A table whose ``ids`` columns keep every id whole: Rich shrinks the other columns
    first, and only on a terminal narrower than one id does it fold (never "…")."""
    body = [list(r) for r in rows]
    table = Table(title=title)
    for i, name in enumerate(columns):
        if name in ids:
            widest = max((len(r[i]) for r in body), default=0)
            table.add_column(name, overflow="fold", min_width=max(widest, len(name)))
        else:
            table.add_column(name)
    for r in body:
        table.add_row(*r)
    return table


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour codes, whatever the terminal)."""
    typer.echo(json.dumps(data, indent=2, default=str))
