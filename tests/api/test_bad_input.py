"""Bad input at the HTTP edge gets a 4xx with a reason, never a 5xx (issue 10).

Each case here was a 500 (or an accepted 50 MB body) before the edge parsed strictly and
bounded every body; the app is the real one with every route on (tests/api/harness.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from alertengine.body_limit import DRAIN_BYTES
from alertengine.orchestrator.http import BODY_LIMITS, DEFAULT_BODY_LIMIT
from alertengine.orchestrator.mode import Mode
from tests.api.harness import GITHUB_SECRET, Harness, harness
from tests.support.fakes.telegram import callback_update

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 5_000 + b"1" + b"}" * 5_000


@pytest.fixture
async def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    monkeypatch.setenv("API_TEST_GITHUB_SECRET", GITHUB_SECRET)
    async with harness(tmp_path) as env:
        yield env


def tenant(h: Harness) -> dict[str, str]:
    return {"Authorization": f"Bearer {h.creds.tenant_key}", "Content-Type": "application/json"}


def telegram(h: Harness) -> dict[str, str]:
    return {
        "X-Telegram-Bot-Api-Secret-Token": h.creds.telegram_secret,
        "Content-Type": "application/json",
    }


def github(body: bytes) -> dict[str, str]:
    sig = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={sig}",
        "X-GitHub-Event": "push",
        "Content-Type": "application/json",
    }


ROUTES = {
    "health": ("/intake/health?service=checkout", tenant),
    "alertmanager": ("/intake/alertmanager", tenant),
    "telegram": ("/telegram/webhook", telegram),
}


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["arrays", "objects"])
@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_deeply_nested_json_is_400_with_a_reason(h: Harness, route: str, body: bytes):
    path, headers = ROUTES[route]
    r = await h.client.post(path, content=body, headers=headers(h))
    assert r.status_code == 400, r.text
    assert "nested deeper" in r.text


async def test_deeply_nested_signed_github_push_is_400(h: Harness):
    r = await h.client.post(
        "/commits/webhook?tenant=acme&service=checkout", content=DEEP, headers=github(DEEP)
    )
    assert r.status_code == 400, r.text


async def test_nesting_just_under_the_limit_is_still_parsed(h: Harness):
    # 60 levels inside a real payload: accepted as JSON (the route then judges the content).
    body = json.dumps({**_am_payload("checkout"), "x": json.loads("[" * 60 + "]" * 60)})
    r = await h.client.post("/intake/alertmanager", content=body, headers=tenant(h))
    assert r.status_code == 202, r.text


def _am_payload(service: str) -> dict[str, object]:
    return {
        "version": "4",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "HighLatency", "service": service}}
        ],
    }


@pytest.mark.parametrize(
    "escape", ["\\ud800", "\\udfff", "\\ud83d", "\\ud83dx"], ids=["high", "low", "lone-hi", "hi-x"]
)
async def test_lone_surrogate_in_an_alertmanager_label_is_400(h: Harness, escape: str):
    raw = json.dumps(_am_payload("checkout")).replace("HighLatency", f"High{escape}Latency")
    r = await h.client.post("/intake/alertmanager", content=raw.encode(), headers=tenant(h))
    assert r.status_code == 400, r.text
    assert "surrogate" in r.json()["error"]


async def test_a_surrogate_pair_is_text_and_accepted(h: Harness):
    raw = json.dumps(_am_payload("checkout")).replace("HighLatency", "High\\ud83d\\ude00Latency")
    r = await h.client.post("/intake/alertmanager", content=raw.encode(), headers=tenant(h))
    assert r.status_code == 202, r.text
    assert r.json()["accepted"][0]["alertname"] == "High😀Latency"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"status": NaN}', "NaN"),
        (b'{"status": -Infinity}', "Infinity"),
        (b'{"score": 1e999}', "out of range"),
        (b'{"health_score": {"score": 1' + b"0" * 400 + b"}}", "out of range"),
        (b'{"status": "\xff"}', "UTF-8"),
        (b'{"status": "\xed\xa0\x80"}', "UTF-8"),  # a surrogate encoded as bytes (CESU-8)
    ],
)
async def test_json_that_strict_encoders_refuse_is_400(h: Harness, body: bytes, reason: str):
    for path, headers in ROUTES.values():
        r = await h.client.post(path, content=body, headers=headers(h))
        assert r.status_code == 400, (path, r.text)
        assert reason in r.text, (path, r.text)


async def test_telegram_webhook_refuses_a_50_mb_body_with_413(h: Harness):
    body = b'{"update_id": 1, "pad": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    r = await h.client.post("/telegram/webhook", content=body, headers=telegram(h))
    assert r.status_code == 413, r.text
    assert r.json()["limit"] == BODY_LIMITS["/telegram/webhook"]


async def test_a_chunked_body_without_length_is_cut_off_at_the_limit(h: Harness):
    sent = 0
    chunk = 1024 * 1024

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 1 GiB if nobody stopped reading
            sent += 1
            yield b" " * chunk

    r = await h.client.post("/telegram/webhook", content=chunks(), headers=telegram(h))
    assert r.status_code == 413, r.text
    # Read on (and dropped) only up to the drain bound, so the client can read its 413.
    assert sent * chunk <= DRAIN_BYTES + chunk


def _routes_with_limits() -> Iterator[tuple[str, int]]:
    yield from BODY_LIMITS.items()
    yield "/incidents", DEFAULT_BODY_LIMIT  # any other route: the default


@pytest.mark.parametrize(("path", "limit"), list(_routes_with_limits()))
async def test_every_route_has_a_body_limit_answered_with_413(h: Harness, path: str, limit: int):
    over = b" " * (limit + 1)
    r = await h.client.post(path, content=over, headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert str(limit) in r.json()["error"]
    # Not a blanket refusal: a body within the limit reaches the route (which may refuse it).
    r = await h.client.post(path, content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code != 413


async def _enter_emergency(h: Harness) -> None:
    """The real cause: the state store goes away; the orchestrator's own tick notices."""
    await h.rt.store.close()  # type: ignore[attr-defined]
    for _ in range(50):  # however much hysteresis the mode logic has, bounded
        await h.rt.orch.tick()
        if h.rt.orch.mode is Mode.EMERGENCY:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached EMERGENCY: {h.rt.orch.status()}")


