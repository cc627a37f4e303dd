"""The ledger contract every backend honours (SQLite embedded default, Redis for scale-out).

Append-only: there is no update and no delete. Appends are atomic per call and chained per
tenant; a store signs a new head checkpoint in the same atomic step as the append, so a
verifier can tell a cut-off tail from a short ledger.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from alertengine.ledger.chain import Checkpoint, Entry, EntryDraft, VerifyResult
from alertengine.ledger.merkle import Coord


class LedgerError(Exception):
    """The ledger could not do what was asked; nothing was written."""

    #: Short, secret-free words for health pages and mode entries ("disk full" …).
    cause = "error"

    def __init__(self, *args: object, cause: str | None = None) -> None:
        super().__init__(*args)
        if cause:
            self.cause = cause


class LedgerUnavailable(LedgerError):
    """The backing store is unreachable. Callers degrade (and retry), never drop entries."""

    cause = "unreachable"


#: The causes a store gives a write it could not make (``LedgerError.cause``).
DISK_FULL = "disk full"
READ_ONLY = "read-only"
#: Not the store's fault: the entries themselves cannot be sealed (a NaN, a non-JSON value).
BAD_ENTRY = "bad entry"


class LedgerConflict(LedgerError):
    """``expect_seq`` did not match the tenant's head: someone appended first. Re-decide."""

    def __init__(self, tenant_id: str, expected: int, actual: int) -> None:
        super().__init__(f"tenant {tenant_id!r}: expected head seq {expected}, found {actual}")
        self.tenant_id = tenant_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class LedgerQuery:
    """Which entries of one tenant to read; every filter given must hold (AND)."""

    tenant_id: str
    incident_id: str | None = None
    since: float | None = None  # timestamp, inclusive
    until: float | None = None  # timestamp, exclusive
    after_seq: int = 0
    limit: int | None = None  # at most this many, the lowest seqs first
    kinds: frozenset[str] | None = None

    def matches(self, e: Entry) -> bool:
        """Whether ``e`` passes every filter (``limit`` is the reader's job)."""
        return (
            e.tenant_id == self.tenant_id
            and e.seq > self.after_seq
            and (self.incident_id is None or e.incident_id == self.incident_id)
            and (self.since is None or e.timestamp >= self.since)
            and (self.until is None or e.timestamp < self.until)
            and (self.kinds is None or e.kind in self.kinds)
        )


def check_drafts(tenant_id: str, drafts: Sequence[EntryDraft]) -> None:
    """Refuse (``ValueError``) a batch that mixes tenants: a chain is per tenant."""
    if not tenant_id:
        raise ValueError("tenant_id must not be empty")
    for d in drafts:
        if d.tenant_id != tenant_id:
            raise ValueError(
                f"draft for tenant {d.tenant_id!r} appended to tenant {tenant_id!r}'s chain"
            )


@runtime_checkable
class LedgerStore(Protocol):
    async def append(
        self, tenant_id: str, drafts: Sequence[EntryDraft], *, expect_seq: int | None = None
    ) -> list[Entry]:
        """Atomically seal and append ``drafts`` (all of ``tenant_id``) to its chain.

        With ``expect_seq``, append only if the tenant's head seq equals it (compare-and-append),
        else raise :class:`LedgerConflict` and write nothing.
        """
        ...

    async def read(self, query: LedgerQuery) -> list[Entry]:
        """Entries of one tenant in seq order, filtered as the query says."""
        ...

    def scan(self, tenant_id: str, *, batch: int = 5000) -> AsyncIterator[Entry]:
        """Every entry of a tenant in seq order, streamed (for verify/replay of millions)."""
        ...

    async def head(self, tenant_id: str) -> Checkpoint | None:
        """The tenant's signed head checkpoint (None for an empty chain)."""
        ...

    async def tenants(self) -> list[str]:
        """Every tenant with at least one entry, sorted."""
        ...

    async def count(self, tenant_id: str) -> int:
        """Number of entries in the tenant's chain (its head seq)."""
        ...

    async def verify(
        self, tenant_id: str, *, progress: Callable[[int], None] | None = None
    ) -> VerifyResult:
        """Verify the tenant's whole chain against its signed head, on a consistent snapshot.

        ``progress`` (optional) is called now and then with the number of entries checked
        since the previous call, possibly from a worker thread (for a progress bar).
        Without a ledger key the chain is still walked but the checkpoint is not checked.
        """
        ...

    async def close(self) -> None: ...


@runtime_checkable
class WriteCheck(Protocol):
    """A store that can prove it still writes (a full disk still answers every read)."""

    async def check_writable(self) -> None:
        """Commit a tiny write outside any chain; raise :class:`LedgerError` if it cannot."""
        ...


@runtime_checkable
class TreeStore(Protocol):
    """The per-tenant RFC 9162 Merkle tree a store keeps beside the chain.

    Leaf ``seq - 1`` is the leaf hash of entry ``seq``; the store writes the tree's new
    nodes in the same atomic step as the entries. It keeps every perfect-subtree node, so
    any root or proof is a handful of point reads (see :mod:`alertengine.ledger.merkle`);
    :class:`alertengine.ledger.tlog.TransparencyLog` turns them into proofs and signed
    checkpoints.
    """

    async def tree_size(self, tenant_id: str) -> int:
        """Leaves in the tenant's tree (equal to its head seq once the tree is built)."""
        ...

    async def tree_nodes(self, tenant_id: str, coords: Collection[Coord]) -> dict[Coord, bytes]:
        """The stored perfect-subtree hashes at ``coords``; :class:`LedgerError` if one is
        missing (asked beyond the tree, or the tree was damaged)."""
        ...

    async def build_tree(
        self, tenant_id: str, *, progress: Callable[[int], None] | None = None
    ) -> int:
        """Extend the tree over entries it does not cover yet (a ledger written before
        the tree existed); returns how many leaves were added. Appends do this on their
        own; ``alertengine ledger migrate`` does it ahead of time, with progress."""
        ...
