"""The multiprocess directory store on its own: files of dead workers, junk, torn writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI

from alertengine import instrument
from alertengine.sdk import SDKConfig
from alertengine.sdk.multiproc import DirectoryStore, _service_tag, process_start


def _file(directory: Path, replica: str, pid: int, lines: bytes, start: int | None = None) -> Path:
    header = json.dumps(
        {
            "v": 1,
            "service": "svc",
            "replica": replica,
            "pid": pid,
            "start": start,
            "host": socket.gethostname(),
        }
    ).encode()
    path = directory / f"{_service_tag('svc')}.{pid}.{replica.rsplit(':', 1)[-1]}.aep"
    path.write_bytes(header + b"\n" + lines)
    return path


async def test_dead_worker_files_are_removed_once_their_data_left_the_window(
    tmp_path: Path,
) -> None:
    # A real process that has exited: its pid is known dead.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=10)
    store = DirectoryStore(tmp_path)
    store.ensure_directory()
    old = _file(tmp_path, f"h:{child.pid}:old", child.pid, b"100 {}\n")  # long gone
    recent = _file(tmp_path, f"h:{child.pid}:recent", child.pid, b"995 {}\n")
    junk = tmp_path / f"{_service_tag('svc')}.1.junk.aep"
    junk.write_bytes(b"not json\n")
    rows = await store.fetch("svc", 940, 1000)
    assert rows == [(f"h:{child.pid}:recent", 995, b"{}")]
    assert not old.exists()  # dead and out of the window: garbage
    assert recent.exists()  # dead, but its second 995 is still in the window
    assert store.membership.exited == {f"h:{child.pid}:recent"}
    assert store.membership.live == set()
    assert junk.exists()  # not ours to judge: ignored, never deleted


async def test_a_live_worker_is_counted_and_its_seconds_merge(tmp_path: Path) -> None:
    a, b = DirectoryStore(tmp_path), DirectoryStore(tmp_path)
    a.ensure_directory()
    await a.publish("svc", "h:1:a", {10: b"x", 11: b"y"}, ttl_s=60)
    await b.register("svc", "h:1:b", ttl_s=60)  # a worker without requests yet
    await a.publish("svc", "h:1:a", {12: b"z"}, ttl_s=60)  # rewritten, earlier seconds kept
    rows = sorted(await b.fetch("svc", 9, 12))
    assert rows == [("h:1:a", 10, b"x"), ("h:1:a", 11, b"y"), ("h:1:a", 12, b"z")]
    assert b.membership.live == {"h:1:a", "h:1:b"}  # this test process is alive: both live
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave nothing behind


def test_one_variable_switches_the_default_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALERTENGINE_MULTIPROC_DIR", str(tmp_path / "mp"))
    engine = instrument(FastAPI())
    assert isinstance(engine.store, DirectoryStore)
    assert engine.status()["store"] == "multiprocess"
    assert (tmp_path / "mp").is_dir()  # created at instrument()


def test_an_unusable_directory_fails_at_instrument(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError):
        instrument(FastAPI(), config=SDKConfig(multiproc_dir=str(blocker / "sub")))
    with pytest.raises(ValueError, match="multiproc_dir"):
        SDKConfig(store="multiprocess")


async def test_a_reused_pid_is_not_taken_for_the_dead_worker(tmp_path: Path) -> None:
    # This pid is alive, but the process that wrote the file started at another time.
    me = os.getpid()
    real_start = process_start(me)
    assert real_start is not None  # Linux /proc
    ghost = _file(tmp_path, f"h:{me}:ghost", me, b"100 {}\n", start=real_start - 1)
    mine = _file(tmp_path, f"h:{me}:mine", me, b"100 {}\n", start=real_start)
    store = DirectoryStore(tmp_path)
    await store.fetch("svc", 940, 1000)
    assert not ghost.exists()  # its writer is dead (pid reused), its data long gone
    assert mine.exists() and store.membership.live == {f"h:{me}:mine"}
