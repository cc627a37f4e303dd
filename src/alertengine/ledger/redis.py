"""The scale-out ledger: one Redis Stream per tenant, chained appends by optimistic Lua.

Keys (``{tenant}`` is a literal hash tag, so one tenant's keys share a cluster slot):

* ``ae:ledger:{tenant}`` — the Stream; entry ``seq`` has stream id ``<seq>-0`` and one
  field ``e``, the entry's canonical JSON.
* ``ae:ledger:{tenant}:head`` — ``"<seq>:<hash>"`` of the last entry.
* ``ae:ledger:{tenant}:cp`` — the signed head checkpoint (JSON).
* ``ae:ledger:{tenant}:inc:<incident_id>`` — list of the incident's seqs (for reads).
* ``ae:ledger:tenants`` — set of tenants.
* ``ae:ledger:{tenant}:tree:<level>`` — the tenant's RFC 9162 Merkle tree, one string per
  level: the perfect subtree ``idx`` of that level is the 32 bytes at ``idx·32`` (so a
  million entries take ~64 MB, and a proof is a few GETRANGEs). The append script writes
  the new nodes (computed in Python against the tree size it checks) with the entries.

Redis Lua has no SHA-256, so a writer seals the entries in Python against the head it
believes current, and one script call checks that head is still current (and
``expect_seq`` if given) before it XADDs the entries and sets the head and checkpoint.
A head moved by another writer (not an ``expect_seq`` conflict) makes the writer re-seal
against the head the script returned and try again. Any number of processes can append
to one tenant and the chain stays one chain. Within a process, appends to one tenant
queued while a script call is in flight go out together in the next one (group commit).

Durability is the Redis server's (configure AOF ``appendfsync always`` for the embedded
store's guarantee). A connection error raises :class:`LedgerUnavailable`: the append may
or may not have landed, so retry with ``expect_seq`` when a duplicate would matter.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from alertengine.ledger import parallel
from alertengine.ledger.base import (
    BAD_ENTRY,
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
    seal_many_text,
    sign_checkpoint,
)
from alertengine.ledger.merkle import Coord, append_nodes, root_plan

T = TypeVar("T")

# KEYS: stream, head, checkpoint, tenants set.
# ARGV: believed head ("" = empty chain), expect_seq ("" = none), new head, checkpoint JSON,
#       tenant, index key prefix, tree key prefix, believed tree size, 3 x node count, then
#       node triples (level, byte offset, hash), then triples (stream id, entry JSON,
#       incident id or "").
_APPEND_LUA = """
local cur = redis.call('GET', KEYS[2])
if not cur then cur = '' end
if ARGV[2] ~= '' then
  local curseq = 0
  if cur ~= '' then curseq = tonumber(string.match(cur, '^(%d+):')) end
  if curseq ~= tonumber(ARGV[2]) then return {-1, tostring(curseq)} end
end
if cur ~= ARGV[1] then return {0, cur} end
local size = redis.call('STRLEN', ARGV[7] .. '0') / 32
if size ~= tonumber(ARGV[8]) then return {-2, tostring(size)} end
local nodes_end = 9 + tonumber(ARGV[9])
for i = 10, nodes_end, 3 do
  redis.call('SETRANGE', ARGV[7] .. ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2])
end
for i = nodes_end + 1, #ARGV, 3 do
  redis.call('XADD', KEYS[1], ARGV[i], 'e', ARGV[i + 1])
  if ARGV[i + 2] ~= '' then
    redis.call('RPUSH', ARGV[6] .. ARGV[i + 2], string.match(ARGV[i], '^(%d+)-'))
  end
end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[4], ARGV[5])
return {1, ARGV[3]}
"""

# Extend the tree of a ledger written before the tree existed, if its size is still ARGV[2].
# KEYS: none (same slot as the stream). ARGV: tree key prefix, expected size, node triples.
_BUILD_TREE_LUA = """
local size = redis.call('STRLEN', ARGV[1] .. '0') / 32
if size ~= tonumber(ARGV[2]) then return 0 end
for i = 3, #ARGV, 3 do
  redis.call('SETRANGE', ARGV[1] .. ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2])
