"""The webhook signature's published known-answer vectors (docs/webhooks.md).

Every other receiver in the suite checks signatures with our own ``verify``, so a change
to the scheme on both sides at once (a different message layout, key encoding, hex case)
would pass them all and break every receiver written in another language. These vectors
are fixed in the docs; each is checked against the shipped signer and ``verify`` AND an
independent re-implementation written here from the documented scheme with only ``hmac``
and ``hashlib``. The real executor's request on the wire is checked the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from pathlib import Path
from typing import Any

from alertengine.clock import VirtualClock
from alertengine.execute.signing import sign, verify
from tests.authorize.harness import (
    ALICE,
    WEBHOOK_SECRET,
    Receiver,
    add_tenant,
    build_system,
    validated_incident,
)
from tests.support.servers import ServerThread

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
MARKER = "<!-- webhook-test-vectors: the test parses the JSON block below -->"


def documented_vectors() -> list[dict[str, Any]]:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(re.escape(MARKER) + r"\s*```json\n(.*?)\n```", text, re.S)
    assert found, "docs/webhooks.md lost its test-vector block"
    vectors: list[dict[str, Any]] = json.loads(found.group(1))
    return vectors


def independent_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The documented scheme, re-implemented: HMAC-SHA256 keyed by the secret's UTF-8
    bytes over ``<timestamp digits>.<raw body>``, as ``v1=<lowercase hex>``."""
    assert timestamp.isascii() and timestamp.isdigit()
    message = timestamp.encode("ascii") + b"." + body
    return "v1=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def test_the_docs_publish_vectors_covering_the_awkward_cases() -> None:
    vectors = documented_vectors()
    assert len(vectors) >= 3
    bodies = [v["body"] for v in vectors]
    assert "" in bodies  # an empty body
    assert any(not b.isascii() and b.endswith("\n") for b in bodies)  # UTF-8, trailing newline
    assert any(not v["secret"].isascii() for v in vectors)  # a non-ASCII secret
    # Secrets as long as start-up demands (>= 32 bytes), so the vectors stay usable.
    assert all(len(v["secret"].encode()) >= 32 for v in vectors)


def test_the_vectors_match_our_signer_and_an_independent_implementation() -> None:
    for v in documented_vectors():
        body = v["body"].encode("utf-8")
        expected = {
            "X-AlertEngine-Timestamp": v["X-AlertEngine-Timestamp"],
            "X-AlertEngine-Signature": v["X-AlertEngine-Signature"],
        }
        assert re.fullmatch(r"v1=[0-9a-f]{64}", expected["X-AlertEngine-Signature"])
        assert expected["X-AlertEngine-Timestamp"] == str(v["timestamp"])
        assert sign(v["secret"], body, v["timestamp"]) == expected
        assert (
            independent_signature(v["secret"], expected["X-AlertEngine-Timestamp"], body)
            == expected["X-AlertEngine-Signature"]
        )
        assert verify(v["secret"], expected, body, now=v["timestamp"])
        assert not verify(v["secret"], expected, body + b" ", now=v["timestamp"])
        assert not verify(v["secret"] + "x", expected, body, now=v["timestamp"])


async def test_the_executor_on_the_wire_matches_the_documented_scheme() -> None:
    rec = Receiver()
    server = ServerThread(rec.app())
    server.start()
    try:
        sys = await build_system(
            clock=VirtualClock(start=time.time()),
            webhook_url=server.base_url + "/recover",
            execute_on_authorize=False,
        )
        try:
            await add_tenant(sys)
            i = await validated_incident(sys)
            link = await sys.authorizer.issue("acme", i, ALICE)
            assert (await sys.authorizer.confirm(link.token)).authorized
            assert sys.executor is not None
            out = await sys.executor.run("acme", i)
        finally:
            await sys.close()
    finally:
        server.stop()
    assert out.result == "executed"
    (request,) = rec.requests
    headers = request["headers"]
    assert headers["x-alertengine-signature"] == independent_signature(
        WEBHOOK_SECRET, headers["x-alertengine-timestamp"], request["raw"]
    )
