from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from alertengine.notify.telegram import TelegramChannel
from alertengine.notify.telegram_webhook import FAILURE_TEXT, telegram_webhook_routes
from tests.support.fakes.telegram import FakeTelegram, callback_update, push_update
from tests.support.servers import serve

SECRET = "hook-Secret_123"


class App:
    def __init__(self, fake: FakeTelegram, api_url: str) -> None:
        self.fake = fake
        self.calls: list[tuple[str, str]] = []
        self.fail = False
        # Its own client: it is used on the server thread's event loop, not the test's.
        bot = TelegramChannel(fake.token, httpx.AsyncClient(timeout=5), base_url=api_url)

        async def on_callback(user_id: str, data: str) -> str:
            self.calls.append((user_id, data))
            if self.fail:
                raise RuntimeError("orchestrator down")
            return f"Approved by {user_id}" if data.startswith("approve:") else "Noted"

        self.app = Starlette(routes=telegram_webhook_routes(SECRET, bot, on_callback))


@pytest.fixture
def env(telegram: tuple[FakeTelegram, str]) -> Iterator[tuple[App, str]]:
    app = App(*telegram)
    with serve(app.app) as base:
        yield app, f"{base}/telegram/webhook"


async def test_callback_reaches_on_callback_and_is_answered(
    env: tuple[App, str], http: httpx.AsyncClient
) -> None:
    app, url = env
    r = await push_update(http, url, callback_update(555001, "approve:tok-123"), SECRET)
    assert r.status_code == 200 and r.json()["answered"] is True
    assert app.calls == [("555001", "approve:tok-123")]
    assert app.fake.answered == [{"callback_query_id": "cbq-1", "text": "Approved by 555001"}]


@pytest.mark.parametrize("secret", [None, "", "hook-Secret_124", SECRET + "x"])
async def test_wrong_or_missing_secret_is_401_and_nothing_happens(
    env: tuple[App, str], http: httpx.AsyncClient, secret: str | None
) -> None:
    app, url = env
    r = await push_update(http, url, callback_update(1, "approve:tok"), secret)
    assert r.status_code == 401
    assert app.calls == [] and app.fake.answered == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'{"update_id": 1, "callback_query": {"id": "c", "data": "x"}}',
        b'{"update_id": 1, "callback_query": {"id": "c", "from": {"id": 1}}}',
    ],
)
async def test_malformed_update_is_400_with_reason(
    env: tuple[App, str], http: httpx.AsyncClient, body: bytes
) -> None:
    app, url = env
    r = await push_update(http, url, body, SECRET)
    assert r.status_code == 400 and r.json()["error"].startswith("malformed update")
    assert app.calls == []


async def test_other_updates_are_ignored(env: tuple[App, str], http: httpx.AsyncClient) -> None:
    app, url = env
    update = {"update_id": 2, "message": {"message_id": 1, "text": "/start"}}
    r = await push_update(http, url, update, SECRET)
    assert r.status_code == 200 and app.calls == []


async def test_failing_authorization_path_still_answers_the_user(
    env: tuple[App, str], http: httpx.AsyncClient
) -> None:
    app, url = env
    app.fail = True
    r = await push_update(http, url, callback_update(7, "approve:tok"), SECRET)
    assert r.status_code == 200
    assert app.fake.answered == [{"callback_query_id": "cbq-1", "text": FAILURE_TEXT}]


def test_empty_secret_is_refused() -> None:
    async def cb(user_id: str, data: str) -> str:
        return ""

    with pytest.raises(ValueError):
        telegram_webhook_routes("", TelegramChannel("1:x", httpx.AsyncClient()), cb)
