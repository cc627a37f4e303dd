from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server_session() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(redis_server_session: RedisServer) -> Iterator[RedisServer]:
    """A shared real redis-server, flushed before each test."""
    if redis_server_session.proc is None:
        redis_server_session.start()
    redis_server_session.flush()
    yield redis_server_session
    if redis_server_session.proc is None:  # a test stopped it; bring it back for the next
        redis_server_session.start()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A private redis-server for tests that kill and restart it."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