end
return 1
"""

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)

#: Most append calls one script call carries (keeps a script's run, and its args, small).
_MAX_GROUP = 256


@dataclass
class _Pending:
    drafts: list[EntryDraft]
    expect_seq: int | None
    future: asyncio.Future[list[Entry]]


def _refusal(exc: RedisError) -> str | None:
    """Plain words for a write Redis refused (redis-py maps some error codes to classes and
    strips the code; others, like MISCONF, keep it in the text)."""
    if isinstance(exc, ReadOnlyError):
        return READ_ONLY
    if isinstance(exc, OutOfMemoryError):
        return "Redis out of memory"
    if str(exc).startswith("MISCONF"):
        return "Redis cannot persist (disk full or not writable)"
    return None


def client_from_url(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """An asyncio Redis client whose pool makes callers wait for a free connection.

    (The default pool fails with "Too many connections" under bursts; a thousand
    concurrent claims must queue, not error.) Closing the client closes the pool.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        socket_connect_timeout=2,
        socket_timeout=10,
    )
    return aioredis.Redis.from_pool(pool)


def _head_str(seq: int, head_hash: str) -> str:
    return "" if seq == 0 else f"{seq}:{head_hash}"


def _parse_head(raw: str) -> tuple[int, str]:
    if not raw:
        return 0, GENESIS_HASH
    seq, _, h = raw.partition(":")
    return int(seq), h


def _dict_hash(d: dict[str, Any]) -> str:
    """An entry's hash recomputed from its parsed JSON, without building an Entry (fast).

    Raises KeyError/TypeError/ValueError for anything that is not a well-typed entry.
    """
    seq, ts, conf = d["seq"], d["timestamp"], d["confidence"]
    if (
        type(seq) is not int
        or type(ts) is not float
        or (conf is not None and type(conf) is not float)
    ):
        raise TypeError("seq/timestamp/confidence have the wrong type")
    if not isinstance(d["data"], dict):
        raise TypeError("data is not an object")
    return body_hash(
        canonical_body(
            seq=seq,
            timestamp=ts,
            tenant_id=d["tenant_id"],
            incident_id=d["incident_id"],
            kind=d["kind"],
            stage=d["stage"],
            actor=d["actor"],
            decision=d["decision"],
            reason=d["reason"],
            confidence=conf,
            policy_version=d["policy_version"],
            data_json=canonical_json(d["data"]),
            prev_hash=d["prev_hash"],
        )
    )


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


#: Entries per XRANGE page when verifying.
_PAGE = 10_000
#: The largest second part of a stream id: ``<ms>-<this>`` ends every id with that ``ms``.
_MAX_ID_SEQ = 2**64 - 1

#: One stored stream entry as verify sees it: its id and its ``e`` field (None if absent).
Record = tuple[str, "bytes | str | None"]


def _id_ms(sid: str) -> int:
    return int(sid.partition("-")[0])


def _check_record(v: ChainVerifier, rec: Record) -> bool:
    """Feed one stream entry to the verifier: the per-record check of every walk."""
    sid, raw = rec
    try:
        if raw is None:
            raise KeyError(b"e")
        d = json.loads(raw)
        computed = _dict_hash(d)
    except (ValueError, KeyError, TypeError) as exc:
        v.fail(v.expected_seq, f"stream entry {sid} is unreadable ({exc})")
        return False
    seq = d["seq"]
    if not v.feed_parts(seq, d["tenant_id"], d["prev_hash"], d["hash"], computed):
        return False
    if sid != f"{seq}-0":  # reads by seq go by stream id: they must agree
        v.fail(seq, f"entry {seq} sits at stream id {sid}")
        return False
    return True


def _walk(v: ChainVerifier, records: list[Record]) -> bool:
    for rec in records:
        if not _check_record(v, rec):
            return False
    return True


def _e_field(fields: list[Any]) -> bytes | None:
    """The ``e`` value of a raw ``[field, value, …]`` list (the last one, like a dict)."""
    value = None
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == b"e":
            value = fields[i + 1]
    return value


