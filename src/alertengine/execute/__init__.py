"""Execution: signed recovery webhooks, retries, idempotency keys, dead-letter queue."""

from alertengine.execute.executor import (
    DLQ,
    ExecutionOutcome,
    Executor,
    dlq_list,
    dlq_replay,
    idempotency_key,
)
from alertengine.execute.signing import sign, verify

__all__ = [
    "DLQ",
    "ExecutionOutcome",
    "Executor",
    "dlq_list",
    "dlq_replay",
    "idempotency_key",
    "sign",
    "verify",
]
