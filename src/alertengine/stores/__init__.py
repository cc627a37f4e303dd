"""State stores (claims, leases, documents): memory, SQLite, Redis."""

from alertengine.stores.base import StateStore, StoreUnavailable
from alertengine.stores.memory import MemoryStateStore

__all__ = ["MemoryStateStore", "StateStore", "StoreUnavailable"]
