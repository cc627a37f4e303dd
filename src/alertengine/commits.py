"""Commit context ("diff in pocket"): GitHub push intake, a per-service log, risk flags.

Pure parts (signature check, payload parsing, risk flags) are plain functions; the log
keeps recent commits in a :class:`~alertengine.stores.StateStore`, one document per commit,
so concurrent writers never lose each other's commits.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatch
from typing import Any

from alertengine.stores.base import StateStore

#: Paths that usually mean "this deploy touched the database layer".
DEFAULT_RISKY_GLOBS: tuple[str, ...] = (
    "*migration*",
    "*database*",
    "*db/*",
    "*query*",
    "*.sql",
    "*sql*",
)

_SIG_PREFIX = "sha256="


class PushPayloadError(ValueError):
    """The push payload is not the shape GitHub sends."""


@dataclass(frozen=True)
class Commit:
    """One commit as the incident pipeline needs it (no e-mail addresses: not needed)."""

    sha: str
    message: str
    author: str
    timestamp: float
    files: tuple[str, ...] = ()
    url: str = ""
    author_username: str = ""

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def title(self) -> str:
        """The message's first line."""
        return self.message.split("\n", 1)[0].strip()

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha": self.sha,
            "message": self.message,
            "author": self.author,
            "author_username": self.author_username,
            "timestamp": self.timestamp,
            "files": list(self.files),
            "url": self.url,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Commit:
        return cls(
            sha=str(doc["sha"]),
            message=str(doc.get("message", "")),
            author=str(doc.get("author", "")),
            author_username=str(doc.get("author_username", "")),
            timestamp=float(doc.get("timestamp", 0.0)),
            files=tuple(str(f) for f in doc.get("files", ())),
            url=str(doc.get("url", "")),
        )


@dataclass(frozen=True)
class FlaggedCommit:
    """A commit and the files of it that matched a risky glob (empty: not risky)."""

    commit: Commit
    risky_files: tuple[str, ...] = field(default=())

    @property
    def risky(self) -> bool:
        return bool(self.risky_files)


def verify_github_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True only when ``header`` is ``sha256=<hex HMAC-SHA256(secret, body)>``.

    Missing, empty-secret, wrongly prefixed or non-hex headers are refused; the digest is
    compared in constant time.
    """
    if not secret or not header or not header.startswith(_SIG_PREFIX):
        return False
    given = header[len(_SIG_PREFIX) :].strip()
    if len(given) != 64:
        return False
    try:
        given_bytes = bytes.fromhex(given)
    except ValueError:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, given_bytes)


def _epoch(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value:
        raise PushPayloadError("commit timestamp missing")
    try:
        # GitHub sends ISO 8601 with an offset; Python 3.10 cannot read a trailing "Z".
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PushPayloadError(f"bad commit timestamp {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def _files(raw: Mapping[str, Any]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for key in ("added", "removed", "modified"):
        paths = raw.get(key) or []
        if not isinstance(paths, list):
            raise PushPayloadError(f"commit {key} must be a list")
        for path in paths:
            seen.setdefault(str(path), None)
    return tuple(seen)


def parse_push(payload: Any) -> list[Commit]:
    """The commits of a GitHub ``push`` event payload, in payload order.

    Raises :class:`PushPayloadError` when the payload is not a push payload.
    """
    if not isinstance(payload, Mapping):
        raise PushPayloadError("payload must be a JSON object")
    raw_commits = payload.get("commits")
    if not isinstance(raw_commits, list):
        raise PushPayloadError("payload has no commits list")
    commits: list[Commit] = []
    for raw in raw_commits:
        if not isinstance(raw, Mapping):
            raise PushPayloadError("each commit must be an object")
        sha = raw.get("id")
        if not isinstance(sha, str) or not sha:
            raise PushPayloadError("commit id missing")
        raw_author = raw.get("author")
        author: Mapping[str, Any] = raw_author if isinstance(raw_author, Mapping) else {}
        commits.append(
            Commit(
                sha=sha,
                message=str(raw.get("message") or ""),
                author=str(author.get("name") or author.get("username") or "unknown"),
                author_username=str(author.get("username") or ""),
                timestamp=_epoch(raw.get("timestamp")),
                files=_files(raw),
                url=str(raw.get("url") or ""),
            )
        )
    return commits


def flag_risky(
    commits: Iterable[Commit], globs: Sequence[str] = DEFAULT_RISKY_GLOBS
) -> list[FlaggedCommit]:
    """Mark commits whose files match any of ``globs`` (case-insensitive fnmatch)."""
    patterns = [g.lower() for g in globs]
    flagged: list[FlaggedCommit] = []
    for commit in commits:
        hits = tuple(f for f in commit.files if any(fnmatch(f.lower(), p) for p in patterns))
        flagged.append(FlaggedCommit(commit=commit, risky_files=hits))
    return flagged


class CommitLog:
    """Recent commits per (tenant, service), newest ``keep`` retained."""

    def __init__(self, store: StateStore, keep: int = 200) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._store = store
        self._keep = keep

    @staticmethod
    def _collection(tenant_id: str, service: str) -> str:
        return f"commits:{tenant_id}:{service}"

    async def add(self, tenant_id: str, service: str, commits: Iterable[Commit]) -> int:
        """Store ``commits`` (idempotent by sha); returns how many were given."""
        collection = self._collection(tenant_id, service)
        count = 0
        for commit in commits:
            await self._store.put(collection, commit.sha, commit.to_dict())
            count += 1
        await self._prune(collection)
        return count

    async def _prune(self, collection: str) -> None:
        docs = await self._store.list(collection)
        if len(docs) <= self._keep:
            return
        oldest_first = sorted(docs.items(), key=lambda kv: float(kv[1].get("timestamp", 0.0)))
        for key, _ in oldest_first[: len(docs) - self._keep]:
            await self._store.delete(collection, key)

    async def recent(
        self,
        tenant_id: str,
        service: str,
        since: float | None = None,
        until: float | None = None,
    ) -> list[Commit]:
        """Commits with ``since <= timestamp <= until``, newest first."""
        docs = await self._store.list(self._collection(tenant_id, service))
        commits = [Commit.from_dict(d) for d in docs.values()]
        picked = [
            c
            for c in commits
            if (since is None or c.timestamp >= since) and (until is None or c.timestamp <= until)
        ]
        picked.sort(key=lambda c: c.timestamp, reverse=True)
        return picked
