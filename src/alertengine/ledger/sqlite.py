"""The embedded ledger: one SQLite file, durable, append-only, group-committed.

* WAL + ``synchronous=FULL``: an append returns only once it is on disk.
* ``ledger_entries`` has one row per entry, ``PRIMARY KEY (tenant_id, seq)`` (so a seq is
  unique per tenant), and triggers that ABORT every UPDATE and DELETE.
* ``ledger_heads`` holds each tenant's signed head checkpoint, written in the same
  transaction as the entries it signs; triggers refuse deleting a head or moving it back.
* sqlite3 blocks, so every write runs on one dedicated writer thread. Appends queued while
  a commit is in flight are sealed and committed together in the next transaction (group
  commit): one fsync for many callers, each still getting its own entries or its own
  :class:`~alertengine.ledger.base.LedgerConflict`.
* ``ledger_tree`` holds each tenant's RFC 9162 Merkle tree: every perfect-subtree hash, in
  post-order (the order appends create them), one row per append group holding the run of
  hashes it created from position ``pos`` on, written in the same transaction as the
  entries (append-only too), so a proof is a few indexed point reads. A ledger written
  before the tree existed gets its tree on the next append (same transaction) or ahead of
  time with :meth:`build_tree`.
* Reads use their own connection on their own thread; ``verify`` opens a fresh one and
  walks the chain inside one read transaction (a consistent snapshot under WAL).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from alertengine.ledger import parallel
from alertengine.ledger.base import (
    BAD_ENTRY,
    DISK_FULL,
    READ_ONLY,
    LedgerConflict,
    LedgerError,
    LedgerQuery,
    LedgerUnavailable,
    check_drafts,
)
from alertengine.ledger.chain import (
    GENESIS_HASH,
    ChainVerifier,
    Checkpoint,
    ChunkResult,
    Entry,
    EntryDraft,
    VerifyResult,
    body_hash,
    canonical_body,
    canonical_json,
    entry_leaf,
    seal_many_text,
    sign_checkpoint,
)
from alertengine.ledger.merkle import (
    Coord,
    append_nodes,
    root_plan,
    size_from_node_count,
    storage_index,
)

T = TypeVar("T")

_sha256 = hashlib.sha256
_json_str: Callable[[str], str] = json.encoder.encode_basestring  # as canonical_body
_float_repr = float.__repr__
_int_repr = int.__repr__

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_entries (
    tenant_id      TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    timestamp      REAL    NOT NULL,
    incident_id    TEXT,
    kind           TEXT    NOT NULL,
    stage          TEXT,
    actor          TEXT    NOT NULL,
    decision       TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    confidence     REAL,
    policy_version TEXT    NOT NULL,
    data           TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_entries_incident
    ON ledger_entries (tenant_id, incident_id, seq);
CREATE TRIGGER IF NOT EXISTS ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: entries cannot be updated'); END;
CREATE TRIGGER IF NOT EXISTS ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: entries cannot be deleted'); END;
CREATE TABLE IF NOT EXISTS ledger_heads (
    tenant_id TEXT PRIMARY KEY,
    seq       INTEGER NOT NULL,
    hash      TEXT    NOT NULL,
    signature TEXT    NOT NULL
);
CREATE TRIGGER IF NOT EXISTS ledger_heads_no_delete BEFORE DELETE ON ledger_heads
BEGIN SELECT RAISE(ABORT, 'ledger heads cannot be deleted'); END;
CREATE TRIGGER IF NOT EXISTS ledger_heads_forward_only BEFORE UPDATE ON ledger_heads
WHEN NEW.seq <= OLD.seq
BEGIN SELECT RAISE(ABORT, 'a ledger head only moves forward'); END;
CREATE TABLE IF NOT EXISTS ledger_probe (id INTEGER PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_tree (
    tenant_id TEXT    NOT NULL,
    pos       INTEGER NOT NULL,
    hashes    BLOB    NOT NULL,
    PRIMARY KEY (tenant_id, pos)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS ledger_tree_no_update BEFORE UPDATE ON ledger_tree
BEGIN SELECT RAISE(ABORT, 'the ledger tree is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_tree_no_delete BEFORE DELETE ON ledger_tree
BEGIN SELECT RAISE(ABORT, 'the ledger tree is append-only'); END;
"""

