"""For the tenant's own service: verify AlertEngine's recovery calls and witness its log.

See docs/webhooks.md (The receiver). :class:`Receiver` does the work for any framework;
:func:`fastapi_dependency` and :func:`starlette_endpoint` plug it into a web app.
"""

from alertengine.receiver.core import (
    CHECKPOINT_HEADER,
    STATUS_CHECKPOINT_REFUSED,
    Answer,
    ConsistencyFetch,
    Receiver,
)
from alertengine.receiver.receipt import Receipt, open_receipt, sign_receipt
from alertengine.receiver.store import MemoryWitnessStore, SqliteWitnessStore, WitnessStore
from alertengine.receiver.web import HttpConsistencyFetcher, fastapi_dependency, starlette_endpoint

__all__ = [
    "CHECKPOINT_HEADER",
    "STATUS_CHECKPOINT_REFUSED",
    "Answer",
    "ConsistencyFetch",
    "HttpConsistencyFetcher",
    "MemoryWitnessStore",
    "Receipt",
    "Receiver",
    "SqliteWitnessStore",
    "WitnessStore",
    "fastapi_dependency",
    "open_receipt",
    "sign_receipt",
    "starlette_endpoint",
]
