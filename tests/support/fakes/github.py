"""A fake GitHub webhook sender: builds real push payloads and delivers them signed.

GitHub calls us, so this "fake" is the client side: same headers GitHub sends
(``X-GitHub-Event``, ``X-GitHub-Delivery``, ``X-Hub-Signature-256``), same payload shape.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def commit(
    sha: str,
    message: str,
    *,
    timestamp: str = "2024-06-02T12:00:00Z",
    author: str = "John",
    username: str = "john",
    added: Sequence[str] = (),
    removed: Sequence[str] = (),
    modified: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "id": sha,
        "tree_id": "f" * 40,
        "distinct": True,
        "message": message,
        "timestamp": timestamp,
        "url": f"https://github.com/acme/checkout/commit/{sha}",
        "author": {"name": author, "email": f"{username}@example.com", "username": username},
        "committer": {"name": author, "email": f"{username}@example.com", "username": username},
        "added": list(added),
        "removed": list(removed),
        "modified": list(modified),
    }


def push_payload(commits: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    head = commits[-1] if commits else None
    return {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": head["id"] if head else "0" * 40,
        "repository": {"id": 1, "name": "checkout", "full_name": "acme/checkout"},
        "pusher": {"name": "john", "email": "john@example.com"},
        "sender": {"login": "john", "id": 1},
        "created": False,
        "deleted": False,
        "forced": False,
        "compare": "https://github.com/acme/checkout/compare/a...b",
        "commits": list(commits),
        "head_commit": head,
    }


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    payload: Any,
    *,
    secret: bytes | None,
    event: str = "push",
    signature: str | None = None,
) -> httpx.Response:
    """POST like GitHub does; ``signature`` overrides the computed one (for forgeries)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc123",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "1",
    }
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    return await client.post(url, content=body, headers=headers)