def _verify_range(url: str, stream: str, tenant_id: str, start: str, end: str) -> ChunkResult:
    """Walk the stream entries with ids in [start, end] (a worker process's share)."""
    import redis as redis_sync  # the worker's own, blocking client

    r = redis_sync.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=30)
    # Raw replies ([id, [field, value, …]] lists): no per-entry dict building.
    r.set_response_callback("XRANGE", lambda resp, **_: resp)
    try:
        v = ChainVerifier(tenant_id)
        first: Record | None = None
        seen, ok = 0, True
        while ok:
            page: Any = r.xrange(stream, start, end, count=_PAGE)
            records: list[Record] = [(_s(sid), _e_field(fields)) for sid, fields in page]
            if first is None:
                if not records:
                    break
                first = records[0]
                # Start from the state the first entry itself claims: the caller re-checks
                # it against the real chain before taking the rest of this range's outcome.
                try:
                    d = json.loads(first[1] or b"")
                    v.expected_seq, v.prev_hash = d["seq"], d["prev_hash"]
                except (ValueError, KeyError, TypeError):
                    ok = False  # unreadable: the caller's re-check fails it
            seen += len(records)
            ok = ok and _walk(v, records)
            if len(page) < _PAGE:
                break
            start = "(" + records[-1][0]
        if first is None:
            return ChunkResult(None, 0, 0, 0, GENESIS_HASH, None)
        return ChunkResult(first, seen, max(v.count - 1, 0), v.expected_seq, v.prev_hash, v.failure)
    finally:
        r.close()