# A row holds a run of up to _RUN nodes an append group created, consecutive in post-order
# from ``pos``, their hashes concatenated (32 bytes each).
_RUN = 64
_INSERT_RUN = "INSERT INTO ledger_tree (tenant_id, pos, hashes) VALUES (?,?,?)"
_LAST_RUN = (
    "SELECT pos, length(hashes) FROM ledger_tree WHERE tenant_id = ? ORDER BY pos DESC LIMIT 1"
)
_RUN_OF = (
    "SELECT pos, hashes FROM ledger_tree WHERE tenant_id = ? AND pos <= ? ORDER BY pos DESC LIMIT 1"
)
#: Entries per transaction when building the tree of a ledger written before it existed.
_BUILD_BATCH = 20_000


def _tree_size(con: sqlite3.Connection, tenant_id: str) -> int:
    row = con.execute(_LAST_RUN, (tenant_id,)).fetchone()
    if row is None:
        return 0
    try:
        return size_from_node_count(int(row[0]) + int(row[1]) // 32)
    except (TypeError, ValueError):
        raise LedgerError(f"tenant {tenant_id!r}: the ledger tree is incomplete") from None


def _node_getter(
    con: sqlite3.Connection, tenant_id: str, cached: dict[Coord, bytes]
) -> Callable[[Coord], bytes]:
    def get(c: Coord) -> bytes:
        h = cached.get(c)
        if h is None:
            pos = storage_index(*c)
            row = con.execute(_RUN_OF, (tenant_id, pos)).fetchone()
            off = 32 * (pos - row[0]) if row is not None else 0
            if row is None or not isinstance(row[1], bytes) or off + 32 > len(row[1]):
                raise LedgerError(f"tenant {tenant_id!r}: the ledger tree lacks node {c}")
            h = row[1][off : off + 32]
        return h

    return get


def _extend_tree(
    con: sqlite3.Connection,
    tenant_id: str,
    size: int,
    leaves: list[bytes],
    frontier: dict[Coord, bytes],
) -> tuple[int, dict[Coord, bytes]]:
    """Insert the nodes ``leaves`` add to the tree of ``size`` (inside the caller's
    transaction); returns the new size and its right frontier."""
    made = append_nodes(size, leaves, _node_getter(con, tenant_id, frontier))
    # Consecutive in post-order from the old node count: rows of up to _RUN nodes each
    # (small enough that reading one node never loads more than a page or so).
    first = 2 * size - size.bit_count()
    hashes = [h for _, _, h in made]
    con.executemany(
        _INSERT_RUN,
        [
            (tenant_id, first + k, b"".join(hashes[k : k + _RUN]))
            for k in range(0, len(hashes), _RUN)
        ],
    )
    new_size = size + len(leaves)
    known = {(lv, ix): h for lv, ix, h in made}
    get = _node_getter(con, tenant_id, {**frontier, **known})
    return new_size, {c: get(c) for c in root_plan(new_size)}


def _catch_up_tree(
    con: sqlite3.Connection,
    tenant_id: str,
    size: int,
    upto: int,
    frontier: dict[Coord, bytes],
    progress: Callable[[int], None] | None = None,
) -> tuple[int, dict[Coord, bytes]]:
    """Extend the tree from ``size`` over the stored entries up to seq ``upto``."""
    while size < upto:
        rows = con.execute(
            _SELECT + " WHERE tenant_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (tenant_id, size, upto, _BUILD_BATCH),
        ).fetchall()
        if not rows or rows[0][0] != size + 1:
            raise LedgerError(f"tenant {tenant_id!r}: entry {size + 1} is missing")
        leaves = [entry_leaf(_entry_of(r), r[11]) for r in rows]
        size, frontier = _extend_tree(con, tenant_id, size, leaves, frontier)
        if progress is not None:
            progress(len(rows))
    return size, frontier


_SELECT = (
    "SELECT seq, timestamp, tenant_id, incident_id, kind, stage, actor, decision, reason,"
    " confidence, policy_version, data, prev_hash, hash FROM ledger_entries"
)
_INSERT = (
    "INSERT INTO ledger_entries (tenant_id, seq, timestamp, incident_id, kind, stage, actor,"
    " decision, reason, confidence, policy_version, data, prev_hash, hash)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_UPSERT_HEAD = (
    "INSERT INTO ledger_heads (tenant_id, seq, hash, signature) VALUES (?,?,?,?)"
    " ON CONFLICT(tenant_id) DO UPDATE SET"
    " seq = excluded.seq, hash = excluded.hash, signature = excluded.signature"
)

Row = tuple[Any, ...]


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection with the pragmas every AlertEngine SQLite connection uses.

    Autocommit mode (``isolation_level=None``): transactions are opened explicitly.
    """
    con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("PRAGMA busy_timeout=30000")
    return con


def _row_of(e: Entry, data_json: str | None = None) -> Row:
    """The row for ``e``; ``data_json``, if given, is the canonical JSON of ``e.data``."""
    return (
        e.tenant_id,
        e.seq,
        e.timestamp,
        e.incident_id,
        e.kind,
        e.stage,
        e.actor,
        e.decision,
        e.reason,
        e.confidence,
        e.policy_version,
        canonical_json(dict(e.data)) if data_json is None else data_json,
        e.prev_hash,
        e.hash,
    )


def _entry_of(r: Row) -> Entry:
    return Entry(
        seq=r[0],
        timestamp=r[1],
        tenant_id=r[2],
        incident_id=r[3],
        kind=r[4],
        stage=r[5],
        actor=r[6],
        decision=r[7],
        reason=r[8],
        confidence=r[9],
        policy_version=r[10],
        data=json.loads(r[11]),
        prev_hash=r[12],
        hash=r[13],
    )


def _row_hash(r: Row) -> str:
    """Recompute an entry's hash straight from its stored columns (no Entry, no re-encode).

    Raises ValueError/TypeError for a row that cannot be an entry (wrong column types).
    ``data`` is hashed as stored, unparsed: see :func:`canonical_body` for why that is
    sound.
    """
    ts, conf = r[1], r[9]
    # The common case inline (one f-string, no keyword call): the same bytes as
    # canonical_body, whose checks (and messages) the other case keeps.
    if (
        type(ts) is float
        and ts - ts == 0.0  # finite
        and (conf is None or (type(conf) is float and conf - conf == 0.0))
        and type(r[0]) is int
        and type(r[11]) is str
    ):
        stage, incident = r[5], r[3]
        return _sha256(
            f'{{"actor":{_json_str(r[6])},"confidence":'
            f'{"null" if conf is None else _float_repr(conf)},"data":{r[11]},'
            f'"decision":{_json_str(r[7])},"incident_id":'
            f'{"null" if incident is None else _json_str(incident)},"kind":{_json_str(r[4])},'
            f'"policy_version":{_json_str(r[10])},"prev_hash":{_json_str(r[12])},'
            f'"reason":{_json_str(r[8])},"seq":{_int_repr(r[0])},"stage":'
            f'{"null" if stage is None else _json_str(stage)},"tenant_id":{_json_str(r[2])},'
            f'"timestamp":{_float_repr(ts)}}}'.encode()
        ).hexdigest()
    if type(ts) is not float or (conf is not None and type(conf) is not float):
        raise TypeError("timestamp/confidence are not real numbers")
    return body_hash(
        canonical_body(
            seq=r[0],
            timestamp=ts,
            tenant_id=r[2],
            incident_id=r[3],
            kind=r[4],
            stage=r[5],
            actor=r[6],
            decision=r[7],
            reason=r[8],
            confidence=conf,
            policy_version=r[10],
            data_json=r[11],
            prev_hash=r[12],
        )
    )


def _check_row(v: ChainVerifier, r: Row) -> bool:
    """Feed one stored row to the verifier: the per-record check of every walk."""
    try:
        computed = _row_hash(r)
    except (ValueError, TypeError) as exc:
        v.fail(r[0], f"entry {r[0]} is unreadable ({exc})")
        return False
    return v.feed_parts(r[0], r[2], r[12], r[13], computed)


def _walk(v: ChainVerifier, rows: list[Row]) -> bool:
    """:func:`_check_row` over ``rows``, with the all-good case inline (a million rows)."""
    if v.failure is not None:
        return False
    tenant, expected, prev, good = v.tenant_id, v.expected_seq, v.prev_hash, 0
    for r in rows:
        try:
            computed = _row_hash(r)
        except (ValueError, TypeError):
            computed = None
        if computed is not None and computed == r[13]:
            if r[0] == expected and r[12] == prev and r[2] == tenant:
                expected, prev, good = expected + 1, computed, good + 1
                continue
        # Something is off: hand the row to the full check, from the state it saw.
        v.count, v.expected_seq, v.prev_hash = v.count + good, expected, prev
        if not _check_row(v, r):
            return False
        tenant, expected, prev, good = v.tenant_id, v.expected_seq, v.prev_hash, 0
    v.count, v.expected_seq, v.prev_hash = v.count + good, expected, prev
    return True


@dataclass
class _Append:
    tenant_id: str
    drafts: Sequence[EntryDraft]
    expect_seq: int | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[Entry]]
    outcome: list[Entry] | BaseException | None = field(default=None)
    #: A write-check: commit one row of ``ledger_probe`` (outside every chain) with the group.
    probe: bool = False


def _deliver(req: _Append) -> None:
    def settle() -> None:
        if req.future.done():  # the caller was cancelled; the entries stay written
            return
        if isinstance(req.outcome, BaseException):
            req.future.set_exception(req.outcome)
        else:
            req.future.set_result(req.outcome or [])

    try:
        req.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the caller's event loop is gone; nobody is waiting
        pass


class SqliteLedgerStore:
    """The embedded :class:`~alertengine.ledger.base.LedgerStore` on one SQLite file.

    ``key`` signs head checkpoints (HMAC-SHA256); without it the store is read-only and
    ``verify`` walks the chain without checking the checkpoint. ``group_window_s`` is how
    long the writer waits for more appends once it sees concurrent callers (never when an
    append arrives alone); ``max_group`` caps how many calls share one transaction.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        key: bytes | None,
        group_window_s: float = 0.002,
        max_group: int = 2000,
    ) -> None:
        if key is not None and not key:
            raise ValueError("the ledger key must not be empty")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._key = key
        self._window = group_window_s
        self._max_group = max_group
        try:
            self._wcon = connect(self.path)
            self._wcon.executescript(SCHEMA)
            self._rcon = connect(self.path)
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"cannot open the SQLite ledger at {self.path}: {exc}") from exc
        self._queue: queue.SimpleQueue[_Append | None] = queue.SimpleQueue()
        self._closed = False
        #: Write transactions run so far (one per group commit): lets tests and the
        #: benchmark see how many appends shared each fsync.
        self.groups_committed = 0
        #: Each tenant's tree size and right frontier as the writer last committed them.
        self._frontiers: dict[str, tuple[int, dict[Coord, bytes]]] = {}
        self._writer = threading.Thread(
            target=self._write_loop, name=f"ledger-writer:{self.path.name}", daemon=True
        )
        self._writer.start()
        # One thread owns the read connection, so reads never share it concurrently.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="ledger-reader")

    # -- writing -----------------------------------------------------------------------------

    async def append(
        self, tenant_id: str, drafts: Sequence[EntryDraft], *, expect_seq: int | None = None
    ) -> list[Entry]:
        check_drafts(tenant_id, drafts)
        if self._closed:
            raise LedgerError("the ledger store is closed")
        if self._key is None:
            raise LedgerError("read-only ledger: no ledger key was given, so no head can be signed")
        if not drafts and expect_seq is None:
            return []
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Entry]] = loop.create_future()
        self._queue.put(_Append(tenant_id, list(drafts), expect_seq, loop, fut))
        # Shield: if the caller is cancelled, the writer still settles the future cleanly.
        return await asyncio.shield(fut)

    async def check_writable(self) -> None:
        """Commit one tiny row outside the chains, through the writer, like an append.

        A full disk or a read-only file still answers reads, so only a write proves the
        ledger can take the next entry. Raises :class:`LedgerUnavailable` with its cause.
        """
        if self._closed:
            raise LedgerError("the ledger store is closed")
        if self._key is None:
            return  # a read-only ledger by design: nothing to prove
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Entry]] = loop.create_future()
        self._queue.put(_Append(SYSTEM_PROBE, [], None, loop, fut, probe=True))
        await asyncio.shield(fut)

    def _write_loop(self) -> None:
        last_group = 1
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            # Only wait for company when the last group had some: a lone appender never waits.
            deadline = time.monotonic() + (self._window if last_group > 1 else 0.0)
            while len(group) < self._max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if item is None:
                    stop = True
                    break
                group.append(item)
            last_group = len(group)
            self._commit_group(group)
            self.groups_committed += 1
            for req in group:
                _deliver(req)
            if stop:
                return

    def _commit_group(self, group: list[_Append]) -> None:
        assert self._key is not None
        con = self._wcon
        heads: dict[str, tuple[int, str]] = {}
        touched: set[str] = set()
        rows: list[Row] = []
        new_leaves: dict[str, tuple[int, list[bytes]]] = {}
        try:
            con.execute("BEGIN IMMEDIATE")
            for req in group:
                head = heads.get(req.tenant_id)
                if head is None:
                    found = con.execute(
                        "SELECT seq, hash FROM ledger_heads WHERE tenant_id = ?", (req.tenant_id,)
                    ).fetchone()
                    head = (found[0], found[1]) if found else (0, GENESIS_HASH)
                    heads[req.tenant_id] = head
                if req.expect_seq is not None and req.expect_seq != head[0]:
                    req.outcome = LedgerConflict(req.tenant_id, req.expect_seq, head[0])
                    continue
                try:
                    triples = seal_many_text(req.drafts, head[0], head[1])
                except (ValueError, TypeError) as exc:
                    req.outcome = LedgerError(f"cannot seal the entries: {exc}", cause=BAD_ENTRY)
                    continue
                sealed = [e for e, _, _ in triples]
                if sealed:
                    heads[req.tenant_id] = (sealed[-1].seq, sealed[-1].hash)
                    touched.add(req.tenant_id)
                    rows.extend(_row_of(e, data_json) for e, data_json, _ in triples)
                    grown = new_leaves.setdefault(req.tenant_id, (sealed[0].seq, []))
                    grown[1].extend(_sha256(b"\x00" + t.encode()).digest() for _, _, t in triples)
                req.outcome = sealed
            con.executemany(_INSERT, rows)
            if any(req.probe for req in group):
                con.execute(
                    "INSERT OR REPLACE INTO ledger_probe (id, at) VALUES (1, ?)", (time.time(),)
                )
            frontiers = self._grow_trees(con, new_leaves)
            con.executemany(
                _UPSERT_HEAD,
                [
                    (t, heads[t][0], heads[t][1], self._sign(t, *heads[t]).signature)
                    for t in sorted(touched)
                ],
            )
            con.execute("COMMIT")
            self._frontiers.update(frontiers)
        except (sqlite3.Error, LedgerError) as exc:
            for t in touched:
                self._frontiers.pop(t, None)
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            failure = exc if isinstance(exc, LedgerError) else _write_failure(exc, self.path)
            for req in group:
                if not isinstance(req.outcome, BaseException):
                    req.outcome = failure

    def _grow_trees(
        self, con: sqlite3.Connection, new_leaves: dict[str, tuple[int, list[bytes]]]
    ) -> dict[str, tuple[int, dict[Coord, bytes]]]:
        """Add each tenant's new leaves (its first new seq, their hashes) to its tree, in
        the open transaction; returns the new sizes and frontiers (cached on commit)."""
        out: dict[str, tuple[int, dict[Coord, bytes]]] = {}
        for t in sorted(new_leaves):
            first_seq, leaves = new_leaves[t]
            size = _tree_size(con, t)
            cached = self._frontiers.get(t)
            frontier = cached[1] if cached is not None and cached[0] == size else {}
            if size < first_seq - 1:  # a ledger from before the tree: build the rest first
                size, frontier = _catch_up_tree(con, t, size, first_seq - 1, frontier)
            if size != first_seq - 1:
                raise LedgerError(
                    f"tenant {t!r}: the ledger tree has {size} leaves, the chain {first_seq - 1}"
                )
            out[t] = _extend_tree(con, t, size, leaves, frontier)
        return out

    def _sign(self, tenant_id: str, seq: int, head_hash: str) -> Checkpoint:
        assert self._key is not None
        return sign_checkpoint(self._key, tenant_id, seq, head_hash)

    # -- reading -----------------------------------------------------------------------------

    async def _on_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise LedgerError("the ledger store is closed")

        def run() -> T:
            try:
                return fn(self._rcon)
            except sqlite3.Error as exc:
                raise LedgerUnavailable(f"the SQLite ledger could not be read: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._reader, run)

    async def read(self, query: LedgerQuery) -> list[Entry]:
        # Only constant fragments and "?" placeholders are joined; values go in ``args``.
        sql = _SELECT + " WHERE tenant_id = ? AND seq > ?"
        args: list[Any] = [query.tenant_id, query.after_seq]
        if query.incident_id is not None:
            sql += " AND incident_id = ?"
            args.append(query.incident_id)
        if query.since is not None:
            sql += " AND timestamp >= ?"
            args.append(query.since)
        if query.until is not None:
            sql += " AND timestamp < ?"
            args.append(query.until)
        if query.kinds is not None:
            kinds = sorted(query.kinds)
            sql += " AND kind IN (" + ",".join("?" * len(kinds)) + ")"
            args.extend(kinds)
        sql += " ORDER BY seq"
        if query.limit is not None:
            sql += " LIMIT ?"
            args.append(query.limit)
        rows = await self._on_reader(lambda c: c.execute(sql, args).fetchall())
        return [_entry_of(r) for r in rows]

    async def scan(self, tenant_id: str, *, batch: int = 5000) -> AsyncIterator[Entry]:
        end = await self.count(tenant_id)  # a snapshot of the length, like the other stores
        after = 0
        sql = _SELECT + " WHERE tenant_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"

        def page(c: sqlite3.Connection, start: int) -> list[Row]:
            return c.execute(sql, (tenant_id, start, end, batch)).fetchall()

        while after < end:
            rows = await self._on_reader(functools.partial(page, start=after))
            if not rows:
                return
            for r in rows:
                yield _entry_of(r)
            after = rows[-1][0]

    async def head(self, tenant_id: str) -> Checkpoint | None:
        row = await self._on_reader(
            lambda c: c.execute(
                "SELECT tenant_id, seq, hash, signature FROM ledger_heads WHERE tenant_id = ?",
                (tenant_id,),
            ).fetchone()
        )
        return Checkpoint(row[0], row[1], row[2], row[3]) if row else None

    async def tenants(self) -> list[str]:
        rows = await self._on_reader(
            lambda c: c.execute("SELECT tenant_id FROM ledger_heads ORDER BY tenant_id").fetchall()
        )
        return [r[0] for r in rows]

    async def count(self, tenant_id: str) -> int:
        row = await self._on_reader(
            lambda c: c.execute(
                "SELECT seq FROM ledger_heads WHERE tenant_id = ?", (tenant_id,)
            ).fetchone()
        )
        return int(row[0]) if row else 0

    async def verify(
        self, tenant_id: str, *, progress: Callable[[int], None] | None = None
    ) -> VerifyResult:
        if self._closed:
            raise LedgerError("the ledger store is closed")
        try:
            return await asyncio.to_thread(verify_file, self.path, tenant_id, self._key, progress)
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"the SQLite ledger could not be read: {exc}") from exc

    # -- the Merkle tree (TreeStore) -------------------------------------------------------

    async def tree_size(self, tenant_id: str) -> int:
        return await self._on_reader(lambda c: _tree_size(c, tenant_id))

    async def tree_nodes(self, tenant_id: str, coords: Collection[Coord]) -> dict[Coord, bytes]:
        def read(c: sqlite3.Connection) -> dict[Coord, bytes]:
            get = _node_getter(c, tenant_id, {})
            return {xy: get(xy) for xy in coords}

        return await self._on_reader(read)

    async def build_tree(
        self, tenant_id: str, *, progress: Callable[[int], None] | None = None
    ) -> int:
        if self._closed:
            raise LedgerError("the ledger store is closed")
        try:
            return await asyncio.to_thread(build_tree_file, self.path, tenant_id, progress)
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"the SQLite ledger could not build its tree: {exc}") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._writer.join)
        self._reader.shutdown(wait=True)
        self._wcon.close()
        self._rcon.close()


