from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fakes.anthropic import FakeAnthropic
from tests.support.servers import ServerThread


@pytest.fixture(scope="module")
def _anthropic_server() -> Iterator[tuple[FakeAnthropic, str]]:
    fake = FakeAnthropic()
    server = ServerThread(fake.app)
    server.start()
    try:
        yield fake, server.base_url
    finally:
        server.stop()


@pytest.fixture
def anthropic_fake(_anthropic_server: tuple[FakeAnthropic, str]) -> Iterator[FakeAnthropic]:
    """The shared fake, reset for each test; its URL is ``anthropic_fake.base_url``."""
    fake, base_url = _anthropic_server
    fake.requests.clear()
    fake.headers.clear()
    fake.delay_s = 0.0
    fake.base_url = base_url  # type: ignore[attr-defined]
    yield fake
