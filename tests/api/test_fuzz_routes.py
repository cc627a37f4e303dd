"""Property: no request to any route of the orchestrator gets a 5xx, and the app lives on.

Hypothesis throws arbitrary JSON and bytes, with every content type, at every route the real
app mounts (read from the app itself, so a new route is fuzzed the day it is added), with the
methods it takes and a few it does not, under valid and invalid auth of every kind the routes
use: tenant and admin API keys, another tenant's key, approval-link tokens, the Telegram
secret header, GitHub signatures over the very body sent, a dashboard session cookie.
In-process over ASGI (raise_app_exceptions: a crash surfaces with its traceback).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Mount, Route

from tests.api.harness import GITHUB_SECRET, Harness, harness

EXAMPLES = int(os.environ.get("ALERTENGINE_FUZZ_EXAMPLES", "400"))

# Every query parameter any route reads, plus noise.
PARAMS = [
    "tenant", "service", "token", "limit", "after_seq", "since", "until", "open", "incident",
    "p95_ms", "error_rate", "sample_size", "api_key", "key", "x",
]  # fmt: skip
AUTH_KINDS = [
    "none", "tenant", "other_tenant", "admin", "bogus_bearer", "x_api_key", "telegram",
    "telegram_wrong", "github_signed", "github_forged", "session", "session_forged",
]  # fmt: skip
CONTENT_TYPES = [
    None, "application/json", "application/x-www-form-urlencoded", "text/plain",
    "multipart/form-data; boundary=xyz", "application/json; charset=latin-1",
]  # fmt: skip
EXTRA_METHODS = ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


def preferred_auth(template: str) -> list[str]:
    """The credentials a route really takes: half the examples use them, to get past auth."""
    if template.startswith("/telegram"):
        return ["telegram"]
    if template.startswith("/commits"):
        return ["github_signed"]
    if template.startswith("/dashboard"):
        return ["session"]
    if template.startswith("/action"):
        return ["none", "tenant"]
    return ["tenant", "admin", "x_api_key"]


@dataclass(frozen=True)
class Endpoint:
    template: str
    methods: tuple[str, ...]


def endpoints(h: Harness) -> list[Endpoint]:
    out = []
    for r in h.app.routes:
        if isinstance(r, Route):
            out.append(Endpoint(r.path, tuple(sorted(r.methods or ("GET",)))))
        elif isinstance(r, Mount):
            out.append(Endpoint(r.path + "/{path}", ("GET",)))
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
# Shapes the routes look for, so fuzzing gets past "not an object" into the handlers.
shaped = st.fixed_dictionaries(
    {},
    optional={
        "alerts": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "labels": st.dictionaries(
                        st.sampled_from(["service", "job", "alertname", "x"]),
                        st.text(max_size=12) | st.sampled_from(["checkout", "billing"]),
                    )
                    | json_values,
                    "status": st.sampled_from(["firing", "resolved"]) | json_values,
                },
            ),
            max_size=3,
        ),
        "status": st.sampled_from(["firing", "critical", "ok"]) | json_values,
        "service": st.sampled_from(["checkout", "billing", ""]) | json_values,
        "health_score": st.fixed_dictionaries({}, optional={"score": json_values}) | json_values,
        "metrics": st.dictionaries(
            st.sampled_from(["overall_p95_ms", "error_rate", "sample_size"]), json_values
        ),
        "token": st.text(max_size=40) | json_values,
        "callback_query": st.fixed_dictionaries(
            {},
            optional={
                "id": st.text(max_size=8) | json_values,
                "from": st.fixed_dictionaries({"id": st.integers() | json_values}),
                "data": st.text(max_size=30) | json_values,
            },
        )
        | json_values,
        "commits": st.lists(json_values, max_size=3) | json_values,
    },
)
nasty_bytes = st.sampled_from(
    [
        b"[" * 50_000,
        b'{"a":' * 3_000,
        b'{"labels": {"job": "\\ud800"}}',
        b'{"x": NaN}',
        b'{"x": 1e999}',
        b'{"health_score": {"score": 1' + b"0" * 400 + b'}, "service": "checkout"}',
        b"\xff\xfe\x00",
        b"\xed\xa0\x80",
        b"--xyz\r\nContent-Disposition: form-data; name=token\r\n\r\nabc\r\n--xyz--\r\n",
        b"token=%ff%fe&token=x&api_key=%00",
        b"payload=%7B%22a%22%3A1%7D",
    ]
)
bodies = st.one_of(
    nasty_bytes,
    st.none(),
    json_values.map(lambda v: json.dumps(v).encode()),
    shaped.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.text(max_size=100).map(lambda s: s.encode("utf-8", "surrogatepass")),
)


@dataclass
class Secrets:
    token: str
    session_cookie: str


def auth_headers(kind: str, h: Harness, s: Secrets, body: bytes) -> dict[str, str]:
    c = h.creds
    sig = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "none": {},
        "tenant": {"Authorization": f"Bearer {c.tenant_key}"},
        "other_tenant": {"Authorization": f"Bearer {c.other_key}"},
        "admin": {"Authorization": f"Bearer {c.admin_key}"},
        "bogus_bearer": {"Authorization": "Bearer ae_nope.nope"},
        "x_api_key": {"X-API-Key": c.tenant_key},
        "telegram": {"X-Telegram-Bot-Api-Secret-Token": c.telegram_secret},
        "telegram_wrong": {"X-Telegram-Bot-Api-Secret-Token": "nope"},
        "github_signed": {"X-Hub-Signature-256": f"sha256={sig}", "X-GitHub-Event": "push"},
        "github_forged": {"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Event": "push"},
        "session": {"Cookie": f"ae_dashboard={s.session_cookie}"},
        "session_forged": {"Cookie": "ae_dashboard=eyJ0IjoiYWNtZSJ9.AAAA"},
    }[kind]


@st.composite
def requests(draw: st.DrawFn, eps: list[Endpoint], s: Secrets) -> dict[str, Any]:
    ep = draw(st.sampled_from(eps))
    own_method = draw(st.integers(0, 4)) > 0
    method = draw(st.sampled_from(ep.methods if own_method else EXTRA_METHODS))
    path = ep.template
    for name in re.findall(r"{(\w+)(?::\w+)?}", ep.template):
        value = draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=20))
        path = re.sub(r"{" + name + r"(?::\w+)?}", _quote(value), path)
    query = draw(
        st.dictionaries(
            st.sampled_from(PARAMS),
            st.text(max_size=20) | st.sampled_from(["acme", "globex", "checkout", s.token]),
            max_size=4,
        )
    )
    if draw(st.booleans()):  # the names that get a request past "which tenant/service?"
        query = {"tenant": "acme", "service": "checkout", **query}
    body = draw(bodies)
    ctype = draw(st.sampled_from(["application/json"]) | st.sampled_from(CONTENT_TYPES))
    usual = draw(st.booleans())
    auth = draw(st.sampled_from(preferred_auth(ep.template) if usual else AUTH_KINDS))
    return {"method": method, "path": path, "query": query, "body": body, "ctype": ctype,
            "auth": auth}  # fmt: skip


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


async def send(h: Harness, s: Secrets, req: dict[str, Any]) -> int:
    body: bytes = req["body"] or b""
    headers = auth_headers(req["auth"], h, s, body)
    if req["ctype"]:
        headers["Content-Type"] = req["ctype"]
    h.client.cookies.clear()
    r = await h.client.request(
        req["method"],
        req["path"],
        params=req["query"],
        content=req["body"],
        headers=headers,
    )
    assert r.status_code < 500, (req, r.status_code, r.text[:500])
    return r.status_code


async def _session_cookie(h: Harness) -> str:
    r = await h.client.post("/dashboard/signin", data={"api_key": h.creds.tenant_key})
    assert r.status_code == 303, r.text
    cookie = r.cookies.get("ae_dashboard")
    assert cookie
    h.client.cookies.clear()
    return cookie


@pytest.mark.slow
def test_no_request_to_any_route_gets_a_5xx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("API_TEST_GITHUB_SECRET", GITHUB_SECRET)
    loop = asyncio.new_event_loop()
    cm = harness(tmp_path)
    h = loop.run_until_complete(cm.__aenter__())
    try:
        s = Secrets(
            token=loop.run_until_complete(h.approval_token()),
            session_cookie=loop.run_until_complete(_session_cookie(h)),
        )
        eps = endpoints(h)
        assert {"/intake/health", "/telegram/webhook", "/commits/webhook"} <= {
            e.template for e in eps
        }
        seen: set[int] = set()

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(req=requests(eps, s))
        def property_no_5xx(req: dict[str, Any]) -> None:
            seen.add(loop.run_until_complete(send(h, s, req)))

        property_no_5xx()
        # Alive afterwards: the ordinary path still works end to end.
        r = loop.run_until_complete(h.client.get("/healthz"))
        assert r.status_code == 200
        assert loop.run_until_complete(h.approval_token())
        assert len(seen) >= 5, seen  # the fuzzing reached many outcomes, not one wall
    finally:
        loop.run_until_complete(cm.__aexit__(None, None, None))
        loop.close()
