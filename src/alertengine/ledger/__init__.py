"""The append-only, hash-chained ledger: one contract, two backends."""

from alertengine.ledger.base import (
    LedgerConflict,
    LedgerError,
    LedgerQuery,
    LedgerStore,
    LedgerUnavailable,
)
from alertengine.ledger.chain import (
    GENESIS_HASH,
    Checkpoint,
    Entry,
    EntryDraft,
    VerifyResult,
    verify_chain,
)

__all__ = [
    "GENESIS_HASH",
    "Checkpoint",
    "Entry",
    "EntryDraft",
    "LedgerConflict",
    "LedgerError",
    "LedgerQuery",
    "LedgerStore",
    "LedgerUnavailable",
    "VerifyResult",
    "verify_chain",
]
