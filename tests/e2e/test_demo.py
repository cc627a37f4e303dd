"""`alertengine demo --headless` end to end, as CI runs it: a separate process, real HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_headless_runs_the_whole_loop(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alertengine",
            "demo",
            "--headless",
            "--timeout",
            "150",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=220,
        # A narrow terminal: the approval link must still print whole, on one line.
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "40", "HOME": str(tmp_path)},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert (
        "demo OK incidents=1 approvals=1 webhook_calls=1 ledger_ok=True final=RESOLVED "
        "balanced=True" in out
    )
    # The audit step: after `ledger verify`, the books balance (the receiver's signed receipt is
    # there), and it says where the checkpoint and its public key are.
    assert re.search(r"ledger verify: OK .*\n\s+ledger reconcile: BALANCED — 1 authorization", out)
    assert "1 receipt(s) signed by the receiver" in out, out
    shown_key = re.search(r"public key (\S+) \(http://127\.0\.0\.1:\d+/ledger/public-key;", out)
    assert shown_key is not None, out
    assert "Nothing will run without your approval." in out
    # Shutting down, nothing is written to a store already closed.
    assert "StoreUnavailable" not in out, out
    # On the phone: acknowledge, then approve in chat (signed Twilio webhooks, TwiML replies).
    assert re.search(r"taps \"I'm on it\" in WhatsApp → Acknowledged", out), out
    assert re.search(r"taps \"Approve\" in WhatsApp → Approved\.", out), out
    # The message shows the spike the demo announces ("checkout now takes ~1.2 s") ...
    announced = re.search(r"takes ~(\d+(?:\.\d+)?) s", out)
    shown = re.search(r"P95: (\d+(?:\.\d+)?)(ms|s)\b", out)
    assert announced is not None and shown is not None, out
    p95_s = float(shown.group(1)) / (1000 if shown.group(2) == "ms" else 1)
    assert p95_s >= 0.8 * float(announced.group(1)), out
    # ... and a diagnosis that names a cause, consistent with the restart it proposes.
    assert "Uncertain" not in out and "no action suggested" not in out, out
    cause = out.split("Likely cause:", 1)[1].split("\n\n", 1)[0]
    assert "Slow" in cause and "c4e2a91" in cause, cause
    # The link is printed whole: the same URL, token and all, in the message and on its line.
    in_msg = re.search(r"Approve fix \(expires in \d+ min\): (\S+)", out)
    on_line = re.search(r"Approval link: (\S+)", out)
    assert in_msg is not None and on_line is not None, out
    url = on_line.group(1)
    assert url == in_msg.group(1)
    token = url.split("?token=", 1)[1]
    assert url.startswith("http://127.0.0.1:") and token.count(".") == 2 and len(token) > 200
    db = f"sqlite:///{tmp_path / 'alertengine-demo.db'}"
    key = (tmp_path / "ledger.key").read_text()
    # The auditor's tools on what the demo left behind.
    cli = [sys.executable, "-m", "alertengine", "ledger"]
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "ALERTENGINE_LEDGER_KEY": key}
    v = subprocess.run([*cli, "verify", "--store-url", db], capture_output=True, text=True, env=env)
    assert v.returncode == 0 and "OK" in v.stdout, v.stdout + v.stderr
    r = subprocess.run(
        [*cli, "replay", "--store-url", db, "--json"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr
    (inc,) = json.loads(r.stdout)["demo"]
    assert inc["stage"] == "RESOLVED" and inc["approvers"] == ["person:oncall-alice"]
    rep = subprocess.run(
        [
            *cli,
            "report",
            "--tenant",
            "demo",
            "--since",
            "2000-01-01",
            "--until",
            "2100-01-01",
            "--store-url",
            db,
            "--out",
            str(tmp_path / "report.html"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "person:oncall-alice" in (tmp_path / "report.html").read_text()

    # Double entry: the real `ledger reconcile` balances the demo's books ...
    rec = subprocess.run(
        [*cli, "reconcile", "--tenant", "demo", "--store-url", db, "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert rec.returncode == 0, rec.stdout + rec.stderr
    books = json.loads(rec.stdout)
    assert books["balanced"] is True and books["mismatches"] == [], books
    assert (books["authorizations"], books["executions"], books["receipts"]) == (1, 1, 1)
    # ... because the executor ledgered the receiver's signed receipt for its call ...
    exp = subprocess.run(
        [*cli, "export", "--tenant", "demo", "--store-url", db],
        capture_output=True,
        text=True,
        env=env,
    )
    assert exp.returncode == 0, exp.stderr
    entries = [json.loads(line) for line in exp.stdout.splitlines() if line.strip()]
    (receipt,) = [e for e in entries if e["kind"] == "receipt"]
    (executed,) = [e for e in entries if e["kind"] == "transition" and e["stage"] == "EXECUTED"]
    assert receipt["decision"] == "accepted" and receipt["data"]["valid"] is True, receipt
    assert receipt["data"]["idempotency_key"] == executed["data"]["idempotency_key"]
    assert receipt["seq"] < executed["seq"]
    # ... and the receiver's own records agree: its receipts balance against the ledger too,
    # and the checkpoint it witnessed verifies with the public key the demo printed.
    exported = {}
    for what in ("receipts", "checkpoints"):
        got = subprocess.run(
            [
                sys.executable,
                "-m",
                "alertengine.receiver",
                what,
                str(tmp_path / "receiver-witness.db"),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        assert got.returncode == 0, got.stderr
        exported[what] = tmp_path / f"{what}.json"
        exported[what].write_text(got.stdout)
    assert len(json.loads(exported["receipts"].read_text())) == 1
    both = subprocess.run(
        [*cli, "reconcile", "--tenant", "demo", "--store-url", db,
         "--receipts", str(exported["receipts"]), "--json"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert both.returncode == 0 and json.loads(both.stdout)["balanced"] is True, both.stdout
    pub = subprocess.run(
        [*cli, "public-key", "--store-url", db], capture_output=True, text=True, env=env
    )
    assert pub.returncode == 0 and pub.stdout.strip() == shown_key.group(1), pub.stdout + pub.stderr
    witnessed = subprocess.run(
        [*cli, "verify", "--store-url", db, "--witness", str(exported["checkpoints"])],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert witnessed.returncode == 0, witnessed.stdout + witnessed.stderr
