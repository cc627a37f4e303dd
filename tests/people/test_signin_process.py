"""Person sign-in end to end on real processes: ``alertengine serve`` with the fake Telegram
on loopback, and the CLI as a child process. ``person login`` prints a code; the link arrives
in Alice's Telegram chat; "Alice" opens it (GET changes nothing) and confirms; the CLI saves
the token (0600); later ``person ack`` acknowledges the incident as person:alice via cli and
the escalation to Bob stops. A tenant key alone cannot acknowledge."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.scale.cluster import ADMIN, ROOT, SECRETS, Proc, until, wait_http
from tests.support.fakes.telegram import FakeTelegram
from tests.support.redis_server import free_port
from tests.support.servers import serve
from tests.support.wired import DEGRADED

ESCALATE_S = 6.0
HEALTHY = {
    "status": "ok",
    "health_score": {"score": 97, "status": "ok", "trend": "stable"},
    "metrics": {"overall_p95_ms": 40.0, "error_rate": 0.0, "sample_size": 250},
    "alerts": [],
}


def config(tmp: Path, port: int, health: str, store: str) -> Path:
    p = tmp / "alertengine.toml"
    p.write_text(
        f"""
[orchestrator]
store_url = "{store}"
base_url = "http://127.0.0.1:{port}"
loop_interval_s = 0.3

[[tenants]]
id = "acme"
[[tenants.people]]
id = "alice"
name = "Alice"
channels = [{{ channel = "telegram", address = "1001" }}]
[[tenants.people]]
id = "bob"
channels = [{{ channel = "telegram", address = "1002" }}]

[tenants.policy]
validate_after_polls = 2
escalate_after_s = {ESCALATE_S}
ack_timeout_s = 3600

