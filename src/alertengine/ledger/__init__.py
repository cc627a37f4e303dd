"""The append-only, hash-chained ledger: one contract, two backends, a Merkle tree per tenant
(proofs and signed checkpoints: :mod:`alertengine.ledger.tlog`)."""

from alertengine.ledger.base import (
    LedgerConflict,
    LedgerError,
    LedgerQuery,
    LedgerStore,
    LedgerUnavailable,
    TreeStore,
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
    "TreeStore",
    "VerifyResult",
    "verify_chain",
]
