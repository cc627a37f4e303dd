"""`alertengine demo` as a person uses it: the phone page in Chromium shows the message, its
link opens the approval page, Confirm runs the recovery; Ctrl-C then stops everything cleanly.

The demo runs as a child process that gets Ctrl-C the way a foreground program in a
terminal does, whatever the test process was started with: a shell starts a background
job (``pytest … &``) with SIGINT ignored, a child inherits an ignored signal across exec,
and Python then never raises KeyboardInterrupt, so the SIGINT the test sends would do
nothing. :func:`spawn_interruptible` restores the default for the child.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@contextlib.contextmanager
def _sigint_not_ignored() -> Iterator[None]:
    """While spawning: SIGINT not ignored here, so the child starts with the default.

    An ignored signal stays ignored across fork and exec; a caught one is reset to the
    default by exec. Done around the spawn in the parent (main thread) rather than in a
    ``preexec_fn``, which is unsafe once the process has threads.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def spawn_interruptible(args: list[str], **kw: Any) -> subprocess.Popen[str]:
    """Start ``args`` with SIGINT at its default and in a process group of its own (so
    :func:`stop` can take down anything it started, and a Ctrl-C meant for pytest is not
    also delivered to it)."""
    with _sigint_not_ignored():
        return subprocess.Popen(args, process_group=0, text=True, **kw)


def stop(proc: subprocess.Popen[str], grace_s: float = 30.0) -> str | None:
    """Ctrl-C, then wait up to ``grace_s``; if it is still running, SIGKILL its whole group.

    Returns None if it stopped by itself on SIGINT, else what went wrong.
    """
    if proc.poll() is not None:
        return None
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace_s)
        return None
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return f"still running {grace_s:.0f} s after SIGINT: killed"


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


def test_the_child_gets_sigint_at_its_default_even_when_the_parent_ignores_it() -> None:
    """What a background ``pytest … &`` looks like to the demo: SIGINT ignored in the
    parent must not reach the child, and a SIGINT then interrupts the child."""
    probe = (
        "import signal, time\n"
        "try:\n"
        "    print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
    )
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = spawn_interruptible([sys.executable, "-c", probe], stdout=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, before)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "True"  # the child is up and handles SIGINT
        assert stop(proc) is None
        assert proc.stdout.read().strip() == "interrupted"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.timeout(240)
@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed")
def test_phone_page_link_approves_and_ctrl_c_stops_cleanly(tmp_path):
    from playwright.sync_api import sync_playwright

    proc = spawn_interruptible(
        [sys.executable, "-m", "alertengine", "demo", "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
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
            # The WhatsApp quick reply: a signed Twilio webhook; the answer shows in the chat.
            page.click('button:has-text("I\'m on it")')
            page.wait_for_selector("text=Acknowledged: you are on it")
            page.click("text=Review & approve")
            page.wait_for_selector("#confirm")
            assert "restart checkout workers" in page.content()
            page.click("#confirm")
            page.wait_for_load_state()
            assert "approved" in page.content().lower() or "authorized" in page.content().lower()
            browser.close()
        out.wait_for(r"Recovery webhook called", 60)
        out.wait_for(r"ledger verify: OK", 90)
        # Approved in the browser, the books balance too: the receiver's receipt is ledgered.
        out.wait_for(r"ledger reconcile: BALANCED — 1 authorization\(s\), 1 execution\(s\)", 30)
        out.wait_for(r"Press Ctrl-C to stop", 30)
    finally:
        # Always stopped (an earlier failure keeps its own message): SIGINT, then the group.
        problem = stop(proc)
    out.text += (proc.stdout.read() or "") if proc.stdout else ""
    assert problem is None, f"demo {problem}\n{out.text}"
    assert proc.returncode == 0, out.text
    assert "Traceback" not in out.text, out.text
