"""The auditor's one-pager as a real PDF (ReportLab), read back with pypdf.

Made by the real command (``alertengine ledger report --pdf``) from a real SQLite ledger;
the sentences an auditor reads must be in the PDF's text, and the HTML says the same.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pypdf import PdfReader
from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.ledger.checkpoint import NoteSigner, NoteVerifier, open_checkpoint
from alertengine.ledger.keys import KEY_FILE_NAME, write_key_file
from alertengine.ledger.sqlite import SqliteLedgerStore
from tests.ledger.conftest import KEY
from tests.ledger.test_reconcile import ALICE, BOB, executed

runner = CliRunner()
LOG = NoteSigner.generate("alertengine")


def pdf_text(path: Path) -> str:
    reader = PdfReader(path)
    return " ".join(" ".join((page.extract_text() or "") for page in reader.pages).split())


def make_ledger(tmp_path: Path, *, missing_receipt: bool = False) -> tuple[Path, int]:
    db = tmp_path / "ae.db"
    write_key_file(tmp_path / KEY_FILE_NAME, LOG)  # the log's key, next to the ledger

    async def go() -> int:
        store = SqliteLedgerStore(db, key=KEY)
        await executed(store, "inc-checkout-1")
        _, _, seq = await executed(
            store, "inc-billing-2", required=2, approvers=(ALICE, BOB),
            ledger_receipt=not missing_receipt,
        )  # fmt: skip
        await store.close()
        return seq

    return db, asyncio.run(go())


def report(tmp_path: Path, db: Path) -> tuple[int, str, str, str]:
    pdf, html = tmp_path / "report.pdf", tmp_path / "report.html"
    now = time.time()
    res = runner.invoke(
        app,
        [
            "ledger", "report", "--tenant", "acme", "--since", str(now - 3600),
            "--until", str(now + 3600), "--pdf", str(pdf), "--out", str(html),
            "--store-url", f"sqlite:///{db}",
        ],
        env={"ALERTENGINE_LEDGER_KEY": KEY.decode()},
    )  # fmt: skip
    return res.exit_code, res.output, pdf_text(pdf), html.read_text()


def test_the_pdf_says_who_authorized_what_when_the_books_and_the_checkpoint(
    tmp_path: Path,
) -> None:
    db, _ = make_ledger(tmp_path)
    code, output, text, html = report(tmp_path, db)
    assert code == 0, output
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF-")
    assert "Audit report: acme" in text and "UTC (end exclusive)" in text
    assert "Ledger verification: OK." in text
    # Who authorized what, when, under which policy version.
    assert f"{ALICE} authorized 'restart' on inc-checkout-1" in text
    assert f"{ALICE}, {BOB} authorized 'restart' on inc-billing-2" in text
    assert text.count("UTC under policy 1.0.0") == 2
    # The incidents table names both approvers of the two-person authorization.
    assert html.count(f"<td>{ALICE}, {BOB}</td>") == 1
    assert (
        "Reconciliation: BALANCED. Every execution has its authorization quorum and exactly "
        "one receipt; 2 authorization(s), 2 execution(s), 2 receipt(s)" in text
    )
    # The checkpoint, the key, and how to verify it.
    assert "alertengine/ledger/acme" in text
    assert f"Public key: {LOG.verifier.vkey}" in text
    assert "To verify: save the checkpoint above as checkpoint.txt" in text
    assert "alertengine ledger check-proof proof.json --public-key KEY" in text
    # The HTML says the same, and its checkpoint verifies with the public key alone.
    for sentence in (
        "Reconciliation: BALANCED.",
        "To verify: save the checkpoint above as checkpoint.txt",
        f"{LOG.verifier.vkey}",
    ):
        assert sentence in html
    note = html.split('<pre id="checkpoint">', 1)[1].split("</pre>", 1)[0]
    head = open_checkpoint(note, [NoteVerifier.from_vkey(LOG.verifier.vkey)])
    assert head.origin == "alertengine/ledger/acme" and f"tree size {head.size}" in text


def test_the_pdf_lists_a_mismatch_with_its_seq(tmp_path: Path) -> None:
    db, seq = make_ledger(tmp_path, missing_receipt=True)
    code, _, text, html = report(tmp_path, db)
    assert code == 0  # the chain verifies; the books are shown (reconcile exits 1 on them)
    assert "Reconciliation: 1 MISMATCH(ES)" in text and "BALANCED" not in text
    assert f"missing_receipt (seq {seq}): inc-billing-2 was executed with key" in text
    assert f"missing_receipt (seq {seq})" in html
