"""C2SP signed-note / tlog-checkpoint: the Go reference vector, and every alteration refused."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertengine.ledger.checkpoint import (
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    TreeHead,
    key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
    split_notes,
)
from alertengine.ledger.keys import (
    ENV_CHECKPOINT_KEY,
    ENV_CHECKPOINT_KEY_FILE,
    load_signer,
)

# golang.org/x/mod/sumdb/note (note.go's example and note_test.go): a signer key whose
# base64 holds a '+', its verifier key, and the note it signs (Ed25519 is deterministic,
# so ours must be byte for byte the same for Go witnesses and verifiers to accept it).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2p"
    "ZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

SIGNER = NoteSigner.from_skey(GO_SKEY)
HEAD = TreeHead("alertengine/ledger/t1", 30, hashlib.sha256(b"root").digest())


def test_the_go_reference_note_byte_for_byte() -> None:
    assert SIGNER.verifier.vkey == GO_VKEY
    assert SIGNER.skey == GO_SKEY
    assert sign_note(GO_TEXT, SIGNER) == GO_NOTE
    text, by = open_note(GO_NOTE, [NoteVerifier.from_vkey(GO_VKEY)])
    assert text == GO_TEXT and [v.name for v in by] == ["PeterNeumann"]


def test_key_id_is_the_spec_hash() -> None:
    v = NoteVerifier.from_vkey(GO_VKEY)
    want = hashlib.sha256(b"PeterNeumann\n\x01" + v.key).digest()[:4]
    assert key_id("PeterNeumann", v.key) == want == bytes.fromhex("c74f20a3")


def test_checkpoint_format_and_round_trip() -> None:
    note = sign_checkpoint(HEAD, SIGNER)
    lines = note.split("\n")
    assert lines[:3] == ["alertengine/ledger/t1", "30", base64.b64encode(HEAD.root).decode()]
    assert lines[3] == "" and lines[4].startswith("\u2014 PeterNeumann ")
    assert open_checkpoint(note, [SIGNER.verifier], origin=HEAD.origin) == HEAD


def test_another_key_or_origin_is_refused() -> None:
    note = sign_checkpoint(HEAD, SIGNER)
    other = NoteSigner.generate("PeterNeumann")  # same name, another key: another key id
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        open_checkpoint(note, [other.verifier])
    with pytest.raises(CheckpointError, match="not 'alertengine/ledger/t2'"):
        open_checkpoint(note, [SIGNER.verifier], origin="alertengine/ledger/t2")


def test_a_forged_signature_claiming_the_known_key_is_refused() -> None:
    forger = NoteSigner.generate("PeterNeumann")
    good = sign_checkpoint(HEAD, SIGNER)
    fake_head = TreeHead(HEAD.origin, 31, HEAD.root)
    forged = sign_note(fake_head.text(), forger)
    # Swap in the real key's id so the line claims to be the known key.
    sig_line = forged.rsplit("\n", 2)[1]
    raw = base64.b64decode(sig_line.split(" ")[2])
    fake = SIGNER.verifier.key_id + raw[4:]
    note = fake_head.text() + "\n\u2014 PeterNeumann " + base64.b64encode(fake).decode() + "\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(note, [SIGNER.verifier])
    assert open_checkpoint(good, [SIGNER.verifier]).size == 30


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_changed_byte_of_a_checkpoint_fails(data: st.DataObject) -> None:
    note = sign_checkpoint(HEAD, SIGNER).encode()
    i = data.draw(st.integers(0, len(note) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != note[i]))
    changed = note[:i] + bytes([new]) + note[i + 1 :]
    try:
        text = changed.decode()
    except UnicodeDecodeError:
        return  # not even text: nothing to open
    try:
        head = open_checkpoint(text, [SIGNER.verifier])
    except CheckpointError:
        return
    # Base64 has slack bits and padding: a change there may decode to the same bytes.
    assert head == HEAD


def test_malformed_keys_are_refused() -> None:
    for bad in ("", "name", "name+00000000+AAAA", GO_VKEY.replace("c74f20a3", "c74f20a4")):
        with pytest.raises(CheckpointError):
            NoteVerifier.from_vkey(bad)
    with pytest.raises(CheckpointError):
        NoteSigner.from_skey(GO_SKEY.replace("PRIVATE", "PUBLIC"))
    with pytest.raises(CheckpointError):
        NoteSigner("has space", b"\x00" * 32)
    assert "AYEK" not in repr(SIGNER)  # the private key stays out of logs and tracebacks


def test_split_notes_of_a_witness_file() -> None:
    a = sign_checkpoint(HEAD, SIGNER)
    b = sign_checkpoint(TreeHead(HEAD.origin, 31, HEAD.root), SIGNER)
    assert split_notes(a + b) == [a, b]
    assert split_notes(a + "\n\n" + b + "\n") == [a, b]


def test_key_from_env_file_or_generated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert load_signer({ENV_CHECKPOINT_KEY: GO_SKEY}).skey == GO_SKEY
    with pytest.raises(CheckpointError, match=ENV_CHECKPOINT_KEY):
        load_signer({ENV_CHECKPOINT_KEY: "PRIVATE+KEY+x+00+AA"})
    named = tmp_path / "named.key"
    with pytest.raises(CheckpointError, match="does not exist"):
        load_signer({ENV_CHECKPOINT_KEY_FILE: str(named)})  # a named file is never invented
    named.write_text(GO_SKEY + "\n")
    assert load_signer({ENV_CHECKPOINT_KEY_FILE: str(named)}).skey == GO_SKEY
    with pytest.raises(CheckpointError, match="does not exist"):
        load_signer({}, state_dir=tmp_path / "state", create=False)
    with caplog.at_level("WARNING"):
        made = load_signer({}, state_dir=tmp_path / "state")
    path = tmp_path / "state" / "checkpoint.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert made.verifier.vkey in caplog.text and str(path) in caplog.text
    assert made.skey not in caplog.text
    assert load_signer({}, state_dir=tmp_path / "state").skey == made.skey  # stable identity