#: The tenant id a write-check is queued under (it writes no entry of any tenant).
SYSTEM_PROBE = "_probe"

_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL = 8, 10, 13


def _write_failure(exc: sqlite3.Error, path: Path | None = None) -> LedgerError:
    """The error a failed commit gives its callers, with the cause in plain words.

    SQLite reports a file that became unwritable under an open connection (a read-only
    file system, an immutable file) as a plain I/O error; ``access(2)`` tells them apart,
    even for root.
    """
    if isinstance(exc, sqlite3.IntegrityError):
        return LedgerError(f"the ledger refused the append: {exc}")
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    cause: str | None = None
    if primary == _SQLITE_FULL or "disk is full" in text:
        cause = DISK_FULL
    elif primary == _SQLITE_READONLY or "readonly" in text or "read-only" in text:
        cause = READ_ONLY
    elif primary == _SQLITE_IOERR or "i/o error" in text:
        cause = "I/O error"
        if path is not None and _unwritable(path):
            cause = READ_ONLY
            return LedgerUnavailable(
                f"the SQLite ledger could not commit: {exc} (its files are not writable)",
                cause=cause,
            )
    return LedgerUnavailable(f"the SQLite ledger could not commit: {exc}", cause=cause)


def _unwritable(path: Path) -> bool:
    files = [path, path.with_name(path.name + "-wal")]
    return any(f.exists() and not os.access(f, os.W_OK) for f in files)


