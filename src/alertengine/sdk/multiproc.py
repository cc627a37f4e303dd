"""Several worker processes on one host, one answer: per-process files merged on read.

``uvicorn --workers 4`` or gunicorn with uvicorn workers runs the app in several processes; with
the in-memory store each would answer ``/health/alerts`` for its own quarter of the traffic. Like
``prometheus_client``'s multiprocess mode, each process here writes its own file in one shared
directory (``ALERTENGINE_MULTIPROC_DIR``) and every read merges all of them. The payloads are the
same per-second buckets the Redis store carries (DDSketch bins merge by addition: lossless).

One file per process, ``{service hash}.{pid}.{token}.aep``, rewritten atomically (temporary file
+ ``os.replace``) at each publish: a header line, then one ``{second} {payload}`` line per second
still inside ``ttl_s``. A reader never sees half a file.

Dead workers: a file whose pid no longer exists still counts for the seconds it covers (those
requests were served) and is reported as an *exited* process; once its newest second has left
``ttl_s`` the file is deleted. Liveness uses the pid, so the directory belongs to one host.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SUFFIX = ".aep"
#: A temporary file older than this was left by a writer that died mid-write.
STALE_TMP_S = 60.0


class DirectoryUnavailable(Exception):
    """The directory could not be written or read."""


def _service_tag(service: str) -> str:
    return hashlib.sha256(service.encode()).hexdigest()[:12]


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), else None.

    Written into each file beside the pid, so a pid the kernel reused for another process is
    not mistaken for the worker that wrote the file."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int, start: int | None = None) -> bool:
    """Whether the process that wrote a file still runs on this host (signal 0 probes, sends
    nothing); with ``start``, also that the pid was not reused since."""
    if pid <= 0:
        return False
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


@dataclass
class Membership:
    """What the last read saw: processes still running, and exited ones whose data remains."""

    live: set[str] = field(default_factory=set)
    exited: set[str] = field(default_factory=set)
    removed_files: int = 0


class DirectoryStore:
    """A :class:`~alertengine.sdk.stores.MetricsStore` over per-process files in one directory."""

    name = "multiprocess"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.membership = Membership()
        self._mine: dict[tuple[str, str], dict[int, bytes]] = {}
        self._hostname = socket.gethostname()
        self._start: tuple[int, int | None] | None = None

    def _own_start(self) -> int | None:
        pid = os.getpid()  # changes after a fork: look it up again then
        if self._start is None or self._start[0] != pid:
            self._start = (pid, process_start(pid))
        return self._start[1]

    def ensure_directory(self) -> None:
        """Create the directory (fails loudly at ``instrument()`` if it cannot be)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise PermissionError(f"multiprocess directory {self.directory} is not writable")

    def _path(self, service: str, replica: str) -> Path:
        token = hashlib.sha256(replica.encode()).hexdigest()[:16]
        return self.directory / f"{_service_tag(service)}.{os.getpid()}.{token}{SUFFIX}"

    # -- writing (this process's file only) --------------------------------------------------
    async def publish(
        self, service: str, replica: str, payloads: Mapping[int, bytes], ttl_s: int
    ) -> None:
        secs = self._mine.setdefault((service, replica), {})
        secs.update(payloads)
        if secs:
            newest = max(secs)
            for sec in [s for s in secs if s <= newest - ttl_s]:
                del secs[sec]
        header = json.dumps(
            {
                "v": 1,
                "service": service,
                "replica": replica,
                "pid": os.getpid(),
                "start": self._own_start(),
                "host": self._hostname,
            },
            separators=(",", ":"),
        ).encode()
        lines = [header] + [b"%d %s" % (sec, secs[sec]) for sec in sorted(secs)]
        body = b"\n".join(lines) + b"\n"
        path = self._path(service, replica)
        try:
            await asyncio.to_thread(_write_atomically, path, body)
        except OSError as exc:
            raise DirectoryUnavailable(f"multiprocess write failed: {exc}") from exc

    async def register(self, service: str, replica: str, ttl_s: int) -> None:
        """Announce this process (an empty file) so it is counted before its first request."""
        await self.publish(service, replica, {}, ttl_s)

    # -- reading (every process's file) ------------------------------------------------------
    async def fetch(self, service: str, lo: int, hi: int) -> list[tuple[str, int, bytes]]:
        try:
            rows, membership = await asyncio.to_thread(self._scan, service, lo, hi)
        except OSError as exc:
            raise DirectoryUnavailable(f"multiprocess read failed: {exc}") from exc
        self.membership = membership
        return rows

    def _scan(
        self, service: str, lo: int, hi: int
    ) -> tuple[list[tuple[str, int, bytes]], Membership]:
        tag = _service_tag(service)
        rows: list[tuple[str, int, bytes]] = []
        seen = Membership()
        with os.scandir(self.directory) as entries:
            names = []
            for e in entries:
                if e.name.startswith(tag + "."):
                    names.append(e.name)
                elif e.name.startswith(".tmp-") and _older_than(e, STALE_TMP_S):
                    # A writer killed between write and rename left it; nobody will finish it.
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(e.path)
        for name in names:
            if not name.endswith(SUFFIX):
                continue
            path = self.directory / name
            try:
                raw = path.read_bytes()
            except FileNotFoundError:  # removed between the listing and the read
                continue
            header_line, _, rest = raw.partition(b"\n")
            try:
                header = json.loads(header_line)
                replica = str(header["replica"])
                pid = int(header["pid"])
                if header.get("service") != service:
                    continue
            except (ValueError, KeyError, TypeError):
                continue  # not ours or torn beyond repair: the engine counts decode errors
            same_host = header.get("host") == self._hostname
            start = header.get("start")
            alive = pid_alive(pid, start if isinstance(start, int) else None) if same_host else True
            newest = None
            for line in rest.splitlines():
                sec_s, _, payload = line.partition(b" ")
                try:
                    sec = int(sec_s)
                except ValueError:
                    continue
                newest = sec if newest is None else max(newest, sec)
                if lo < sec <= hi:
                    rows.append((replica, sec, payload))
            in_window = newest is not None and newest > lo
            if alive:
                seen.live.add(replica)
            elif in_window:
                seen.exited.add(replica)
            # A dead process's file is garbage once nothing in it can be read again.
            if not alive and not in_window:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    seen.removed_files += 1
        return rows, seen

    async def aclose(self) -> None:
        return None


def _older_than(entry: os.DirEntry[str], seconds: float) -> bool:
    try:
        return time.time() - entry.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def _write_atomically(path: Path, body: bytes) -> None:
    tmp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
