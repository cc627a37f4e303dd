"""Verify one chain in parallel: seq ranges in worker processes, the seams in the caller.

A chain check is local: entry *k* is right if its own hash matches its content and its
``prev_hash`` is entry *k − 1*'s hash. So the stored records are cut into contiguous
ranges, each range is walked in a worker process (its internal hashes and links), and the
caller stitches the ranges together in order: it re-checks each range's first record
against the chain so far (which covers the seam: range *k*'s first ``prev_hash`` against
range *k − 1*'s last hash, and the seq numbering across it), then takes over the range's
outcome (:meth:`~alertengine.ledger.chain.ChainVerifier.absorb`). The signed head is
checked by the caller at the end, as in the sequential walk. The result is the
sequential walk's, field for field: same first bad seq, same problem text.

Process start-up costs tens of milliseconds, so small chains are walked in-process
(:data:`PARALLEL_MIN_ENTRIES`, picked by measurement; see BENCHMARKS.md).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from alertengine.ledger.chain import ChainVerifier, ChunkResult

#: Below this many entries a chain is verified in-process: starting worker processes
#: costs more than it saves (measured: see BENCHMARKS.md, "Ledger").
PARALLEL_MIN_ENTRIES = 50_000

#: Entries per range handed to one worker call (several ranges per worker, so progress
#: moves and a failure found early stops the rest).
CHUNK_MIN, CHUNK_MAX = 20_000, 200_000


def cpu_workers() -> int:
    """Worker processes to use: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def split(lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    """Half-open ranges ``(a, b]`` of about ``size`` seqs covering ``(lo - 1, hi]``."""
    out: list[tuple[int, int]] = []
    a = lo - 1
    while a < hi:
        b = min(a + size, hi)
        out.append((a, b))
        a = b
    return out


def chunk_size(entries: int, workers: int) -> int:
    """Several ranges per worker, within [CHUNK_MIN, CHUNK_MAX] entries."""
    return max(CHUNK_MIN, min(CHUNK_MAX, -(-entries // (workers * 4))))


def _context() -> Any:
    # Not "fork": the caller has threads (the event loop's, the SQLite writer), and a child
    # forked while one of them holds a lock (SQLite's, the allocator's) can hang.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def run_chunks(
    verifier: ChainVerifier,
    fn: Callable[..., ChunkResult],
    jobs: Sequence[tuple[Any, ...]],
    check_first: Callable[[ChainVerifier, Any], bool],
    *,
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Run ``fn(*job)`` for every job in worker processes and absorb the results in order.

    Blocking. Stops at the first failure (pending ranges are cancelled). An exception
    raised by ``fn`` (e.g. the store became unreachable) is re-raised here.
    """
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        futures: list[Future[ChunkResult]] = [pool.submit(fn, *job) for job in jobs]
        try:
            for fut in futures:
                chunk = fut.result()
                if progress is not None and chunk.rows:
                    progress(chunk.rows)
                if not verifier.absorb(chunk, check_first):
                    break
        finally:
            for fut in futures:
                fut.cancel()