[[targets]]
tenant = "acme"
service = "checkout"
health_url = "{health}/health/alerts"
recovery_webhook = "http://127.0.0.1:9/never"
webhook_secret_env = "SCALE_RECOVERY_SECRET"
poll_timeout_s = 1.0
"""
    )
    return p


def health_app(state: dict[str, Any]) -> Starlette:
    async def health(_: Request) -> JSONResponse:
        return JSONResponse(state["body"])

    return Starlette(routes=[Route("/health/alerts", health)])


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertengine", *args],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.slow
async def test_cli_login_confirm_from_the_phone_then_ack(tmp_path: Path) -> None:
    tg = FakeTelegram()
    state: dict[str, Any] = {"body": HEALTHY}
    port = free_port()
    store = f"sqlite:///{tmp_path / 'ae.db'}"
    base = f"http://127.0.0.1:{port}"
    with serve(tg.app) as tg_url, serve(health_app(state)) as health_url:
        cfg = config(tmp_path, port, health_url, store)
        env = {**SECRETS, "TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_API_BASE": tg_url}
        proc = Proc(
            [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg),
             "--port", str(port), "--log-level", "warning"],
            env=env, log=tmp_path / "serve.log",
        )  # fmt: skip
        try:
            await wait_http(f"{base}/healthz", 60, [proc])
            rotated = cli("tenant", "rotate-key", "acme", "--store-url", store, env=env)
            assert rotated.returncode == 0, rotated.stderr
            key = rotated.stdout.strip().splitlines()[-1]
            user_env = {
                **env,
                "ALERTENGINE_API_KEY": key,
                "XDG_CONFIG_HOME": str(tmp_path / "config"),
            }
            # Not signed in yet: ack says how to sign in (exit 2).
            early = cli("person", "ack", "inc-x", "--server", base, env=user_env)
            assert early.returncode == 2 and "person login" in early.stderr

            login = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "alertengine", "person", "login", "alice",
                "--server", base, "--tenant", "acme",
                cwd=ROOT, env={**os.environ, **user_env},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip

            async def link() -> str | None:
                for m in tg.sent:
                    if m["chat_id"] == "1001" and "Sign-in request" in m["text"]:
                        return str(m["reply_markup"]["inline_keyboard"][0][0]["url"])
                return None

            url = await until(link, 60, "the sign-in link never reached Alice's chat")
            async with httpx.AsyncClient(timeout=10) as c:
                page = await c.get(url)  # a chat app's prefetch, or Alice looking
                assert page.status_code == 200 and "tenant:acme" in page.text
                code = url.split("c=", 1)[1]
                ok = await c.post(
                    f"{base}/people/signin/confirm", data={"c": code, "decision": "confirm"}
                )
                assert ok.status_code == 200 and "Confirmed" in ok.text, ok.text
            out, err = await asyncio.wait_for(login.communicate(), 60)
            assert login.returncode == 0, err.decode()
            shown = err.decode()
            assert "Code:" in shown and "telegram" in shown
            user_code = shown.split("Code:", 1)[1].split()[0]
            assert user_code in page.text  # the code Alice saw is the one on the terminal
            creds = tmp_path / "config" / "alertengine" / "credentials.json"
            assert stat.S_IMODE(creds.stat().st_mode) == 0o600
            saved = json.loads(creds.read_text())
            (entry,) = saved.values()
            assert entry["person"] == "alice" and entry["token"].startswith("aep_")

            who = cli("person", "whoami", "--json", env=user_env)
            assert who.returncode == 0 and json.loads(who.stdout)["actor"] == "person:alice"

            state["body"] = DEGRADED
            async with httpx.AsyncClient(timeout=10) as c:

                async def incident() -> str | None:
                    r = await c.get(f"{base}/incidents", params={"tenant": "acme"}, headers=ADMIN)
                    for i in r.json()["incidents"]:
                        if i["stage"] == "VALIDATED" and i["token"]:
                            return str(i["incident_id"])
                    return None

                inc = await until(incident, 60, "no incident awaiting approval")
                asked_at = time.monotonic()
                # The tenant key alone names nobody: refused.
                r = await c.post(
                    f"{base}/incidents/{inc}/ack", headers={"Authorization": f"Bearer {key}"}
                )
                assert r.status_code == 403 and "person login" in r.json()["error"]
            acked = cli("person", "ack", inc, "--server", base, "--tenant", "acme", env=user_env)
            assert acked.returncode == 0, acked.stderr
            assert "Acknowledged" in acked.stdout
            assert time.monotonic() - asked_at < ESCALATE_S, "too slow to prove escalation stops"
            again = cli("person", "ack", inc, "--json", env=user_env)
            assert again.returncode == 0 and "already" in json.loads(again.stdout)["message"]
            # Escalation would have reached Bob after ESCALATE_S: it waits instead.
            await asyncio.sleep(ESCALATE_S + 2)
            assert not any(
                m["chat_id"] == "1002"
                and "Sign-in" not in m["text"]
                and "acknowledged" not in m["text"]
                for m in tg.sent
            ), tg.sent
            async with httpx.AsyncClient(timeout=10) as c:
                r = await c.get(
                    f"{base}/ledger", params={"tenant": "acme", "limit": 1000}, headers=ADMIN
                )
                entries = r.json()["entries"]
            acks = [(e["actor"], e["data"]["via"]) for e in entries if e["kind"] == "ack"]
            assert acks == [("person:alice", "cli")]
            assert not [e for e in entries if e["kind"] == "escalation"]
            steps = [e["decision"] for e in entries if e["kind"] == "signin"]
            assert steps[:4] == ["requested", "link delivered", "confirmed", "token issued"]
            dump = json.dumps(entries)
            assert entry["token"] not in dump and code not in dump

            # Rotating the tenant's key does not end person tokens (the person's own channel
            # proved them, not the key); the operator ends them with --all-for.
            again_rotated = cli("tenant", "rotate-key", "acme", "--store-url", store, env=env)
            assert again_rotated.returncode == 0, again_rotated.stderr
            new_key = again_rotated.stdout.strip().splitlines()[-1]
            assert cli("person", "whoami", env=user_env).returncode == 0
            ended = cli("person", "logout", "--all-for", "alice", "--server", base,
                        "--tenant", "acme", "--json",
                        env={**user_env, "ALERTENGINE_API_KEY": new_key})  # fmt: skip
            assert ended.returncode == 0, ended.stderr
            assert json.loads(ended.stdout)["revoked"] == 1
            refused = cli("person", "whoami", env=user_env)
            # Exit 2 as documented: the saved sign-in is no longer valid, log in again.
            assert refused.returncode == 2 and "revoked" in refused.stderr
            assert "alertengine person login" in refused.stderr
            out_ = cli("person", "logout", env=user_env)
            assert out_.returncode == 0, out_.stderr
            assert json.loads(creds.read_text()) == {}
            gone = cli("person", "ack", inc, "--server", base, env=user_env)
            assert gone.returncode == 2
            # Neither the process log nor the CLI's output holds the token or the link's code.
            for text in ((tmp_path / "serve.log").read_text(), out.decode(), shown):
                assert entry["token"] not in text and code not in text
        finally:
            proc.stop()
