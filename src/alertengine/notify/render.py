"""Turn an incident into the one message an engineer decides from. Pure: no I/O, no clock.

Two shapes: the incident message (what broke, why, the recent deploy, the suggested fix,
the approval link) and the Dissent Alert (two theories when the council disagrees).
Confidence gates what the message *shows* — below the threshold the cause and fix are
withheld as uncertain — never whether it is sent.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from alertengine.commits import FlaggedCommit
from alertengine.diagnose.base import Diagnosis
from alertengine.diagnose.council import CouncilVerdict

DEFAULT_MIN_CONFIDENCE = 0.6
FOOTER = "Nothing will run without your approval."
RISKY_LINE = "⚠️ This commit touched database/query files"

#: Telegram limits callback data to 1-64 bytes.
MAX_CALLBACK_BYTES = 64


@dataclass(frozen=True)
class Button:
    """Exactly one of ``url`` (opens a page) or ``callback_data`` (answered in-chat)."""

    label: str
    url: str = ""
    callback_data: str = ""

    def __post_init__(self) -> None:
        if bool(self.url) == bool(self.callback_data):
            raise ValueError("a button has exactly one of url or callback_data")
        if self.callback_data and not (1 <= len(self.callback_data.encode()) <= MAX_CALLBACK_BYTES):
            raise ValueError(f"callback_data must be 1-{MAX_CALLBACK_BYTES} bytes")


@dataclass(frozen=True)
class IncidentMessage:
    """What the renderer needs; ``now`` is passed in so rendering stays pure."""

    tenant_id: str
    service: str
    incident_id: str
    stage: str
    now: float
    score: float | None = None
    p95_ms: float | None = None
    error_rate: float | None = None
    diagnosis: Diagnosis | None = None
    verdict: CouncilVerdict | None = None
    commits: Sequence[FlaggedCommit] = ()
    approve_url: str = ""
    #: In-chat approval (Telegram), e.g. ``approve:<token-id>``; empty: link only.
    approve_callback: str = ""
    #: In-chat acknowledge ("I'm on it"), e.g. ``ack:<token-id>``; empty: no such button.
    ack_callback: str = ""
    #: The acknowledge page (``/action/ack?token=…``) for channels without callbacks.
    ack_url: str = ""
    expires_at: float | None = None
    #: The recovery action approval would run (the tenant's webhook action).
    action: str = ""
    #: The Alertmanager alerts of the incident (ledger data: fingerprint, status, alertname,
    #: startsAt/endsAt in epoch seconds, generatorURL, labels, annotations).
    alerts: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class RenderedMessage:
    tenant_id: str
    incident_id: str
    kind: Literal["incident", "dissent", "notice"]
    title: str
    #: Plain text (WhatsApp, SMS-like channels, fallbacks).
    text: str
    #: The same content as Telegram-style HTML (``<b>``, ``<i>``, ``<a>``), escaped.
    html: str
    approve_url: str = ""
    buttons: tuple[Button, ...] = field(default=())
    #: The approval link's id (jti) this message carries, for channels whose buttons name it
    #: (WhatsApp quick replies, a voice call's keypad); empty for notices.
    ref: str = ""
    #: A few words for a voice call or a template variable ("checkout degraded").
    summary: str = ""


def notice(tenant_id: str, incident_id: str, text: str) -> RenderedMessage:
    """A plain follow-up ("Alice is on it"): no link, no button."""
    return RenderedMessage(
        tenant_id, incident_id, "notice", text, text, html.escape(text), summary=text
    )


def _secs(ms: float) -> str:
    return f"{ms / 1000:.1f}s" if ms >= 1000 else f"{ms:.0f}ms"


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _ago(seconds: float) -> str:
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 1:
        return "just now"
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    return f"{minutes // 60} hours ago"


def _headline(m: IncidentMessage) -> str:
    parts = [
        f"Health score: {m.score:.0f}/100" if m.score is not None else "Health score: n/a",
        f"P95: {_secs(m.p95_ms)}" if m.p95_ms is not None else "P95: n/a",
        f"Errors: {_pct(m.error_rate)}" if m.error_rate is not None else "Errors: n/a",
    ]
    return " | ".join(parts)


class _Doc:
    """Builds the plain and the HTML text side by side, so they never drift apart."""

    def __init__(self) -> None:
        self.plain: list[str] = []
        self.html: list[str] = []

    def line(self, text: str = "", *, bold: bool = False, italic: bool = False) -> None:
        self.plain.append(text)
        h = html.escape(text, quote=False)
        if bold and h:
            h = f"<b>{h}</b>"
        if italic and h:
            h = f"<i>{h}</i>"
        self.html.append(h)

    def link(self, label: str, url: str) -> None:
        self.plain.append(f"{label}: {url}")
        self.html.append(f'<a href="{html.escape(url, quote=True)}">{html.escape(label)}</a>')


MAX_ALERTS_SHOWN = 5
MAX_ANNOTATION_CHARS = 300
#: Labels every alert has or that the lines above already show.
_QUIET_LABELS = frozenset({"alertname"})


def _utc(ts: Any) -> str:
    if not isinstance(ts, (int, float)):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _clip(text: str, limit: int = MAX_ANNOTATION_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _web(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def _alerts(doc: _Doc, m: IncidentMessage) -> None:
    """What Alertmanager said: each alert's times, summary, description, runbook and source."""
    if not m.alerts:
        return
    ordered = sorted(m.alerts, key=lambda a: (a.get("status") != "firing", str(a.get("alertname"))))
    firing = sum(1 for a in ordered if a.get("status") == "firing")
    doc.line()
    doc.line(f"Alertmanager: {firing} of {len(ordered)} alert(s) firing", bold=True)
    for a in ordered[:MAX_ALERTS_SHOWN]:
        status = str(a.get("status", "?"))
        when = f"since {_utc(a.get('startsAt'))}"
        if status != "firing":
            ended = a.get("endsAt")
            when = f"(fired from {_utc(a.get('startsAt'))}" + (
                f" to {_utc(ended)})" if isinstance(ended, (int, float)) else ")"
            )
        mark = "🔥" if status == "firing" else "✅"
        doc.line(f"{mark} {a.get('alertname', 'alert')} — {status} {when}")
        notes = a.get("annotations") or {}
        for key in ("summary", "description"):
            if notes.get(key):
                doc.line(_clip(str(notes[key])))
        for key, label in (("runbook_url", "Runbook"), ("generatorURL", "Source")):
            url = str(notes.get(key, "") if key == "runbook_url" else a.get(key, ""))
            if url and _web(url):
                doc.link(label, url)
            elif url:
                doc.line(f"{label}: {_clip(url)}")
        labels = a.get("labels") or {}
        shown = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in _QUIET_LABELS]
        if shown:
            doc.line(_clip("Labels: " + ", ".join(shown)))
        doc.line(f"Fingerprint: {a.get('fingerprint', '?')}")
    if len(ordered) > MAX_ALERTS_SHOWN:
        doc.line(f"(+{len(ordered) - MAX_ALERTS_SHOWN} more in the incident)")


