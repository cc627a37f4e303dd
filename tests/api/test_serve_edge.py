"""The HTTP edge of a real `alertengine serve` process: clients that vanish mid-request, and
hostile bodies over real sockets (issue 10).

One orchestrator process for the module, started and stopped by its pid, logging at INFO to a
file the tests read: what an operator watching the log would see.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.scale.cluster import ADMIN, PUSHED, SECRETS, TENANT, Proc, config_toml, wait_http
from tests.support.redis_server import free_port

TG_SECRET = "tg_secret-" + "x" * 24
CRASH_MARKERS = ("Traceback", "Exception in ASGI application", "ClientDisconnect")


@dataclass
class Served:
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        self.proc._out.flush()
        return self.proc.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve-edge")
    port = free_port()
    cfg = tmp / "alertengine.toml"
    cfg.write_text(config_toml(base_url=f"http://127.0.0.1:{port}", receiver="http://127.0.0.1:9"))
    proc = Proc(
        [sys.executable, "-m", "alertengine", "serve", "--config", str(cfg),
         "--port", str(port), "--log-level", "info"],
        env={
            **SECRETS,
            "TELEGRAM_BOT_TOKEN": "123456:ABC-edge-test",
            "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "TELEGRAM_API_BASE": "http://127.0.0.1:9",
        },
        log=tmp / "serve.log",
    )  # fmt: skip
    try:
        asyncio.run(wait_http(f"http://127.0.0.1:{port}/healthz", 60, [proc]))
        yield Served(proc, port)
    finally:
        proc.stop()


def _partial_request(port: int, path: str, headers: dict[str, str], declared: int, sent: bytes):
    """Headers and the first bytes of a body, then gone: what a load test's end looks like."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {declared}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(head.encode() + sent)
    return s


async def test_a_client_gone_mid_body_is_one_calm_log_line_not_a_traceback(served: Served):
    path = f"/intake/health?tenant={TENANT}&service={PUSHED}"
    headers = {**ADMIN, "Content-Type": "application/json"}
    before = served.log().count("went away")
    socks = [
        _partial_request(served.port, path, headers, 5000, b'{"status": "critical", "he')
        for _ in range(10)
    ]
    await asyncio.sleep(0.5)  # the server is now waiting for the rest of each body
    for s in socks:
        s.close()

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = served.log()
        calm = text.count("went away") - before
        if calm >= 10 or any(m in text for m in CRASH_MARKERS):
            break
        await asyncio.sleep(0.1)
    text = served.log()
    assert not [m for m in CRASH_MARKERS if m in text], text[-3000:]
    lines = [ln for ln in text.splitlines() if "went away" in ln]
    assert len(lines) - before == 10
    assert " INFO " in lines[-1] and "POST /intake/health" in lines[-1]
    async with httpx.AsyncClient(timeout=10) as c:  # and it keeps serving
        assert (await c.get(f"{served.url}/healthz")).status_code == 200


HOSTILE: list[tuple[str, dict[str, str], bytes, set[int]]] = [
    ("/intake/health?tenant=t1&service=pushed", ADMIN, b"[" * 200_000, {400}),
    ("/intake/alertmanager?tenant=t1", ADMIN, b'{"alerts":[{"labels":{"job":"\\ud800"}}]}', {400}),
    ("/telegram/webhook", {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}, b"{" * 50_000, {400}),
    ("/telegram/webhook", {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}, b" " * 50_000_000, {413}),
    ("/intake/health?tenant=t1&service=pushed", ADMIN, b'{"score": NaN}', {400}),
    ("/action/recover/confirm", {}, b'{"token": ' * 1_000, {400, 401, 403, 410}),
    ("/commits/webhook?tenant=t1&service=shop", {}, b"\xff" * 100, {401}),
    ("/dashboard/signin", {}, b"\x00" * 20_000, {413}),
]


async def test_hostile_bodies_over_real_http_get_4xx_and_the_server_lives(served: Served):
    async with httpx.AsyncClient(timeout=60) as c:
        for path, headers, body, expected in HOSTILE:
            r = await c.post(
                served.url + path,
                content=body,
                headers={**headers, "Content-Type": "application/json"},
            )
            assert r.status_code in expected, (path, r.status_code, r.text[:300])
            assert json.loads(r.text) if "json" in r.headers.get("content-type", "") else True
        assert (await c.get(f"{served.url}/healthz")).status_code == 200
    text = served.log()
    assert not [m for m in CRASH_MARKERS if m in text], text[-3000:]


async def test_expect_100_continue_over_the_limit_is_refused_before_any_body(served: Served):
    s = _partial_request(
        served.port,
        "/telegram/webhook",
        {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Expect": "100-continue"},
        50_000_000,
        b"",
    )
    with s:
        s.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