class RedisLedgerStore:
    """The Redis :class:`~alertengine.ledger.base.LedgerStore`.

    ``redis`` is a URL (the store owns and closes the client) or an existing
    ``redis.asyncio.Redis`` (left open on :meth:`close`). ``key`` signs head checkpoints;
    without it the store is read-only. ``max_attempts`` bounds re-seals under contention.
    """

    def __init__(
        self,
        redis: str | aioredis.Redis,
        *,
        key: bytes | None,
        prefix: str = "ae:ledger:",
        max_attempts: int = 200,
    ) -> None:
        if key is not None and not key:
            raise ValueError("the ledger key must not be empty")
        #: Where worker processes connect to verify in parallel (only known from a URL).
        self._url: str | None = None
        if isinstance(redis, str):
            self._r: aioredis.Redis = client_from_url(redis)
            self._owns = True
            self._url = redis
        else:
            self._r = redis
            self._owns = False
        self._key = key
        self._prefix = prefix
        self._max_attempts = max_attempts
        self._script = self._r.register_script(_APPEND_LUA)
        self._build_script = self._r.register_script(_BUILD_TREE_LUA)
        #: Each tenant's tree size and right frontier as this process last wrote them.
        self._frontiers: dict[str, tuple[int, dict[Coord, bytes]]] = {}
        # One flusher per tenant commits this process's appends in groups, so only other
        # processes can move a head under us; the head we wrote last is usually current.
        self._pending: dict[str, list[_Pending]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._heads: dict[str, tuple[int, str]] = {}
        #: Script calls that wrote (one per group commit), for tests and the benchmark.
        self.groups_committed = 0

    # -- keys --------------------------------------------------------------------------------
    def _stream(self, tenant_id: str) -> str:
        return f"{self._prefix}{{{tenant_id}}}"

    def _index_prefix(self, tenant_id: str) -> str:
        return f"{self._stream(tenant_id)}:inc:"

    def _tree_prefix(self, tenant_id: str) -> str:
        return f"{self._stream(tenant_id)}:tree:"

    async def _call(self, op: Awaitable[T]) -> T:
        try:
            return await op
        except _UNAVAILABLE as exc:
            raise LedgerUnavailable(f"Redis ledger unreachable: {exc}") from exc
        except RedisError as exc:
            raise LedgerError(f"Redis ledger error: {exc}", cause=_refusal(exc)) from exc

    async def check_writable(self) -> None:
        """One tiny write outside every chain: Redis may answer reads and refuse writes
        (MISCONF after a failed save on a full disk, OOM, a read-only replica)."""
        if self._key is None:
            return
        await self._call(self._r.set(f"{self._prefix}probe", "1", px=60_000))

    # -- writing -----------------------------------------------------------------------------
    async def append(
        self, tenant_id: str, drafts: Sequence[EntryDraft], *, expect_seq: int | None = None
    ) -> list[Entry]:
        check_drafts(tenant_id, drafts)
        if self._key is None:
            raise LedgerError("read-only ledger: no ledger key was given, so no head can be signed")
        if not drafts and expect_seq is None:
            return []
        fut: asyncio.Future[list[Entry]] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(tenant_id, []).append(_Pending(list(drafts), expect_seq, fut))
        if tenant_id not in self._flushers:
            self._flushers[tenant_id] = asyncio.create_task(self._flush(tenant_id))
        # Shielded: a cancelled caller must not cancel the flush other callers share.
        return await asyncio.shield(fut)

    async def _flush(self, tenant_id: str) -> None:
        """Commit the tenant's queued appends, group by group, until none are left.

        One flusher per tenant and process: appends queued while a script call is in
        flight go out together in the next one (group commit), in arrival order.
        """
        try:
            while pending := self._pending.pop(tenant_id, None):
                group, rest = pending[:_MAX_GROUP], pending[_MAX_GROUP:]
                if rest:
                    self._pending[tenant_id] = rest
                outcomes: Sequence[list[Entry] | BaseException]
                try:
                    outcomes = await self._commit(tenant_id, group)
                except Exception as exc:  # every caller in the group gets the error
                    outcomes = [exc] * len(group)
                for p, outcome in zip(group, outcomes, strict=True):
                    if p.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        p.future.set_exception(outcome)
                    else:
                        p.future.set_result(outcome)
        finally:
            # No await between the last (empty) pop and here, so no append can slip by.
            self._flushers.pop(tenant_id, None)

    async def _read_head(self, tenant_id: str) -> tuple[int, str]:
        raw = await self._call(self._r.get(f"{self._stream(tenant_id)}:head"))
        return _parse_head(_s(raw) if raw is not None else "")

    async def _commit(
        self, tenant_id: str, group: list[_Pending]
    ) -> list[list[Entry] | LedgerError]:
        assert self._key is not None
        stream = self._stream(tenant_id)
        keys = [stream, f"{stream}:head", f"{stream}:cp", f"{self._prefix}tenants"]
        cached = self._heads.get(tenant_id)
        head = cached if cached is not None else await self._read_head(tenant_id)
        fresh = cached is None
        for _ in range(self._max_attempts):
            # Decide every call of the group against the head we believe current; the
            # script only writes if that head still is, so the decisions hold.
            h = head
            frontier = await self._frontier(tenant_id, head[0])
            outcomes: list[list[Entry] | LedgerError] = []
            entries: list[Entry] = []
            texts: list[str] = []
            for p in group:
                if p.expect_seq is not None and p.expect_seq != h[0]:
                    outcomes.append(LedgerConflict(tenant_id, p.expect_seq, h[0]))
                    continue
                try:
                    triples = seal_many_text(p.drafts, h[0], h[1])
                except (ValueError, TypeError) as exc:
                    outcomes.append(LedgerError(f"cannot seal the entries: {exc}", cause=BAD_ENTRY))
                    continue
                sealed = [e for e, _, _ in triples]
                if sealed:
                    h = (sealed[-1].seq, sealed[-1].hash)
                    entries.extend(sealed)
                    texts.extend(t for _, _, t in triples)
                outcomes.append(sealed)
            if not entries:
                if fresh:
                    return outcomes
                head, fresh = await self._read_head(tenant_id), True  # confirm, then decide
                continue
            cp = sign_checkpoint(self._key, tenant_id, h[0], h[1])
            made = append_nodes(
                head[0],
                [hashlib.sha256(b"\x00" + t.encode()).digest() for t in texts],
                frontier.__getitem__,
            )
            args: list[Any] = [
                _head_str(*head),
                "",
                _head_str(*h),
                json.dumps(cp.to_dict()),
                tenant_id,
                self._index_prefix(tenant_id),
                self._tree_prefix(tenant_id),
                head[0],
                3 * len(made),
            ]
            for level, idx, nh in made:
                args += [level, idx * 32, nh]
            for e, text in zip(entries, texts, strict=True):
                args += [f"{e.seq}-0", text, e.incident_id or ""]
            try:
                status, value = await self._call(self._script(keys=keys, args=args))
            except LedgerError:
                self._heads.pop(tenant_id, None)  # unknown whether it landed: re-read next time
                self._frontiers.pop(tenant_id, None)
                raise
            if status == 1:
                self._heads[tenant_id] = h
                known = {**frontier, **{(lv, ix): nh for lv, ix, nh in made}}
                self._frontiers[tenant_id] = (h[0], {c: known[c] for c in root_plan(h[0])})
                self.groups_committed += 1
                return outcomes
            if status == -2:  # the tree lags the chain (a ledger from before the tree)
                self._frontiers.pop(tenant_id, None)
                await self.build_tree(tenant_id)
                continue
            head, fresh = _parse_head(_s(value)), True  # another writer moved it: re-seal
        self._heads.pop(tenant_id, None)
        raise LedgerError(
            f"tenant {tenant_id!r}: the head kept moving; gave up after "
            f"{self._max_attempts} attempts"
        )

    # -- reading -----------------------------------------------------------------------------
    async def _xrange(self, stream: str, start: str, end: str, count: int) -> list[Any]:
        out: Any = await self._call(self._r.xrange(stream, start, end, count=count))
        return list(out or [])

    @staticmethod
    def _entry(fields: dict[bytes, bytes]) -> Entry:
        return Entry.from_dict(json.loads(fields[b"e"]))

    async def read(self, query: LedgerQuery) -> list[Entry]:
        stream = self._stream(query.tenant_id)
        out: list[Entry] = []
        if query.incident_id is not None:
            raw = await self._call(
                self._r.lrange(self._index_prefix(query.tenant_id) + query.incident_id, 0, -1)
            )
            seqs = [int(s) for s in raw if int(s) > query.after_seq]
            for i in range(0, len(seqs), 500):
                pipe = self._r.pipeline(transaction=False)
                for seq in seqs[i : i + 500]:
                    pipe.xrange(stream, f"{seq}-0", f"{seq}-0")
                for found in await self._call(pipe.execute()):
                    for _, fields in found:
                        e = self._entry(fields)
                        if query.matches(e):
                            out.append(e)
                            if query.limit is not None and len(out) >= query.limit:
                                return out
            return out
        start = f"({query.after_seq}-0" if query.after_seq > 0 else "-"
        while True:
            page = await self._xrange(stream, start, "+", 2000)
            for _, fields in page:
                e = self._entry(fields)
                if query.matches(e):
                    out.append(e)
                    if query.limit is not None and len(out) >= query.limit:
                        return out
            if len(page) < 2000:
                return out
            start = "(" + _s(page[-1][0])

    async def scan(self, tenant_id: str, *, batch: int = 5000) -> AsyncIterator[Entry]:
        stream = self._stream(tenant_id)
        last: Any = await self._call(self._r.xrevrange(stream, "+", "-", count=1))
        if not last:
            return
        end = _s(last[0][0])  # a snapshot: entries appended while scanning are left out
        start = "-"
        while True:
            page = await self._xrange(stream, start, end, batch)
            for _, fields in page:
                yield self._entry(fields)
            if len(page) < batch:
                return
            start = "(" + _s(page[-1][0])

    async def head(self, tenant_id: str) -> Checkpoint | None:
        raw = await self._call(self._r.get(f"{self._stream(tenant_id)}:cp"))
        return None if raw is None else Checkpoint(**json.loads(raw))

    async def tenants(self) -> list[str]:
        raw = await self._call(self._r.smembers(f"{self._prefix}tenants"))
        return sorted(_s(t) for t in raw)

    async def count(self, tenant_id: str) -> int:
        raw = await self._call(self._r.get(f"{self._stream(tenant_id)}:head"))
        return _parse_head(_s(raw) if raw is not None else "")[0]

    async def verify(
        self,
        tenant_id: str,
        *,
        progress: Callable[[int], None] | None = None,
        workers: int | None = None,
        parallel_min: int = parallel.PARALLEL_MIN_ENTRIES,
        chunk: int | None = None,
    ) -> VerifyResult:
        """See :meth:`LedgerStore.verify`. A store opened from a URL verifies a chain of
        ``parallel_min`` entries or more in stream-id ranges on ``workers`` processes
        (default: one per CPU), ``chunk`` ids per range; the result is the same."""
        stream = self._stream(tenant_id)
        # The checkpoint and the stream's last id, read atomically: the snapshot to verify.
        pipe = self._r.pipeline(transaction=True)
        pipe.get(f"{stream}:cp")
        pipe.xrevrange(stream, "+", "-", count=1)
        pipe.xrange(stream, "-", "+", count=1)
        raw_cp, last, first = await self._call(pipe.execute())
        checkpoint = None if raw_cp is None else Checkpoint(**json.loads(raw_cp))
        verifier = ChainVerifier(tenant_id)
        if not last:
            return verifier.finish(checkpoint, self._key)
        end = _s(last[0][0])
        lo, hi = _id_ms(_s(first[0][0])), _id_ms(end)
        workers = parallel.cpu_workers() if workers is None else workers
        if self._url is not None and workers > 1 and hi - lo + 1 >= max(parallel_min, 2):
            # Ranges of stream ids by their first part (the seq, for entries the store
            # wrote); the last range ends at the snapshot's last id, so appends made
            # meanwhile are left out, as in the sequential walk.
            size = chunk or parallel.chunk_size(hi - lo + 1, workers)
            ranges = parallel.split(lo, hi, size)
            jobs = [
                (
                    self._url,
                    stream,
                    tenant_id,
                    "-" if i == 0 else f"{a + 1}-0",
                    end if b == hi else f"{b}-{_MAX_ID_SEQ}",
                )
                for i, (a, b) in enumerate(ranges)
            ]
            try:
                await asyncio.to_thread(
                    parallel.run_chunks,
                    verifier,
                    _verify_range,
                    jobs,
                    _check_record,
                    workers=workers,
                    progress=progress,
                )
            except _UNAVAILABLE as exc:
                raise LedgerUnavailable(f"Redis ledger unreachable: {exc}") from exc
            except RedisError as exc:
                raise LedgerError(f"Redis ledger error: {exc}") from exc
            return verifier.finish(checkpoint, self._key)
        start, batch = "-", _PAGE
        while True:
            page = await self._xrange(stream, start, end, batch)
            ok = _walk(verifier, [(_s(sid), fields.get(b"e")) for sid, fields in page])
            if progress is not None:
                progress(len(page))
            if not ok or len(page) < batch:
                break
            start = "(" + _s(page[-1][0])
        return verifier.finish(checkpoint, self._key)

    # -- the Merkle tree (TreeStore) -------------------------------------------------------

    async def tree_size(self, tenant_id: str) -> int:
        n = await self._call(self._r.strlen(self._tree_prefix(tenant_id) + "0"))
        return int(n) // 32

    async def tree_nodes(self, tenant_id: str, coords: Collection[Coord]) -> dict[Coord, bytes]:
        order = list(coords)
        prefix = self._tree_prefix(tenant_id)
        pipe = self._r.pipeline(transaction=False)
        for level, idx in order:
            pipe.getrange(f"{prefix}{level}", idx * 32, idx * 32 + 31)
        got = await self._call(pipe.execute()) if order else []
        out: dict[Coord, bytes] = {}
        for c, raw in zip(order, got, strict=True):
            if not isinstance(raw, bytes) or len(raw) != 32:
                raise LedgerError(f"tenant {tenant_id!r}: the ledger tree lacks node {c}")
            out[c] = raw
        return out

    async def _frontier(self, tenant_id: str, size: int) -> dict[Coord, bytes]:
        """The right frontier of the tree of ``size`` (building a lagging tree first)."""
        cached = self._frontiers.get(tenant_id)
        if cached is not None and cached[0] == size:
            return cached[1]
        if await self.tree_size(tenant_id) < size:
            await self.build_tree(tenant_id)
        frontier = await self.tree_nodes(tenant_id, root_plan(size)) if size else {}
        self._frontiers[tenant_id] = (size, frontier)
        return frontier

    async def build_tree(
        self, tenant_id: str, *, progress: Callable[[int], None] | None = None
    ) -> int:
        stream, prefix, added = self._stream(tenant_id), self._tree_prefix(tenant_id), 0
        while True:
            size, (head_seq, _) = await self.tree_size(tenant_id), await self._read_head(tenant_id)
            if size >= head_seq:
                return added
            page = await self._xrange(stream, f"{size + 1}-0", f"{head_seq}-0", _PAGE)
            texts = [fields[b"e"] for _, fields in page]
            if not page or _s(page[0][0]) != f"{size + 1}-0":
                raise LedgerError(f"tenant {tenant_id!r}: entry {size + 1} is missing")
            frontier = await self.tree_nodes(tenant_id, root_plan(size)) if size else {}
            made = append_nodes(
                size, [hashlib.sha256(b"\x00" + t).digest() for t in texts], frontier.__getitem__
            )
            args: list[Any] = [prefix, size]
            for level, idx, nh in made:
                args += [level, idx * 32, nh]
            if await self._call(self._build_script(keys=[], args=args)) == 1:
                added += len(texts)
                if progress is not None:
                    progress(len(texts))

    async def close(self) -> None:
        if self._owns:
            try:
                await self._r.aclose()
            except RedisError:
                pass
