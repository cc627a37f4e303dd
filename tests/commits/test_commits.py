from __future__ import annotations

import hashlib
import hmac

import pytest

from alertengine.clock import VirtualClock
from alertengine.commits import (
    Commit,
    CommitLog,
    PushPayloadError,
    flag_risky,
    parse_push,
    verify_github_signature,
)
from alertengine.stores import MemoryStateStore
from tests.support.fakes import github

SECRET = b"s3cret"


def test_signature_accepts_exactly_the_github_header() -> None:
    body = b'{"zen": "hi"}'
    good = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert verify_github_signature(SECRET, body, good)
    assert not verify_github_signature(SECRET, body + b" ", good)
    assert not verify_github_signature(b"other", body, good)


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=", "sha1=" + "0" * 40, "sha256=" + "z" * 64, "sha256=abc", "0" * 64],
)
def test_signature_refuses_missing_or_garbled_headers(header: str | None) -> None:
    assert not verify_github_signature(SECRET, b"{}", header)


def test_signature_refuses_empty_secret() -> None:
    body = b"{}"
    header = "sha256=" + hmac.new(b"", body, hashlib.sha256).hexdigest()
    assert not verify_github_signature(b"", body, header)


def test_parse_push_reads_commits_and_their_files() -> None:
    payload = github.push_payload(
        [
            github.commit(
                "a1b2c3d4" + "0" * 32,
                "Fix checkout query isolation level\n\nUse READ COMMITTED.",
                timestamp="2024-06-02T14:00:00+02:00",
                added=["db/migrations/0042.sql"],
                modified=["app/checkout.py"],
                removed=["old.txt"],
            )
        ]
    )
    [c] = parse_push(payload)
    assert c.sha.startswith("a1b2c3d4") and c.short_sha == "a1b2c3d"
    assert c.title == "Fix checkout query isolation level"
    assert "READ COMMITTED" in c.message
    assert c.author == "John" and c.author_username == "john"
    assert c.timestamp == 1717329600.0  # 12:00 UTC
    assert c.files == ("db/migrations/0042.sql", "old.txt", "app/checkout.py")
    assert c.url.endswith(c.sha)


@pytest.mark.parametrize(
    "payload",
    [[], {"commits": "nope"}, {"commits": [{"message": "x"}]}, {"commits": [{"id": "a"}]}],
)
def test_parse_push_refuses_non_push_shapes(payload: object) -> None:
    with pytest.raises(PushPayloadError):
        parse_push(payload)


def _c(sha: str, ts: float, files: tuple[str, ...] = ()) -> Commit:
    return Commit(sha=sha, message=f"msg {sha}", author="A", timestamp=ts, files=files)


def test_flag_risky_default_globs() -> None:
    commits = [
        _c("1", 1, ("db/models.py",)),
        _c("2", 2, ("app/views.py", "README.md")),
        _c("3", 3, ("alembic/versions/0001_Migration.py",)),
        _c("4", 4, ("reports/daily.SQL",)),
        _c("5", 5, ("src/checkout/query_builder.py",)),
    ]
    flags = {f.commit.sha: f for f in flag_risky(commits)}
    assert flags["1"].risky and flags["1"].risky_files == ("db/models.py",)
    assert not flags["2"].risky
    assert flags["3"].risky and flags["4"].risky and flags["5"].risky


def test_flag_risky_custom_globs() -> None:
    [f] = flag_risky([_c("1", 1, ("infra/redis.conf", "db/x.py"))], globs=("*redis*",))
    assert f.risky_files == ("infra/redis.conf",)


async def test_commit_log_keeps_newest_and_filters_by_window() -> None:
    store = MemoryStateStore(VirtualClock())
    log = CommitLog(store, keep=3)
    await log.add("t1", "checkout", [_c(str(i), float(i)) for i in range(5)])
    await log.add("t1", "checkout", [_c("4", 4.0)])  # idempotent by sha
    assert [c.sha for c in await log.recent("t1", "checkout")] == ["4", "3", "2"]
    assert [c.sha for c in await log.recent("t1", "checkout", since=3, until=3)] == ["3"]
    assert await log.recent("t2", "checkout") == []
    assert await log.recent("t1", "other") == []


def test_commit_log_refuses_silly_keep() -> None:
    with pytest.raises(ValueError):
        CommitLog(MemoryStateStore(), keep=0)