def build_tree_file(
    path: str | Path, tenant_id: str, progress: Callable[[int], None] | None = None
) -> int:
    """Build the tree over entries it does not cover yet, one transaction per batch
    (blocking; appends wait on the lock between batches, never on the whole build)."""
    con = connect(path)
    added = 0
    try:
        con.executescript(SCHEMA)
        while True:
            con.execute("BEGIN IMMEDIATE")
            try:
                size = _tree_size(con, tenant_id)
                row = con.execute(
                    "SELECT seq FROM ledger_heads WHERE tenant_id = ?", (tenant_id,)
                ).fetchone()
                upto = min(int(row[0]) if row else 0, size + _BUILD_BATCH)
                if size >= upto:
                    con.execute("COMMIT")
                    return added
                frontier = _node_getter(con, tenant_id, {})
                start = {c: frontier(c) for c in root_plan(size)}
                new_size, _ = _catch_up_tree(con, tenant_id, size, upto, start)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            added += new_size - size
            if progress is not None:
                progress(new_size - size)
    finally:
        con.close()


def _open_ro(path: str | Path) -> sqlite3.Connection:
    # Read-only, so verifying can never create or change a file; as_uri() escapes the path.
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    con = sqlite3.connect(uri, uri=True, isolation_level=None)
    con.execute("PRAGMA busy_timeout=30000")
    return con


