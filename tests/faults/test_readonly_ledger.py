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

import pytest

from tests.faults.ledger_fs import ext4_image, healthz, status, system_modes
from tests.faults.test_disk_full import serving, still_emergency, ticks_pass
from tests.scale.cluster import until

pytestmark = [pytest.mark.slow]


def chattr(flag: str, *files: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, files)], check=True, capture_output=True)


@pytest.mark.timeout(180)
async def test_read_only_ledger_is_one_emergency_that_ends_by_itself(tmp_path: Path) -> None:
    with ext4_image(tmp_path / "disk", tmp_path / "ledger.img") as disk:
        db = disk / "ae.db"
        async with serving(db, tmp_path) as s:
            c, base, rx = s.c, s.base, s.rx
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

            await ticks_pass(c, base, 12, still_emergency)
            chattr("-i", *locked)

            await until(s.normal, 40, "the orchestrator did not come back by itself")
            assert (await status(c, base))["pending_system_entries"] == 0
        log = s.proc.tail(200_000)
        assert "EMERGENCY" in log and "disk I/O error" in log, log[-3000:]
        modes = await system_modes(db)
    assert [e.decision for e in modes] == ["EMERGENCY", "NORMAL"], [e.reason for e in modes]
    assert rx.messages == [] and rx.recoveries == []
