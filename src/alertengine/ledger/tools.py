"""Ledger tools behind ``alertengine ledger ...``: verify every tenant, export entries.

Plain async functions over a :class:`~alertengine.ledger.base.LedgerStore`, so the CLI, the
HTTP API and tests share them. Configuration comes from the environment:
``ALERTENGINE_STORE_URL`` (default ``sqlite:///var/alertengine.db``) and
``ALERTENGINE_LEDGER_KEY`` (the HMAC key for head checkpoints, used as its UTF-8 bytes).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Literal, TextIO

from alertengine.ledger.base import LedgerQuery, LedgerStore
from alertengine.ledger.chain import HASHED_FIELDS, Entry, VerifyResult, canonical_json

ENV_STORE_URL = "ALERTENGINE_STORE_URL"
ENV_LEDGER_KEY = "ALERTENGINE_LEDGER_KEY"
DEFAULT_STORE_URL = "sqlite:///var/alertengine.db"

#: Column order of exports: the hashed fields, then the hash (so each line re-hashes).
EXPORT_FIELDS: tuple[str, ...] = (*HASHED_FIELDS, "hash")

ExportFormat = Literal["jsonl", "csv"]


def store_url_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(ENV_STORE_URL) or DEFAULT_STORE_URL


def ledger_key_from_env(env: Mapping[str, str] | None = None) -> bytes | None:
    """The checkpoint HMAC key from ``ALERTENGINE_LEDGER_KEY`` (UTF-8), or None if unset."""
    env = os.environ if env is None else env
    raw = env.get(ENV_LEDGER_KEY, "")
    return raw.encode() if raw else None


def parse_time(text: str) -> float:
    """Epoch seconds (``1717344000.5``) or ISO 8601 (``2024-06-02T16:00:00Z``; naive = UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not a time: {text!r} (use epoch seconds or ISO 8601)") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


async def verify_tenants(
    store: LedgerStore,
    tenants: Sequence[str] | None = None,
    *,
    on_start: Callable[[str, int], None] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> list[VerifyResult]:
    """Verify each tenant (all of them by default), one after another.

    ``on_start(tenant, expected_count)`` is called before each tenant, and
    ``progress(tenant, n)`` as entries are checked (possibly from a worker thread).
    """
    names = list(tenants) if tenants is not None else await store.tenants()
    results: list[VerifyResult] = []
    for tenant in names:
        if on_start is not None:
            on_start(tenant, await store.count(tenant))
        tick = None if progress is None else _bind(progress, tenant)
        results.append(await store.verify(tenant, progress=tick))
    return results


def _bind(progress: Callable[[str, int], None], tenant: str) -> Callable[[int], None]:
    return lambda n: progress(tenant, n)


def _csv_value(e: Entry, name: str) -> str:
    value = getattr(e, name)
    if value is None:
        return ""
    if name == "data":
        return canonical_json(dict(value))
    return repr(value) if isinstance(value, float) else str(value)


async def export_entries(
    store: LedgerStore,
    out: TextIO,
    *,
    fmt: ExportFormat = "jsonl",
    tenants: Sequence[str] | None = None,
    incident_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> int:
    """Write matching entries to ``out``, tenant by tenant in seq order; returns how many.

    JSONL: one canonical JSON entry per line (every field, hash included, so an auditor
    can re-hash and re-chain it). CSV: a header of :data:`EXPORT_FIELDS`, ``data`` as
    canonical JSON, null as empty, floats by ``repr`` (exact).
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}: use jsonl or csv")
    writer = csv.writer(out) if fmt == "csv" else None

    def write(e: Entry) -> None:
        if writer is None:
            out.write(e.to_json() + "\n")
        else:
            writer.writerow([_csv_value(e, f) for f in EXPORT_FIELDS])

    if writer is not None:
        writer.writerow(EXPORT_FIELDS)
    names = list(tenants) if tenants is not None else await store.tenants()
    written = 0
    for tenant in names:
        query = LedgerQuery(tenant, incident_id=incident_id, since=since, until=until)
        if incident_id is not None:
            for e in await store.read(query):  # indexed, and one incident is small
                write(e)
                written += 1
            continue
        async for e in store.scan(tenant):  # streamed: an export of millions stays flat
            if query.matches(e):
                write(e)
                written += 1
    return written
