"""``alertengine person login | logout | whoami | ack``: act as yourself from a terminal.

``login`` asks a running orchestrator (``--server``) to sign you in as a person of a tenant,
with the tenant's API key (``ALERTENGINE_API_KEY``, or the variable ``--api-key-env`` names):
it prints the code, a link goes to your own phone (Telegram, WhatsApp, …), you confirm there,
and the person token is saved in ``$XDG_CONFIG_HOME/alertengine/credentials.json`` (mode
0600), keyed by server, tenant and person. ``ack INCIDENT`` acknowledges ("I'm on it") with
it. Exit codes: 0 done, 1 refused by the server (the reason is printed), 2 usage or
unreachable server / missing credentials.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console

from alertengine.cli_common import JsonOpt, print_json

app = typer.Typer(help="Person sign-in from the terminal.", no_args_is_help=True)

ENV_API_KEY = "ALERTENGINE_API_KEY"
ENV_SERVER = "ALERTENGINE_SERVER"

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar=ENV_SERVER,
        help=f"The orchestrator's URL (or {ENV_SERVER}).",
        show_default=False,
    ),
]
TenantOpt = Annotated[str | None, typer.Option("--tenant", help="The tenant.")]
PersonOpt = Annotated[
    str | None, typer.Option("--person", help="Which saved sign-in (if several).")
]


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "alertengine" / "credentials.json"


def _key(server: str, tenant: str, person: str) -> str:
    return f"{server.rstrip('/')}|{tenant}|{person}"


def load_credentials() -> dict[str, dict[str, Any]]:
    path = credentials_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        _err().print(f"[red]{path} is unreadable[/]: remove it and log in again")
        raise typer.Exit(2) from None
    return data if isinstance(data, dict) else {}


def save_credentials(data: dict[str, dict[str, Any]]) -> None:
    """Written 0600 from the start (never world-readable, not even for a moment)."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def pick(server: str | None, tenant: str | None, person: str | None) -> tuple[str, dict[str, Any]]:
    """The one saved sign-in matching the filters, or exit 2 saying what to do."""
    creds = load_credentials()
    found = [
        (k, v)
        for k, v in creds.items()
        if (server is None or v.get("server") == server.rstrip("/"))
        and (tenant is None or v.get("tenant") == tenant)
        and (person is None or v.get("person") == person)
    ]
    if not found:
        hint = f"--server {server or 'URL'} --tenant {tenant or 'T'} {person or 'PERSON'}"
        _err().print(f"[red]not signed in[/]: run `alertengine person login {hint}`")
        raise typer.Exit(2)
    if len(found) > 1:
        names = ", ".join(k for k, _ in found)
        _err().print(f"[red]several sign-ins match[/] ({names}): add --server/--tenant/--person")
        raise typer.Exit(2)
    return found[0]


def _call(fn: Callable[[], httpx.Response], server: str) -> httpx.Response:
    try:
        return fn()
    except httpx.HTTPError as exc:
        _err().print(f"[red]cannot reach {server}[/]: {type(exc).__name__}: {exc}")
        raise typer.Exit(2) from None


def _reason(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body)
    return str(body)


def _refused(r: httpx.Response, as_json: bool, what: str) -> typer.Exit:
    if as_json:
        print_json({"ok": False, "status": r.status_code, "error": _reason(r)})
    else:
        _err().print(f"[red]{what} refused ({r.status_code})[/]: {_reason(r)}")
    return typer.Exit(1)


def _no_longer_valid(
    r: httpx.Response, as_json: bool, srv: str, cred: Mapping[str, Any]
) -> typer.Exit:
    """The server no longer takes the saved token (expired, revoked): exit 2, say how to
    sign in again."""
    again = f"alertengine person login --server {srv} --tenant {cred['tenant']} {cred['person']}"
    if as_json:
        print_json({"ok": False, "status": r.status_code, "error": _reason(r), "next": again})
    else:
        _err().print(f"[red]your sign-in is no longer valid[/] ({_reason(r)}): run `{again}`")
    return typer.Exit(2)


@app.command()
def login(
    person: Annotated[str, typer.Argument(help="Your person id in the tenant, e.g. alice.")],
    server: ServerOpt = None,
    tenant: Annotated[str, typer.Option("--tenant", help="Your tenant.")] = "",
    api_key_env: Annotated[
        str, typer.Option("--api-key-env", help="Variable holding the tenant's API key.")
    ] = ENV_API_KEY,
    timeout_s: Annotated[
        float, typer.Option("--timeout", help="Give up after this many seconds.")
    ] = 600.0,
    as_json: JsonOpt = False,
) -> None:
    """Sign in as PERSON: a link goes to your own phone; confirm there; the token is saved."""
    if not server or not tenant:
        _err().print("[red]--server and --tenant are required[/]")
        raise typer.Exit(2)
    key = os.environ.get(api_key_env, "").strip()
    if not key:
        _err().print(f"[red]{api_key_env} is not set[/]: the tenant's API key asks for sign-in")
        raise typer.Exit(2)
    server = server.rstrip("/")
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(
        base_url=server, timeout=15.0, headers={"User-Agent": "alertengine-cli"}
    ) as c:
        r = _call(
            lambda: c.post(
                "/people/signin", params={"tenant": tenant}, json={"person": person}, headers=auth
            ),
            server,
        )
        if r.status_code != 201:
            raise _refused(r, as_json, "sign-in")
        pending = r.json()
        sent = ", ".join(pending.get("sent_to") or []) or "nowhere (no channel accepted it)"
        err = _err()
        err.print(
            f"Code: [bold]{pending['user_code']}[/]  — a link was sent to "
            f"{pending.get('person_name') or person}'s {sent}.\n"
            "Open it on your phone, check it shows this code, and confirm."
        )
        deadline = time.monotonic() + timeout_s
        interval = float(pending.get("interval_s", 2.0))
        with err.status("Waiting for your confirmation…"):
            while True:
                p = _call(
                    lambda: c.post(
                        "/people/signin/poll",
                        params={"tenant": tenant},
                        json={"device_code": pending["device_code"]},
                        headers=auth,
                    ),
                    server,
                )
                if p.status_code == 200:
                    break
                if p.status_code != 202:
                    raise _refused(p, as_json, "sign-in")
                if time.monotonic() > deadline:
                    err.print("[red]gave up waiting[/]: nobody confirmed in time")
                    raise typer.Exit(1)
                time.sleep(interval)
    got = p.json()
    creds = load_credentials()
    creds[_key(server, tenant, person)] = {
        "server": server,
        "tenant": tenant,
        "person": person,
        "token": got["token"],
        "expires_at": got["expires_at"],
    }
    save_credentials(creds)
    if as_json:
        print_json(
            {"ok": True, "tenant": tenant, "person": person, "expires_at": got["expires_at"]}
        )
    else:
        typer.echo(f"Signed in as person:{person} ({tenant}) on {server}.")


