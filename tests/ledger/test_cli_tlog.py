"""``alertengine ledger public-key|checkpoint|prove|check-proof|verify --witness|migrate|
rotate-checkpoint-key`` end to end, on a real SQLite file and a real Redis."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import redis as redis_sync
from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.ledger.checkpoint import NoteSigner
from alertengine.ledger.keys import load_signer
from alertengine.ledger.redis import RedisLedgerStore
from alertengine.ledger.sqlite import SqliteLedgerStore
from tests.ledger.conftest import KEY, draft, sqlite_zero_tree_node
from tests.support.redis_server import RedisServer

runner = CliRunner()
ENV = {
    "ALERTENGINE_LEDGER_KEY": KEY.decode(),
    "ALERTENGINE_CHECKPOINT_KEY": "",
    "ALERTENGINE_CHECKPOINT_KEY_FILE": "",
}


def append(url: str, tenant: str, start: int, n: int, tag: str = "") -> None:
    async def go() -> None:
        store = (
            SqliteLedgerStore(url[len("sqlite:///") :], key=KEY)
            if url.startswith("sqlite")
            else RedisLedgerStore(url, key=KEY)
        )
        try:
            for i in range(start, start + n):
                await store.append(tenant, [draft(tenant, i, reason=f"entry {i}{tag}")])
        finally:
            await store.close()

    asyncio.run(go())


def ledger(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    res = runner.invoke(app, ["ledger", *args], env={**ENV, **(env or {})})
    return res.exit_code, res.output


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ae.db'}"


def test_public_key_needs_a_key_and_prints_the_verifier_key(
    tmp_path: Path, sqlite_url: str
) -> None:
    append(sqlite_url, "acme", 0, 3)
    rc, out = ledger("public-key", "--store-url", sqlite_url)
    assert rc == 2 and "first start" in out
    signer = load_signer(state_dir=tmp_path)  # what the orchestrator's first start does
    rc, out = ledger("public-key", "--store-url", sqlite_url)
    assert rc == 0 and out.strip() == signer.verifier.vkey
    assert "PRIVATE" not in out


def test_prove_and_check_proof_offline(tmp_path: Path, sqlite_url: str) -> None:
    append(sqlite_url, "acme", 0, 30)
    vkey = load_signer(state_dir=tmp_path).verifier.vkey
    proof_file = tmp_path / "p.json"
    rc, out = ledger("prove", "--tenant", "acme", "--seq", "7", "--store-url", sqlite_url,
                     "--out", str(proof_file))  # fmt: skip
    assert rc == 0, out
    bundle = json.loads(proof_file.read_text())
    assert bundle["proof"]["leaf_index"] == 6 and bundle["proof"]["tree_size"] == 30
    assert bundle["checkpoint"].startswith("alertengine/ledger/acme\n30\n")

    # Offline: the key file is gone, only the public key is given.
    (tmp_path / "checkpoint.key").rename(tmp_path / "elsewhere.key")
    rc, out = ledger("check-proof", str(proof_file), "--public-key", vkey)
    assert rc == 0 and "entry 7" in out and "size 30" in out

    # The entry from an export line, edited: refused with the reason.
    entry = dict(bundle["entry"])
    entry["decision"] = "approve"
    edited = tmp_path / "entry.json"
    edited.write_text(json.dumps(entry))
    rc, out = ledger("check-proof", str(proof_file), "--public-key", vkey, "--entry", str(edited))
    assert rc == 1 and "INVALID" in out and "root" in out

    # Another key: refused.
    other = NoteSigner.generate("alertengine").verifier.vkey
    rc, out = ledger("check-proof", str(proof_file), "--public-key", other)
    assert rc == 1 and "no signature by a known key" in out

    # A proof hash changed: refused.
    bad = json.loads(proof_file.read_text())
    h = bad["proof"]["hashes"][0]
    bad["proof"]["hashes"][0] = ("A" if h[0] != "A" else "B") + h[1:]
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(bad))
    rc, out = ledger("check-proof", str(bad_file), "--public-key", vkey)
    assert rc == 1 and "INVALID" in out

    # Unreadable input: 2.
    (tmp_path / "junk.json").write_text("{not json")
    rc, _ = ledger("check-proof", str(tmp_path / "junk.json"), "--public-key", vkey)
    assert rc == 2


def test_consistency_proof_round_trip(tmp_path: Path, sqlite_url: str) -> None:
    append(sqlite_url, "acme", 0, 30)
    vkey = load_signer(state_dir=tmp_path).verifier.vkey
    proof_file = tmp_path / "c.json"
    rc, out = ledger("prove", "--tenant", "acme", "--from-size", "11", "--to-size", "29",
                     "--store-url", sqlite_url, "--out", str(proof_file))  # fmt: skip
    assert rc == 0, out
    rc, out = ledger("check-proof", str(proof_file), "--public-key", vkey)
    assert rc == 0 and "size 11 is a prefix of the tree of size 29" in out
    # Against a checkpoint of another size than the proof's: refused.
    other = tmp_path / "cp.txt"
    rc, out = ledger("checkpoint", "--tenant", "acme", "--store-url", sqlite_url)
    other.write_text(out)
    rc, out = ledger(
        "check-proof", str(proof_file), "--public-key", vkey, "--checkpoint", str(other)
    )
    assert rc == 1 and "29" in out and "30" in out
    rc, out = ledger("prove", "--tenant", "acme", "--store-url", sqlite_url)
    assert rc == 2 and "exactly one" in out
    rc, out = ledger("prove", "--tenant", "acme", "--seq", "31", "--store-url", sqlite_url)
    assert rc == 2 and "no entry 31" in out


def take_sqlite_copy(url: str) -> tuple[Path, Path]:
    path = Path(url[len("sqlite:///") :])
    copy = path.with_suffix(".old")
    src, dst = sqlite3.connect(path), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    return path, copy


def restore_sqlite_copy(path: Path, copy: Path) -> None:
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    shutil.copy(copy, path)


def test_verify_witness_catches_a_rollback_on_sqlite(tmp_path: Path, sqlite_url: str) -> None:
    load_signer(state_dir=tmp_path)
    append(sqlite_url, "acme", 0, 20)
    path, copy = take_sqlite_copy(sqlite_url)
    append(sqlite_url, "acme", 20, 10)
    rc, note = ledger("checkpoint", "--tenant", "acme", "--store-url", sqlite_url)
    witness = tmp_path / "witness.txt"
    witness.write_text(note)
    rc, out = ledger("verify", "--store-url", sqlite_url, "--witness", str(witness))
    assert rc == 0 and "prefix of the current tree" in out

    restore_sqlite_copy(path, copy)  # 20 of 30 entries, with its own signed head
    rc, out = ledger("verify", "--store-url", sqlite_url)
    assert rc == 0, out  # the hash chain alone cannot tell
    rc, out = ledger("verify", "--store-url", sqlite_url, "--witness", str(witness))
    assert rc == 1 and "rolled back or truncated" in out and "size 30" in out


def test_verify_witness_catches_a_rollback_and_a_fork_on_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    url = redis_server.url
    signer = NoteSigner.generate("alertengine")
    env = {"ALERTENGINE_CHECKPOINT_KEY": signer.skey}
    append(url, "acme", 0, 20)
    r = redis_sync.Redis.from_url(url)
    saved = {k: r.dump(k) for k in r.scan_iter("ae:ledger:*")}
    append(url, "acme", 20, 10)
    _, note = ledger("checkpoint", "--tenant", "acme", "--store-url", url, env=env)
    witness = tmp_path / "witness.json"
    witness.write_text(json.dumps([note]))  # the JSON-list form
    rc, out = ledger("verify", "--store-url", url, "--witness", str(witness), env=env)
    assert rc == 0, out

    def restore() -> None:
        r.flushdb()
        for k, v in saved.items():
            r.restore(k, 0, v)

    restore()
    rc, out = ledger("verify", "--store-url", url, env=env)
    assert rc == 0, out
    rc, out = ledger("verify", "--store-url", url, "--witness", str(witness), env=env)
    assert rc == 1 and "rolled back or truncated" in out

    append(url, "acme", 20, 15, tag=" (rewritten)")  # size 35, another history
    rc, out = ledger("verify", "--store-url", url, env=env)
    assert rc == 0, out
    rc, out = ledger(
        "verify", "--store-url", url, "--witness", str(witness), "--public-key",
        signer.verifier.vkey, env={"ALERTENGINE_CHECKPOINT_KEY": ""},
    )  # fmt: skip
    assert rc == 1 and "not a prefix" in out
    r.close()


def test_rotation_is_ledgered_and_old_checkpoints_still_verify(
    tmp_path: Path, sqlite_url: str
) -> None:
    old = load_signer(state_dir=tmp_path)
    append(sqlite_url, "acme", 0, 5)
    _, note = ledger("checkpoint", "--tenant", "acme", "--store-url", sqlite_url)
    witness = tmp_path / "w.txt"
    witness.write_text(note)
    rc, out = ledger("rotate-checkpoint-key", "--store-url", sqlite_url)
    assert rc == 0, out
    new = load_signer(state_dir=tmp_path)
    assert new.verifier.vkey != old.verifier.vkey and new.verifier.vkey in out
    assert (tmp_path / f"checkpoint.key.{old.verifier.key_id.hex()}.old").exists()
    rc, out = ledger("public-key", "--store-url", sqlite_url)
    assert out.strip() == new.verifier.vkey
    # The rotation entry: public keys and signatures, no private key.
    con = sqlite3.connect(sqlite_url[len("sqlite:///") :])
    (data,) = con.execute(
        "SELECT data FROM ledger_entries WHERE kind = 'checkpoint-key'"
    ).fetchone()
    con.close()
    assert old.verifier.vkey in data and new.verifier.vkey in data and "PRIVATE" not in data
    # The checkpoint signed by the old key verifies through the ledgered rotation.
    rc, out = ledger("verify", "--store-url", sqlite_url, "--witness", str(witness))
    assert rc == 0 and "prefix of the current tree" in out, out
    # A key the ledger never handed over to does not.
    stranger = NoteSigner.generate("alertengine")
    rc, out = ledger(
        "verify", "--store-url", sqlite_url, "--witness", str(witness),
        "--public-key", stranger.verifier.vkey,
    )  # fmt: skip
    assert rc == 1 and "invalid" in out


def test_migrate_builds_the_tree_of_an_old_ledger(tmp_path: Path, sqlite_url: str) -> None:
    load_signer(state_dir=tmp_path)
    append(sqlite_url, "acme", 0, 40)
    _, before = ledger("checkpoint", "--tenant", "acme", "--store-url", sqlite_url)
    con = sqlite3.connect(sqlite_url[len("sqlite:///") :])
    con.execute("DROP TABLE ledger_tree")
    con.close()
    rc, out = ledger("migrate", "--store-url", sqlite_url)
    assert rc == 0 and "acme: 40 leaves added" in out
    _, after = ledger("checkpoint", "--tenant", "acme", "--store-url", sqlite_url)
    assert before.split("\n")[:3] == after.split("\n")[:3]
    rc, out = ledger("migrate", "--store-url", sqlite_url)
    assert "already complete" in out


def test_verify_tree_checks_the_stored_tree(tmp_path: Path, sqlite_url: str) -> None:
    append(sqlite_url, "acme", 0, 12)
    rc, out = ledger("verify", "--tree", "--store-url", sqlite_url)
    assert rc == 0 and "Merkle tree of 12 leaves matches" in out
    # node (2, 1): leaves 4..7
    sqlite_zero_tree_node(Path(sqlite_url[len("sqlite:///") :]), "acme", 2, 1)
    rc, out = ledger("verify", "--store-url", sqlite_url)
    assert rc == 0  # the chain is intact
    rc, out = ledger("verify", "--tree", "--store-url", sqlite_url)
    assert rc == 1 and "node (2, 1)" in out and "seq 5 on" in out