_FETCH = 20_000


def verify_file(
    path: str | Path,
    tenant_id: str,
    key: bytes | None,
    progress: Callable[[int], None] | None = None,
    *,
    workers: int | None = None,
    parallel_min: int = parallel.PARALLEL_MIN_ENTRIES,
    chunk: int | None = None,
) -> VerifyResult:
    """Verify one tenant's chain in a SQLite ledger file, inside one read transaction.

    Blocking (run it in a thread). Works from the stored columns directly; it reads the
    signed head inside the same snapshot as the chain. A chain of ``parallel_min`` entries
    or more is walked in seq ranges by ``workers`` processes (default: one per CPU; 1 =
    in-process), ``chunk`` entries per range (default: several ranges per worker). The
    result is the in-process walk's, whatever the split (see :mod:`.parallel`).
    """
    con = _open_ro(path)
    try:
        con.execute("BEGIN")
        row = con.execute(
            "SELECT tenant_id, seq, hash, signature FROM ledger_heads WHERE tenant_id = ?",
            (tenant_id,),
        ).fetchone()
        checkpoint = Checkpoint(row[0], row[1], row[2], row[3]) if row else None
        verifier = ChainVerifier(tenant_id)
        workers = parallel.cpu_workers() if workers is None else workers
        bounds = _seq_bounds(con, tenant_id) if workers > 1 else None
        if bounds is not None and bounds[1] - bounds[0] + 1 >= max(parallel_min, 2):
            lo, hi = bounds
            size = chunk or parallel.chunk_size(hi - lo + 1, workers)
            # Workers read in their own transactions, but only seqs <= hi: rows this
            # snapshot holds, and that no append can add or change (the table is
            # append-only: a seq is written once, by the transaction that moves the head).
            jobs = [(str(path), tenant_id, a, b) for a, b in parallel.split(lo, hi, size)]
            parallel.run_chunks(
                verifier, _verify_range, jobs, _check_row, workers=workers, progress=progress
            )
        else:
            cur = con.execute(_SELECT + " WHERE tenant_id = ? ORDER BY seq", (tenant_id,))
            while rows := cur.fetchmany(_FETCH):
                ok = _walk(verifier, rows)
                if progress is not None:
                    progress(len(rows))
                if not ok:
                    break
        con.execute("COMMIT")
        return verifier.finish(checkpoint, key)
    finally:
        con.close()


