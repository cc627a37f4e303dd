"""Fixtures shared by the execution tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.authorize.harness import Receiver
from tests.support.servers import ServerThread


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A recovery-webhook receiver on 127.0.0.1, and its /recover URL."""
    rec = Receiver()
    server = ServerThread(rec.app())
    server.start()
    yield rec, server.base_url + "/recover"
    server.stop()
