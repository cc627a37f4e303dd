"""Who was asked when: the notification side of a simulated ledger, as rows. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alertengine.ledger.chain import Entry


def asked(entries: Sequence[Entry], start: float) -> list[dict[str, Any]]:
    """One row per delivery attempt, call outcome, fall-over, escalation, silence hold and
    approval, in ledger order:
    ``{t, incident_id, what, who, channel, outcome}`` (``t`` in seconds from the start)."""
    rows: list[dict[str, Any]] = []
    for e in entries:
        row: dict[str, Any] | None = None
        if e.kind == "delivery" and e.decision in ("delivered", "failed", "skipped"):
            row = {
                "what": "asked",
                "who": str(e.data.get("identity", "")),
                "channel": str(e.data.get("channel", "")),
                "outcome": e.decision,
            }
        elif e.kind == "delivery" and e.decision == "unreachable":
            row = {"what": "nobody reached", "who": "", "channel": "", "outcome": e.reason}
        elif e.kind == "delivery" and e.decision == "fallover":
            row = {"what": "fall-over", "who": str(e.data.get("identity", "")),
                   "channel": "voice", "outcome": e.reason}  # fmt: skip
        elif e.kind == "call":
            row = {"what": "call", "who": "", "channel": "voice", "outcome": e.decision}
        elif e.kind == "escalation":
            row = {"what": "escalation", "who": "", "channel": "", "outcome": e.reason}
        elif e.kind == "silenced":
            row = {"what": f"silence {e.decision}", "who": "", "channel": "",
                   "outcome": str(e.data.get("silence", ""))}  # fmt: skip
        elif e.kind == "ack":
            who = e.actor if e.decision == "acknowledged" else str(e.data.get("acked_by", ""))
            row = {"what": f"ack {e.decision}", "who": who, "channel": str(e.data.get("via", "")),
                   "outcome": e.reason}  # fmt: skip
        elif e.kind == "transition" and e.stage == "AUTHORIZED":
            row = {"what": "approved", "who": e.actor, "channel": "", "outcome": "AUTHORIZED"}
        if row is not None:
            rows.append({"t": e.timestamp - start, "incident_id": e.incident_id or "", **row})
    return rows