def _seq_bounds(con: sqlite3.Connection, tenant_id: str) -> tuple[int, int] | None:
    """The lowest and highest stored seq, if both are integers (else: walk in-process).

    NULLs sort before numbers, text and blobs after them, so integer extremes mean every
    stored seq is a number in between, and ranges ``(a, b]`` of numbers cover them all.
    """
    q = "SELECT seq FROM ledger_entries WHERE tenant_id = ? ORDER BY seq {} LIMIT 1"
    first = con.execute(q.format("ASC"), (tenant_id,)).fetchone()
    last = con.execute(q.format("DESC"), (tenant_id,)).fetchone()
    if first is None or last is None or type(first[0]) is not int or type(last[0]) is not int:
        return None
    return first[0], last[0]


def _verify_range(path: str, tenant_id: str, after: int, upto: int) -> ChunkResult:
    """Walk the rows with ``after < seq <= upto`` (a worker process's share of a verify)."""
    con = _open_ro(path)
    try:
        con.execute("BEGIN")
        cur = con.execute(
            _SELECT + " WHERE tenant_id = ? AND seq > ? AND seq <= ? ORDER BY seq",
            (tenant_id, after, upto),
        )
        rows = cur.fetchmany(_FETCH)
        if not rows:
            return ChunkResult(None, 0, 0, 0, GENESIS_HASH, None)
        first = rows[0]
        # Start from the state the first row itself claims (as if the chain before it
        # were fine): the caller re-checks the first row against the real chain.
        v = ChainVerifier(tenant_id)
        v.expected_seq, v.prev_hash = first[0], first[12]
        seen = len(rows)
        ok = _walk(v, rows)
        while ok and (rows := cur.fetchmany(_FETCH)):
            seen += len(rows)
            ok = _walk(v, rows)
        con.execute("COMMIT")
        return ChunkResult(first, seen, max(v.count - 1, 0), v.expected_seq, v.prev_hash, v.failure)
    finally:
        con.close()
