"""Small real filesystems for the ledger fault tests: a tmpfs to fill, an ext4 image to lock.

Both need root (mount); without it the tests skip with the reason. Every mount is undone by
the fixture that made it, whatever the test did.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertengine.ledger import LedgerQuery
from alertengine.ledger.sqlite import SqliteLedgerStore
from tests.scale.cluster import ADMIN, SECRETS

TENANT = "acme"
SERVICE = "checkout"


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    try:
        _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {exc}")
    try:
        yield where
    finally:
        _umount(where)


@contextlib.contextmanager
def ext4_image(where: Path, image: Path, size_mb: int = 24) -> Iterator[Path]:
    """A loop-mounted ext4 file system (tmpfs has no immutable files that bite open fds)."""
    where.mkdir(parents=True, exist_ok=True)
    with image.open("wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    try:
        _run("mkfs.ext4", "-q", "-F", str(image))
        _run("mount", "-o", "loop", str(image), str(where))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot loop-mount an ext4 image here (needs root and mkfs.ext4): {exc}")
    try:
        yield where
    finally:
        for f in where.glob("*"):  # an immutable file would survive the test's cleanup
            with contextlib.suppress(subprocess.CalledProcessError):
                _run("chattr", "-i", str(f))
        _umount(where)


def _umount(where: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            _run("umount", str(where))
            return
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                _run("umount", "-l", str(where))  # lazily, rather than leave it mounted
                return
            time.sleep(0.2)


def fill(path: Path) -> int:
    """Write ``path`` until the file system is full; returns the bytes written."""
    chunk = b"\0" * 65536
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                written += os.write(fd, chunk)
            except OSError:
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    return written


def config(db: Path, *, port: int, health_url: str, receiver: str) -> str:
    return f"""
[orchestrator]
store_url = "sqlite:///{db}"
base_url = "http://127.0.0.1:{port}"
port = {port}
loop_interval_s = 0.5

[[tenants]]
id = "{TENANT}"
approvers = [{{ channel = "webhook", address = "{receiver}/inbox", identity = "alice" }}]

[tenants.policy]
min_sample_size = 5
validate_after_polls = 2
escalate_after_s = 600

[[targets]]
tenant = "{TENANT}"
service = "{SERVICE}"
health_url = "{health_url}"
recovery_webhook = "{receiver}/recover"
webhook_secret_env = "SCALE_RECOVERY_SECRET"
poll_timeout_s = 1.0
"""


def health(score: float) -> dict[str, Any]:
    status = "ok" if score >= 85 else "critical"
    return {
        "service": SERVICE,
        "status": status,
        "health_score": {"score": score, "status": status},
        "metrics": {"overall_p95_ms": 40.0, "error_rate_5xx": 0.0, "sample_size": 500},
    }


async def healthz(c: httpx.AsyncClient, base: str) -> tuple[int, dict[str, Any]]:
    r = await c.get(f"{base}/healthz")
    return r.status_code, r.json()


async def status(c: httpx.AsyncClient, base: str) -> dict[str, Any]:
    r = await c.get(f"{base}/__alertengine/status", headers=ADMIN)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def system_modes(db: Path) -> list[Any]:
    """The ``_system`` mode entries and whether every chain in the file verifies."""
    ledger = SqliteLedgerStore(db, key=SECRETS["ALERTENGINE_LEDGER_KEY"].encode())
    try:
        for tenant in await ledger.tenants():
            result = await ledger.verify(tenant)
            assert result.ok, (tenant, result)
        return [
            e
            for e in await ledger.read(LedgerQuery(tenant_id="_system", limit=10_000))
            if e.kind == "mode"
        ]
    finally:
        await ledger.close()