@app.command()
def whoami(
    server: ServerOpt = None,
    tenant: TenantOpt = None,
    person: PersonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Who your saved person token names (asks the server)."""
    _key, cred = pick(server, tenant, person)
    srv = str(cred["server"])
    auth = {"Authorization": f"Bearer {cred['token']}"}
    r = _call(lambda: httpx.get(f"{srv}/people/whoami", headers=auth, timeout=15.0), srv)
    if r.status_code == 401:
        raise _no_longer_valid(r, as_json, srv, cred)
    if r.status_code != 200:
        raise _refused(r, as_json, "whoami")
    if as_json:
        print_json({**r.json(), "server": srv})
    else:
        b = r.json()
        typer.echo(f"{b['actor']} ({b['name']}) of tenant {b['tenant_id']} on {srv}")


@app.command()
def logout(
    server: ServerOpt = None,
    tenant: TenantOpt = None,
    person: PersonOpt = None,
    all_for: Annotated[
        str | None,
        typer.Option(
            "--all-for",
            help="Operator: end every token of this person (with the tenant's API key, "
            "--server and --tenant), e.g. a lost laptop; nothing saved here is used.",
            show_default=False,
        ),
    ] = None,
    api_key_env: Annotated[
        str, typer.Option("--api-key-env", help="Variable holding the tenant's API key.")
    ] = ENV_API_KEY,
    as_json: JsonOpt = False,
) -> None:
    """Revoke your person token on the server and forget it here (or, with --all-for, every
    token of a person: ``DELETE /people/{id}/tokens`` with the tenant's key)."""
    if all_for is not None:
        _logout_all(all_for, server, tenant, api_key_env, as_json)
        return
    key, cred = pick(server, tenant, person)
    srv = str(cred["server"])
    auth = {"Authorization": f"Bearer {cred['token']}"}
    r = _call(lambda: httpx.delete(f"{srv}/people/signin/token", headers=auth, timeout=15.0), srv)
    creds = load_credentials()
    creds.pop(key, None)
    save_credentials(creds)
    # A token the server already refuses (expired, revoked) is forgotten all the same.
    if r.status_code not in (200, 401):
        raise _refused(r, as_json, "logout")
    if as_json:
        print_json({"ok": True, "forgotten": key})
    else:
        typer.echo(f"Signed out: person:{cred['person']} ({cred['tenant']}) on {srv}.")


def _logout_all(
    person: str, server: str | None, tenant: str | None, api_key_env: str, as_json: bool
) -> None:
    if not server or not tenant:
        _err().print("[red]--all-for needs --server and --tenant[/]")
        raise typer.Exit(2)
    key = os.environ.get(api_key_env, "").strip()
    if not key:
        _err().print(f"[red]{api_key_env} is not set[/]: ending a person's tokens takes the key")
        raise typer.Exit(2)
    srv = server.rstrip("/")
    r = _call(
        lambda: httpx.delete(
            f"{srv}/people/{quote(person, safe='')}/tokens",
            params={"tenant": tenant},
            headers={"Authorization": f"Bearer {key}"},
            timeout=15.0,
        ),
        srv,
    )
    if r.status_code != 200:
        raise _refused(r, as_json, "logout")
    count = int(r.json().get("revoked", 0))
    if as_json:
        print_json({"ok": True, "person": person, "tenant_id": tenant, "revoked": count})
    else:
        typer.echo(f"Revoked {count} token(s) of person:{person} ({tenant}) on {srv}.")


@app.command()
def ack(
    incident_id: Annotated[str, typer.Argument(help="The incident to acknowledge.")],
    server: ServerOpt = None,
    tenant: TenantOpt = None,
    person: PersonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge ("I'm on it") as your signed-in person: escalation waits; approves nothing."""
    _, cred = pick(server, tenant, person)
    srv = str(cred["server"])
    auth = {"Authorization": f"Bearer {cred['token']}"}
    r = _call(
        lambda: httpx.post(f"{srv}/incidents/{incident_id}/ack", headers=auth, timeout=15.0), srv
    )
    body: dict[str, Any] = {}
    try:
        body = r.json()
    except ValueError:
        pass
    if r.status_code == 401:
        raise _no_longer_valid(r, as_json, srv, cred)
    if r.status_code != 200 or not body.get("ok"):
        raise _refused(r, as_json, "acknowledge")
    if as_json:
        print_json(body)
    else:
        typer.echo(body.get("message", "Acknowledged."))