def _commits(doc: _Doc, m: IncidentMessage, limit: int = 3) -> None:
    if not m.commits:
        return
    shown = sorted(m.commits, key=lambda f: f.commit.timestamp, reverse=True)[:limit]
    doc.line()
    doc.line("Recent deployment:" if len(shown) == 1 else "Recent deployments:", bold=True)
    for f in shown:
        c = f.commit
        doc.line(f"{_ago(m.now - c.timestamp)} — {c.short_sha}")
        doc.line(f'"{c.title}" ({c.author})')
        if f.risky:
            doc.line(RISKY_LINE)
    if len(m.commits) > limit:
        doc.line(f"(+{len(m.commits) - limit} earlier)")


def _approval(doc: _Doc, m: IncidentMessage) -> None:
    doc.line()
    if m.action:
        doc.line(f"Approving runs: {m.action}")
    if m.approve_url:
        expiry = ""
        if m.expires_at is not None:
            minutes = max(0, round((m.expires_at - m.now) / 60))
            expiry = f" (expires in {minutes} min)"
        doc.link(f"Approve fix{expiry}", m.approve_url)
    if m.ack_url:
        doc.link("I'm on it (acknowledge, approves nothing)", m.ack_url)
    doc.line(FOOTER, bold=True)


def _approve_buttons(m: IncidentMessage) -> list[Button]:
    buttons: list[Button] = []
    if m.approve_url:
        buttons.append(Button("✅ Approve fix", url=m.approve_url))
    if m.approve_callback:
        buttons.append(Button("✅ Approve here", callback_data=m.approve_callback))
    if m.ack_callback:
        buttons.append(Button("👀 I'm on it", callback_data=m.ack_callback))
    elif m.ack_url:
        buttons.append(Button("👀 I'm on it", url=m.ack_url))
    return buttons