async def test_confirm_during_emergency_is_503_with_retry_after_and_a_clear_page(h: Harness):
    token = await h.approval_token()
    await _enter_emergency(h)
    r = await h.client.post("/action/recover/confirm", data={"token": token})
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    assert "Nothing was changed" in r.text
    assert "Try again" in r.text
    # The JSON flavour says the same in fields.
    r = await h.client.post("/action/recover/confirm", json={"token": token})
    assert r.status_code == 503
    assert r.json()["problem"] == "unavailable" and r.json()["retry_after_s"] > 0
    assert h.rt.executor is not None and not h.rt._exec_tasks  # nothing was scheduled


async def test_reads_during_a_store_outage_are_503_not_500(h: Harness):
    token = await h.approval_token()
    await _enter_emergency(h)
    r = await h.client.get(f"/action/recover?token={token}")
    assert r.status_code == 503 and "Nothing was changed" in r.text
    r = await h.client.get("/incidents", headers=tenant(h))
    assert r.status_code == 503 and r.headers["Retry-After"]


async def test_a_telegram_approve_press_during_emergency_says_nothing_changed(h: Harness):
    await h.approval_token()  # a VALIDATED incident: Telegram got its Approve button
    rows = h.telegram.sent[-1]["reply_markup"]["inline_keyboard"]
    (button,) = [
        b["callback_data"] for row in rows for b in row if b.get("callback_data", "")[:3] == "ae:"
    ]
    await _enter_emergency(h)
    r = await h.client.post(
        "/telegram/webhook", json=callback_update(4242, button), headers=telegram(h)
    )
    assert r.status_code == 200, r.text  # 200: Telegram must not redeliver the press
    (answer,) = h.telegram.answered
    assert "Nothing was changed" in answer["text"] and "try again" in answer["text"]
