"""``GET /openapi.json`` describes every route with its auth, and schemathesis, driven by that
document against a real `alertengine serve` process, finds no server error (issue 10)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from starlette.routing import Route

from alertengine.notify.slack_webhook import signature as slack_signature
from alertengine.notify.twilio import signature
from tests.api.harness import GITHUB_SECRET, Harness, harness
from tests.scale.cluster import PUSHED, ROOT, SECRETS, SERVICE, TENANT, Proc, config_toml, wait_http
from tests.support.redis_server import free_port

EXAMPLES = int(os.environ.get("ALERTENGINE_SCHEMATHESIS_EXAMPLES", "300"))
TG_SECRET = "tg_secret-" + "y" * 24
TWILIO_TOKEN = "twilio-auth-token-for-openapi"
SLACK_SECRET = "slack-signing-secret-for-openapi-0123"
SCHEMES = {
    "tenantKey",
    "tenantKeyHeader",
    "adminKey",
    "approvalToken",
    "telegramSecret",
    "githubSignature",
    "twilioSignature",
    "slackSignature",
    "dashboardSession",
    "enrollmentToken",
    "personToken",
    "signinLink",
}


@pytest.fixture
async def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    monkeypatch.setenv("API_TEST_GITHUB_SECRET", GITHUB_SECRET)
    async with harness(tmp_path) as env:
        yield env


async def test_the_document_covers_every_mounted_route_with_its_auth(h: Harness):
    r = await h.client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    mounted = {route.path for route in h.app.routes if isinstance(route, Route)}
    assert set(doc["paths"]) == mounted
    methods: dict[str, set[str]] = {}
    for route in h.app.routes:
        if isinstance(route, Route):
            methods.setdefault(route.path, set()).update(
                m.lower() for m in route.methods or () if m != "HEAD"
            )
    for path, wanted in methods.items():
        assert set(doc["paths"][path]) == wanted, path
    assert set(doc["components"]["securitySchemes"]) == SCHEMES
    used: set[str] = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "security" in op, f"{method} {path} does not say how it is authenticated"
            used |= {name for req in op["security"] for name in req}
            assert op["responses"], (method, path)
    assert used == SCHEMES
    # The intake's body limits are the ones enforced.
    assert "1048576 bytes" in doc["paths"]["/intake/health"]["post"]["description"]


# -- schemathesis against a real process ------------------------------------------------------


class Served:
    def __init__(self, url: str, tenant_key: str, session: str, proc: Proc) -> None:
        self.url = url
        self.tenant_key = tenant_key
        self.session = session
        self.proc = proc


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("openapi")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = tmp / "alertengine.toml"
    cfg.write_text(config_toml(base_url=url, receiver="http://127.0.0.1:9"))
    env = {
        **SECRETS,
        "ALERTENGINE_STORE_URL": f"sqlite:///{tmp / 'ae.db'}",
        "TELEGRAM_BOT_TOKEN": "123456:ABC-openapi-test",
        "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
        "TELEGRAM_API_BASE": "http://127.0.0.1:9",
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "SLACK_SIGNING_SECRET": SLACK_SECRET,
    }
    proc = Proc(
        [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg), "--port", str(port),
         "--log-level", "warning"],
        env=env,
        log=tmp / "serve.log",
    )  # fmt: skip
    try:
        asyncio.run(wait_http(f"{url}/healthz", 60, [proc]))
        out = subprocess.run(
            [sys.executable, "-m", "alertengine", "tenant", "rotate-key", TENANT],
            env={**os.environ, **env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        key = out.stdout.strip().splitlines()[-1]
        r = httpx.post(f"{url}/dashboard/signin", data={"api_key": key}, timeout=10)
        assert r.status_code == 303, r.text
        yield Served(url, key, r.cookies["ae_dashboard"], proc)
    finally:
        proc.stop()


def credentials(s: Served, path: str, case: Any) -> dict[str, str]:
    """The credential each route really takes (the document's security), so fuzzing gets
    past authentication into the handlers."""
    if path.startswith("/telegram"):
        return {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
    if path.startswith("/twilio"):
        # Sign what schemathesis will send (string form fields), as Twilio signs: the public
        # URL with its query, then the parameters sorted. Other bodies stay unsigned (403).
        form = case.body if isinstance(case.body, dict) else {}
        query = case.query if isinstance(case.query, dict) else {}
        if all(isinstance(v, str) for v in [*form.values(), *query.values()]):
            url = s.url + path + (f"?{urlencode(query)}" if query else "")
            return {"X-Twilio-Signature": signature(TWILIO_TOKEN, url, form.items())}
        return {}
    if path.startswith("/slack"):
        # Sign the form body schemathesis will send, as Slack signs: "v0:{ts}:{raw body}".
        form = case.body if isinstance(case.body, dict) else {}
        if all(isinstance(v, str) for v in form.values()):
            ts = str(int(time.time()))
            raw = urlencode(form).encode()
            return {
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": slack_signature(SLACK_SECRET, ts, raw),
            }
        return {}
    if path.startswith("/dashboard"):
        return {"Cookie": f"ae_dashboard={s.session}"}
    if path.startswith("/commits"):
        body = case.body if isinstance(case.body, (bytes, str)) else b""
        raw = body.encode() if isinstance(body, str) else body
        sig = hmac.new(GITHUB_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": f"sha256={sig}"}
    return {"Authorization": f"Bearer {s.tenant_key}"}


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(served: Served):
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 20
    strategy = st.one_of(
        schema.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE),
    )
    called: set[str] = set()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, authed=st.integers(0, 3))
    def property_no_server_error(case: Any, authed: int) -> None:
        path = case.operation.path
        headers = credentials(served, path, case) if authed else {}
        if path.startswith("/intake"):
            case.query = {**(case.query or {}), "service": PUSHED}
        case.call_and_validate(
            base_url=served.url, headers=headers, checks=[not_a_server_error], timeout=30
        )
        called.add(f"{case.method} {path}")

    property_no_server_error()
    assert len(called) >= len(operations) // 2, called  # reached most operations
    assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200
    log = served.proc.tail(100_000)
    assert "Traceback" not in log, log[-3000:]
    assert SERVICE  # the polled target exists; pushes go to the push-only one