def _title(m: IncidentMessage, suffix: str = "") -> str:
    names = sorted(
        {str(a.get("alertname", "alert")) for a in m.alerts if a.get("status") == "firing"}
    )
    if names:
        return f"🚨 {m.service}: {', '.join(names)} firing{suffix}"
    return f"🚨 {m.service} degraded{suffix}"


def _numbers(doc: _Doc, m: IncidentMessage) -> None:
    # Alertmanager sends no numbers: a line of three n/a would only be noise.
    if m.alerts and m.score is None and m.p95_ms is None and m.error_rate is None:
        return
    doc.line(_headline(m))


def _incident(m: IncidentMessage, min_confidence: float) -> RenderedMessage:
    title = _title(m)
    d = m.verdict.combined if m.verdict is not None else m.diagnosis
    doc = _Doc()
    doc.line(title, bold=True)
    _numbers(doc, m)
    _alerts(doc, m)
    if m.verdict is not None and m.verdict.agree:
        doc.line()
        doc.line("Both models agree.", italic=True)
    doc.line()
    doc.line("Likely cause:", bold=True)
    confident = d is not None and d.ok and d.confidence >= min_confidence
    if d is None or not d.ok:
        doc.line("Diagnosis unavailable: decide from the numbers above.")
    elif not confident:
        doc.line(
            f"Uncertain — confidence {_pct(d.confidence)} is below {_pct(min_confidence)}, "
            "so no cause is suggested. Check the service before approving."
        )
    else:
        doc.line(d.cause)
    _commits(doc, m)
    if d is not None and confident and d.suggested_action:
        doc.line()
        doc.line("Suggested fix:", bold=True)
        doc.line(d.suggested_action)
    if d is not None and d.ok:
        doc.line()
        doc.line(f"Confidence: {_pct(d.confidence)}")
    _approval(doc, m)
    return RenderedMessage(
        tenant_id=m.tenant_id,
        incident_id=m.incident_id,
        kind="incident",
        title=title,
        text="\n".join(doc.plain),
        html="\n".join(doc.html),
        approve_url=m.approve_url,
        buttons=tuple(_approve_buttons(m)),
    )


def _theory(label: str, d: Diagnosis) -> str:
    return (
        f"Theory {label} ({d.category.replace('_', ' ').title()}): {d.cause} ({_pct(d.confidence)})"
    )


def trust_callback(incident_id: str, theory: Literal["A", "B"]) -> str:
    """Callback data of the "Trust Theory A/B" buttons (kept within Telegram's 64 bytes)."""
    return f"trust:{theory}:{incident_id}"[:MAX_CALLBACK_BYTES]


def _dissent(m: IncidentMessage, v: CouncilVerdict) -> RenderedMessage:
    title = f"⚠️ {m.service} degraded — Models Disagree"
    doc = _Doc()
    doc.line(title, bold=True)
    _numbers(doc, m)
    _alerts(doc, m)
    doc.line()
    for label, d in (("A", v.a), ("B", v.b)):
        doc.line(_theory(label, d))
        if d.suggested_action:
            doc.line(f"  Suggested: {d.suggested_action}")
    doc.line()
    doc.line(f"Check: {v.what_to_check}")
    _commits(doc, m)
    doc.line()
    doc.line("👉 Trust Theory A  👉 Trust Theory B")
    _approval(doc, m)
    buttons = [
        Button("👉 Trust Theory A", callback_data=trust_callback(m.incident_id, "A")),
        Button("👉 Trust Theory B", callback_data=trust_callback(m.incident_id, "B")),
        *_approve_buttons(m),
    ]
    return RenderedMessage(
        tenant_id=m.tenant_id,
        incident_id=m.incident_id,
        kind="dissent",
        title=title,
        text="\n".join(doc.plain),
        html="\n".join(doc.html),
        approve_url=m.approve_url,
        buttons=tuple(buttons),
    )


def render(m: IncidentMessage, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> RenderedMessage:
    """The message for ``m``: a Dissent Alert when the council disagrees, else the incident."""
    if not 0.0 <= min_confidence <= 1.0:
        raise ValueError("min_confidence must be within 0..1")
    if m.verdict is not None and m.verdict.dissent:
        return _dissent(m, m.verdict)
    return _incident(m, min_confidence)
