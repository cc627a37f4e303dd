"""The state-store backends of the store contract tests (memory, SQLite, real Redis)."""

from tests.stores.conftest import state_backend

__all__ = ["state_backend"]
