"""`alertengine demo` as a person uses it: the phone page in Chromium shows the message, its
link opens the approval page, Confirm runs the recovery; Ctrl-C then stops everything cleanly."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed"),
]


class Output:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.text = ""
        self.sel = selectors.DefaultSelector()
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        self.sel.register(proc.stdout, selectors.EVENT_READ)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text)
            if m:
                return m
            for key, _ in self.sel.select(timeout=0.2):
                chunk = key.fileobj.read()  # type: ignore[union-attr]
                if chunk:
                    self.text += chunk
            if self.proc.poll() is not None and not re.search(pattern, self.text):
                self.text += self.proc.stdout.read() if self.proc.stdout else ""
                break
        raise AssertionError(f"{pattern!r} not seen in demo output:\n{self.text}")


@pytest.mark.timeout(240)
def test_phone_page_link_approves_and_ctrl_c_stops_cleanly(tmp_path):
    from playwright.sync_api import sync_playwright

    proc = subprocess.Popen(
        [sys.executable, "-m", "alertengine", "demo", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "300", "HOME": str(tmp_path)},
    )
    out = Output(proc)
    try:
        phone = out.wait_for(r"on-call phone \(outbox\)\s+(http://\S+/phone)", 90).group(1)
        out.wait_for(r"Open it \(or the phone page\) in a browser", 120)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(phone)
            assert "Nothing will run without your approval." in page.content()
            page.click("text=Review & approve")
            page.wait_for_selector("#confirm")
            assert "restart checkout workers" in page.content()
            page.click("#confirm")
            page.wait_for_load_state()
            assert "approved" in page.content().lower() or "authorized" in page.content().lower()
            browser.close()
        out.wait_for(r"Recovery webhook called", 60)
        out.wait_for(r"ledger verify: OK", 90)
        out.wait_for(r"Press Ctrl-C to stop", 30)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    out.text += proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 0, out.text
    assert "Traceback" not in out.text, out.text
