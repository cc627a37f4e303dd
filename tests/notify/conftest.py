from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.fakes.slack import FakeSlack
from tests.support.fakes.telegram import FakeTelegram
from tests.support.fakes.twilio import FakeTwilio
from tests.support.fakes.webhook_receiver import FakeWebhookReceiver
from tests.support.servers import ServerThread


class Running:
    """A fake service running on loopback; ``fake`` is replaced fresh for every test."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.fake = make()
        self.app = self.fake.app
        # The app delegates to whatever fake is current, so one server serves many tests.
        self.server = ServerThread(self._asgi)
        self.server.start()
        self.url = self.server.base_url

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    def reset(self) -> Any:
        self.fake = self.make()
        self.app = self.fake.app
        return self.fake


@pytest.fixture(scope="session")
def _fakes() -> Iterator[dict[str, Running]]:
    running = {
        "telegram": Running(FakeTelegram),
        "twilio": Running(FakeTwilio),
        "slack": Running(FakeSlack),
        "webhook": Running(FakeWebhookReceiver),
    }
    yield running
    for r in running.values():
        r.server.stop()


@pytest.fixture
def telegram(_fakes: dict[str, Running]) -> tuple[FakeTelegram, str]:
    return _fakes["telegram"].reset(), _fakes["telegram"].url


@pytest.fixture
def twilio(_fakes: dict[str, Running]) -> tuple[FakeTwilio, str]:
    return _fakes["twilio"].reset(), _fakes["twilio"].url


@pytest.fixture
def slack(_fakes: dict[str, Running]) -> tuple[FakeSlack, str]:
    return _fakes["slack"].reset(), _fakes["slack"].url


@pytest.fixture
def receiver(_fakes: dict[str, Running]) -> tuple[FakeWebhookReceiver, str]:
    return _fakes["webhook"].reset(), _fakes["webhook"].url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client
