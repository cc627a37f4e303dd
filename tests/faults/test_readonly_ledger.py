"""Issue 10, a ledger file that turns read-only under a running ``alertengine serve``.

The ledger lives on a loop-mounted ext4 image; the test makes its database and WAL files
immutable (``chattr +i``: even root cannot write them, open descriptors included — the way a
file system gone read-only behaves to a process that already has the file open). Why not
``chmod`` or a read-only remount: the tests run as root, whom file modes do not stop, and
Linux refuses to remount read-only a file system with files open for writing (EBUSY) — the
very state a running orchestrator keeps its ledger in. The
orchestrator must go EMERGENCY with the cause in ``/healthz`` (503), the status and the log,
stay there without flapping, and come back by itself once the files are writable again.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from alertengine.demo import _serve
from tests.faults.ledger_fs import config, ext4_image, healthz, status, system_modes
from tests.faults.test_disk_full import serve, target_app, ticks_pass
from tests.scale.cluster import Receiver, until, wait_http
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.slow]


def chattr(flag: str, *files: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, files)], check=True, capture_output=True)


@pytest.mark.timeout(180)
async def test_read_only_ledger_is_one_emergency_that_ends_by_itself(tmp_path: Path) -> None:
    port, app_port, rx_port = free_port(), free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    score = {"v": 97.0}
    rx = Receiver()
    with ext4_image(tmp_path / "disk", tmp_path / "ledger.img") as disk:
        db = disk / "ae.db"
        cfg = tmp_path / "alertengine.toml"
        cfg.write_text(
            config(
                db,
                port=port,
                health_url=f"http://127.0.0.1:{app_port}/health/alerts",
                receiver=f"http://127.0.0.1:{rx_port}",
            )
        )
        proc = serve(cfg, tmp_path / "orch.log")
        try:
            async with (
                _serve(target_app(score), app_port),
                _serve(rx.app(), rx_port),
                httpx.AsyncClient(timeout=5) as c,
            ):
                await wait_http(f"{base}/healthz", 60, [proc])

                async def polled() -> bool:
                    st = await status(c, base)
                    return st["stats"]["polls"] >= 3 and st["mode"] == "NORMAL"

                await until(polled, 30, "the orchestrator never polled its target")
                locked = [db, db.with_name(db.name + "-wal")]
                chattr("+i", *locked)

                async def emergency() -> dict[str, Any] | None:
                    code, body = await healthz(c, base)
                    return body if code == 503 else None

                body = await until(emergency, 20, "/healthz never said the ledger is read-only")
                assert body["mode"] == "EMERGENCY" and body["causes"]["ledger"] == "read-only"
                st = await status(c, base)
                # SQLite's own words, and what they mean here.
                assert "disk I/O error" in st["causes"]["ledger"], st
                assert "not writable" in st["causes"]["ledger"], st

                def still_emergency(code: int, body: dict[str, Any]) -> None:
                    assert (code, body["mode"]) == (503, "EMERGENCY"), body

                await ticks_pass(c, base, 12, still_emergency)
                chattr("-i", *locked)

                async def normal() -> bool:
                    code, body = await healthz(c, base)
                    return code == 200 and body["mode"] == "NORMAL"

                await until(normal, 40, "the orchestrator did not come back by itself")
                assert (await status(c, base))["pending_system_entries"] == 0
        finally:
            proc.stop()
        log = proc.tail(200_000)
        assert "EMERGENCY" in log and "disk I/O error" in log, log[-3000:]
        modes = await system_modes(db)
    assert [e.decision for e in modes] == ["EMERGENCY", "NORMAL"], [e.reason for e in modes]
    assert rx.messages == [] and rx.recoveries == []
