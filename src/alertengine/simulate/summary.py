"""What happened, measured from the simulated ledger alone. Pure.

Every figure is derived from ledger entries (the source of truth) plus the scenario, so a
ledger written with ``--ledger-out`` gives the same summary when read back. Times are
seconds from the *onset*: the scripted start of the degradation the incident was opened
for (the earliest event of that service still active when the incident was detected).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from alertengine.incidents import fold
from alertengine.ledger.chain import Entry
from alertengine.simulate.scenario import Scenario


@dataclass(frozen=True, slots=True)
class IncidentSummary:
    incident_id: str
    service: str
    final_stage: str
    onset: float | None
    detected: float
    first_notified: float | None = None
    authorized: float | None = None
    executed: float | None = None
    ended: float | None = None
    expirations: int = 0
    reproposals: int = 0
    escalations: int = 0
    links_issued: int = 0
    deliveries: int = 0
    delivery_failures: int = 0
    refusals: int = 0
    webhook_attempts: int = 0
    dead_lettered: int = 0
    approvers: tuple[str, ...] = ()

    def _since_onset(self, t: float | None) -> float | None:
        base = self.onset if self.onset is not None else self.detected
        return None if t is None else t - base

    @property
    def time_to_detect(self) -> float | None:
        return self._since_onset(self.detected)

    @property
    def time_to_notify(self) -> float | None:
        return self._since_onset(self.first_notified)

    @property
    def time_to_authorize(self) -> float | None:
        return self._since_onset(self.authorized)

    @property
    def time_to_end(self) -> float | None:
        return self._since_onset(self.ended)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["approvers"] = list(self.approvers)
        d.update(
            time_to_detect=self.time_to_detect,
            time_to_notify=self.time_to_notify,
            time_to_authorize=self.time_to_authorize,
            time_to_end=self.time_to_end,
        )
        return d


TOTALS = (
    "incidents_opened",
    "authorized",
    "expirations",
    "reproposals",
    "escalations",
    "links_issued",
    "deliveries",
    "delivery_failures",
    "refusals",
    "webhook_attempts",
    "dead_lettered",
)
TIMES = ("time_to_detect", "time_to_notify", "time_to_authorize", "time_to_end")


@dataclass(frozen=True)
class Summary:
    scenario: str
    policy_version: str
    duration: float
    ledger_entries: int
    head_hash: str
    incidents: tuple[IncidentSummary, ...]
    final_stages: Mapping[str, int] = field(default_factory=dict)

    def total(self, name: str) -> int:
        if name == "incidents_opened":
            return len(self.incidents)
        if name == "authorized":
            return sum(1 for i in self.incidents if i.authorized is not None)
        return sum(int(getattr(i, name)) for i in self.incidents)

    def first(self, name: str) -> float | None:
        """A time of the first incident that has one (the headline figure)."""
        for i in self.incidents:
            v: float | None = getattr(i, name)
            if v is not None:
                return v
        return None

    def mean(self, name: str) -> float | None:
        values = [v for i in self.incidents if (v := getattr(i, name)) is not None]
        return statistics.fmean(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "policy_version": self.policy_version,
            "duration_s": self.duration,
            "ledger_entries": self.ledger_entries,
            "ledger_head_hash": self.head_hash,
            "totals": {k: self.total(k) for k in TOTALS},
            "first": {k: self.first(k) for k in TIMES},
            "final_stages": dict(self.final_stages),
            "incidents": [i.to_dict() for i in self.incidents],
        }


def _onset(scenario: Scenario, service: str, detected: float) -> float | None:
    svc = next((s for s in scenario.services if s.name == service), None)
    if svc is None:
        return None
    active = [e.at for e in svc.events if e.at <= detected < e.end]
    return min(active) if active else None


def summarize(scenario: Scenario, entries: Sequence[Entry], start: float) -> Summary:
    """Per-incident and total figures from the ledger; times relative to ``start``."""
    states = fold(entries)
    by_incident: dict[str, list[Entry]] = {}
    for e in entries:
        if e.incident_id is not None:
            by_incident.setdefault(e.incident_id, []).append(e)
    out: list[IncidentSummary] = []
    for st in sorted(states.values(), key=lambda s: (s.opened_at, s.incident_id)):
        es = by_incident.get(st.incident_id, [])
        out.append(_incident(scenario, st.incident_id, st.service, str(st.stage), es, start))
    finals: dict[str, int] = {}
    for i in out:
        finals[i.final_stage] = finals.get(i.final_stage, 0) + 1
    policy_version = entries[0].policy_version if entries else ""
    return Summary(
        scenario=scenario.name,
        policy_version=policy_version,
        duration=scenario.duration,
        ledger_entries=len(entries),
        head_hash=entries[-1].hash if entries else "",
        incidents=tuple(out),
        final_stages=dict(sorted(finals.items())),
    )


def _incident(
    scenario: Scenario,
    incident_id: str,
    service: str,
    final_stage: str,
    entries: Iterable[Entry],
    start: float,
) -> IncidentSummary:
    detected = 0.0
    first_notified = authorized = executed = ended = None
    counts = dict.fromkeys(
        (
            "expirations",
            "reproposals",
            "escalations",
            "links_issued",
            "deliveries",
            "delivery_failures",
            "refusals",
            "webhook_attempts",
            "dead_lettered",
        ),
        0,
    )
    approvers: list[str] = []
    for e in entries:
        t = e.timestamp - start
        if e.kind == "transition":
            if e.stage == "DETECTED":
                detected = t
            elif e.stage == "AUTHORIZED" and authorized is None:
                authorized = t
            elif e.stage == "EXECUTED" and executed is None:
                executed = t
            elif e.stage == "EXPIRED":
                counts["expirations"] += 1
            elif e.stage == "WEBHOOK_FAILED":
                counts["dead_lettered"] += 1
            if e.stage in ("RESOLVED", "RECOVERED", "EXPIRED"):
                ended = t
        elif e.kind == "approval":
            approvers.append(e.actor)
        elif e.kind == "token":
            if e.decision == "issued":
                counts["links_issued"] += 1
            elif e.decision == "reproposed":
                counts["reproposals"] += 1
        elif e.kind == "delivery":
            if e.decision == "delivered":
                counts["deliveries"] += 1
                if first_notified is None:
                    first_notified = t
            elif e.decision != "fallover":  # a call's fall-over is a decision, not an attempt
                counts["delivery_failures"] += 1
        elif e.kind == "escalation":
            counts["escalations"] += 1
        elif e.kind == "refused":
            counts["refusals"] += 1
        elif e.kind == "execution" and e.decision != "started":  # one outcome per attempt
            counts["webhook_attempts"] += 1
    return IncidentSummary(
        incident_id=incident_id,
        service=service,
        final_stage=final_stage,
        onset=_onset(scenario, service, detected),
        detected=detected,
        first_notified=first_notified,
        authorized=authorized,
        executed=executed,
        ended=ended,
        approvers=tuple(approvers),
        **counts,
    )
