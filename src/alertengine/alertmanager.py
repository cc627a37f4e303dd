"""Prometheus Alertmanager's webhook notifications, read with Alertmanager's own semantics.

Pure: no I/O, no clock (``now`` is passed in). An alert is identified by its ``fingerprint``
(the hash of its label set, computed here exactly as Alertmanager does when a sender leaves it
out). It is *firing* until a notification says ``resolved`` or its ``endsAt`` has passed —
Alertmanager itself zeroes ``endsAt`` on firing alerts in webhooks, so for a real Alertmanager
only ``resolved`` ends one; other senders may use ``endsAt`` as a lease, as Alertmanager's own
API does. A resolved alert says that *this alert* ended, not that the whole service is healthy:
it is never turned into a health observation.

An incident opened from Alertmanager tracks the alerts it saw (fingerprint → the last word
about it, as ledger data); it ends when every one of them has ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from alertengine.policy import Decision, HealthSnapshot

#: A larger notification is refused with a reason (set ``max_alerts`` in the receiver).
MAX_ALERTS = 1000

# FNV-1a, 64 bit: Alertmanager's (prometheus/common model.LabelSet) fingerprint.
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF


class PayloadError(ValueError):
    """The body is not an Alertmanager webhook notification. The message says why."""


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """The fingerprint Alertmanager gives an alert with these labels (16 hex digits)."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def _utf8(value: str) -> str:
    # A lone surrogate cannot be stored or shown anywhere: refuse it here, with a reason.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


class _WireAlert(BaseModel):
    """One alert as Alertmanager's webhook (version 4) sends it."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"] | None = None
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None  # Alertmanager's field names
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("labels", "annotations")
    @classmethod
    def _text(cls, value: dict[str, str]) -> dict[str, str]:
        for k, v in value.items():
            _utf8(k)
            _utf8(v)
        return value

    @field_validator("generatorURL", "fingerprint")
    @classmethod
    def _plain(cls, value: str) -> str:
        return _utf8(value)


class _WirePayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"] | None = None
    alerts: list[_WireAlert]


def _epoch(d: datetime | None) -> float | None:
    """Seconds since the epoch; None for absent or Go's zero time (0001-01-01)."""
    if d is None or d.year <= 1:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert of a notification, as the orchestrator uses, ledgers and shows it."""

    fingerprint: str
    status: Literal["firing", "resolved"]
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: float | None = None
    ends_at: float | None = None
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")

    @property
    def service(self) -> str:
        """The target it is about: the ``service`` label, else Prometheus's ``job``."""
        return self.labels.get("service") or self.labels.get("job") or ""

    def to_data(self) -> dict[str, Any]:
        """Ledger data: Alertmanager's own field names, times as seconds since the epoch."""
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "alertname": self.name,
            "startsAt": self.starts_at,
            "endsAt": self.ends_at,
            "generatorURL": self.generator_url,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }


def parse_notification(body: Any) -> list[Alert]:
    """The alerts of an Alertmanager webhook body, or :class:`PayloadError` with a reason."""
    if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
        raise PayloadError("not an Alertmanager webhook payload: no 'alerts' list")
    if len(body["alerts"]) > MAX_ALERTS:
        raise PayloadError(
            f"{len(body['alerts'])} alerts in one notification (at most {MAX_ALERTS}); "
            "set max_alerts in the Alertmanager webhook receiver"
        )
    try:
        wire = _WirePayload.model_validate(body)
    except (ValidationError, RecursionError) as exc:
        raise PayloadError(_reason(exc)) from None
    alerts = []
    for i, a in enumerate(wire.alerts):
        status = a.status or wire.status
        if status is None:
            raise PayloadError(f"alerts[{i}]: no status (firing or resolved)")
        alerts.append(
            Alert(
                fingerprint=a.fingerprint or label_fingerprint(a.labels),
                status=status,
                labels=a.labels,
                annotations=a.annotations,
                starts_at=_epoch(a.startsAt),
                ends_at=_epoch(a.endsAt),
                generator_url=a.generatorURL,
            )
        )
    return alerts


def _reason(exc: Exception) -> str:
    if not isinstance(exc, ValidationError):
        return "payload nested too deeply"
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "payload"
    return f"{where}: {err['msg']}"


# --- what an incident knows about its alerts -------------------------------------------------


def is_firing(alert: Mapping[str, Any], now: float) -> bool:
    """Firing: not resolved, and its ``endsAt`` (if any) still ahead."""
    if alert.get("status") != "firing":
        return False
    ends_at = alert.get("endsAt")
    return not isinstance(ends_at, (int, float)) or ends_at > now


def firing(alerts: Mapping[str, Mapping[str, Any]], now: float) -> list[Mapping[str, Any]]:
    return [a for a in alerts.values() if is_firing(a, now)]


def changes(
    tracked: Mapping[str, Mapping[str, Any]], received: Iterable[Alert], now: float
) -> list[Alert]:
    """What is new about these alerts for an incident that tracks ``tracked``.

    A firing alert is news when it is not tracked as firing (new, or firing again); a resolved
    one when it is tracked as firing. Re-sends of what is known are not news, and a resolved
    alert the incident never saw firing is none of its business.
    """
    news = []
    for a in received:
        known = tracked.get(a.fingerprint)
        known_firing = known is not None and is_firing(known, now)
        if a.status == "firing" and (not known_firing or _refreshed(known, a)):
            news.append(a)
        elif a.status == "resolved" and known_firing:
            news.append(a)
    return news


def _refreshed(known: Mapping[str, Any] | None, a: Alert) -> bool:
    # A firing alert whose lease (endsAt) moved on is news: without it, the old lease would end it.
    return known is not None and a.ends_at is not None and known.get("endsAt") != a.ends_at


def alerts_ended(alerts: Mapping[str, Mapping[str, Any]], now: float) -> Decision:
    """Have all of an incident's alerts ended (resolved, or ``endsAt`` passed)?"""
    still = firing(alerts, now)
    if still:
        names = ", ".join(sorted({str(a.get("alertname", "alert")) for a in still}))
        return Decision(False, f"{len(still)} Alertmanager alert(s) still firing: {names}")
    names = ", ".join(sorted({str(a.get("alertname", "alert")) for a in alerts.values()}))
    return Decision(True, f"every Alertmanager alert of the incident has resolved ({names})")


def alerts_snapshot(alerts: Iterable[Mapping[str, Any]], now: float) -> HealthSnapshot:
    """The observation firing alerts stand for: critical, no numbers (Alertmanager has none)."""
    names = ", ".join(sorted({str(a.get("alertname", "alert")) for a in alerts})) or "alert"
    return HealthSnapshot(observed_at=now, status="critical", source="alertmanager", detail=names)
