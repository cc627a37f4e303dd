"""The auditor's report: one tenant, one period, one self-contained HTML page.

``build_report`` reads the tenant's ledger (never anything else: state is what the ledger
says) and collects the incidents touched in ``[since, until)``, who authorized what under
which policy version, every refused attempt, every execution attempt and outcome, and the
verification of the tenant's *whole* chain against its signed head. ``render_html`` turns it
into a printable page (inline CSS, no script, everything escaped). ``report_command`` is the
``alertengine ledger report`` command.

There is no PDF output: no PDF library is a dependency. Print the HTML to PDF from a browser
if a PDF is needed (the page has print styles).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import typer

from alertengine.incidents import IncidentState, Stage, fold
from alertengine.ledger import Checkpoint, Entry, LedgerQuery, LedgerStore, VerifyResult


@dataclass(frozen=True, slots=True)
class IncidentRow:
    incident_id: str
    service: str
    stage: str
    opened_at: float
    updated_at: float
    policy_version: str
    authorized_by: tuple[str, ...]
    action: str = ""  # the recovery action proposed (and, if authorized, approved)


@dataclass(frozen=True, slots=True)
class Authorization:
    at: float
    incident_id: str
    service: str
    approvers: tuple[str, ...]  # every distinct approval that counted, in order
    actor: str  # the approval that completed the quorum
    policy_version: str
    seq: int
    #: What was authorized: the action bound into the approval link the approver redeemed.
    action: str = ""

    @property
    def statement(self) -> str:
        """The auditor's sentence: who authorized what, when, under which policy."""
        return (
            f"{', '.join(self.approvers)} authorized {self.action or 'the recovery'!r} on "
            f"{self.incident_id} ({self.service}) at {_utc(self.at)} UTC under policy "
            f"{self.policy_version}"
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    at: float
    seq: int
    incident_id: str | None
    actor: str
    stage: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Execution:
    at: float
    seq: int
    incident_id: str
    outcome: str  # succeeded | attempt_failed | executed | dead_lettered | …
    reason: str
    final: bool  # a stage change (EXECUTED / WEBHOOK_FAILED), not an attempt


@dataclass(frozen=True, slots=True)
class OnCallEvent:
    """A schedule or silence change, or a silence holding (or releasing) an incident."""

    at: float
    seq: int
    kind: str  # schedule | silence | silenced
    decision: str
    actor: str
    incident_id: str | None
    reason: str


#: Ledger kinds of the on-call section (docs/oncall.md).
ONCALL_KINDS = ("schedule", "silence", "silenced")


@dataclass(frozen=True)
class Report:
    tenant_id: str
    since: float
    until: float
    generated_at: float
    entries_in_period: int
    incidents: list[IncidentRow] = field(default_factory=list)
    authorizations: list[Authorization] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    policy_versions: list[str] = field(default_factory=list)
    verify: VerifyResult | None = None
    head: Checkpoint | None = None
    oncall: list[OnCallEvent] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.verify is not None and self.verify.ok


async def build_report(
    ledger: LedgerStore,
    tenant_id: str,
    since: float,
    until: float,
    *,
    now: float | None = None,
) -> Report:
    """The report of ``tenant_id`` for entries with ``since <= timestamp < until``."""
    if until <= since:
        raise ValueError("until must be after since")
    # State needs every entry up to the end of the period (an incident may open before it).
    upto = await ledger.read(LedgerQuery(tenant_id=tenant_id, until=until))
    in_period = [e for e in upto if e.timestamp >= since]
    states = {s.incident_id: s for s in fold(upto).values()}
    touched = {e.incident_id for e in in_period if e.incident_id is not None}

    incidents = [
        IncidentRow(
            s.incident_id,
            s.service,
            s.stage.value,
            s.opened_at,
            s.updated_at,
            s.policy_version,
            tuple(h.actor for h in s.history if h.stage is Stage.AUTHORIZED),
            s.action,
        )
        for s in sorted(states.values(), key=lambda s: s.opened_at)
        if s.incident_id in touched
    ]
    return Report(
        tenant_id=tenant_id,
        since=since,
        until=until,
        generated_at=now if now is not None else datetime.now(timezone.utc).timestamp(),
        entries_in_period=len(in_period),
        incidents=incidents,
        authorizations=_authorizations(upto, since, states),
        refusals=[
            Refusal(e.timestamp, e.seq, e.incident_id, e.actor, e.stage, e.reason)
            for e in in_period
            if e.kind == "refused"
        ],
        executions=_executions(in_period),
        policy_versions=sorted({e.policy_version for e in in_period if e.policy_version}),
        verify=await ledger.verify(tenant_id),
        head=await ledger.head(tenant_id),
        oncall=[
            OnCallEvent(e.timestamp, e.seq, e.kind, e.decision, e.actor, e.incident_id, e.reason)
            for e in in_period
            if e.kind in ONCALL_KINDS
        ],
    )


def _authorizations(
    entries: Sequence[Entry], since: float, states: dict[str, IncidentState]
) -> list[Authorization]:
    """AUTHORIZED transitions in the period, each with the approvals of its round."""
    rounds: dict[str, list[str]] = {}
    out: list[Authorization] = []
    for e in entries:
        if e.incident_id is None:
            continue
        if e.kind == "transition" and e.stage == Stage.VALIDATED.value:
            rounds[e.incident_id] = []
        elif e.kind == "approval" and e.actor not in rounds.setdefault(e.incident_id, []):
            rounds[e.incident_id].append(e.actor)
        elif e.kind == "transition" and e.stage == Stage.AUTHORIZED.value:
            approvers = rounds.get(e.incident_id) or []
            if e.actor not in approvers:
                approvers = [*approvers, e.actor]
            if e.timestamp >= since:
                s = states.get(e.incident_id)
                # The link's own claim is what the approver saw and approved; the incident's
                # proposed action is the fallback for entries written before it was recorded.
                action = str(e.data.get("action") or (s.action if s else ""))
                out.append(
                    Authorization(
                        e.timestamp,
                        e.incident_id,
                        s.service if s else "",
                        tuple(approvers),
                        e.actor,
                        e.policy_version,
                        e.seq,
                        action,
                    )
                )
    return out


def _executions(entries: Sequence[Entry]) -> list[Execution]:
    out = []
    for e in entries:
        if e.incident_id is None:
            continue
        if e.kind == "execution":
            out.append(Execution(e.timestamp, e.seq, e.incident_id, e.decision, e.reason, False))
        elif e.kind == "transition" and e.stage in (
            Stage.EXECUTED.value,
            Stage.WEBHOOK_FAILED.value,
        ):
            out.append(Execution(e.timestamp, e.seq, e.incident_id, str(e.stage), e.reason, True))
    return out


# --- HTML -----------------------------------------------------------------------------------


def _utc(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Audit report · {{ r.tenant_id }} · {{ r.since | utc }} to {{ r.until | utc }} UTC</title>
<style>
  :root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --ok:#1a7f37; --bad:#cf222e; }
  * { box-sizing:border-box; }
  body { margin:0; font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
         color:var(--fg); background:#fff; }
  main { max-width:60rem; margin:0 auto; padding:1rem; }
  h1 { font-size:1.3rem; margin:0 0 .2rem; }
  h2 { font-size:.95rem; margin:1.1rem 0 .4rem; text-transform:uppercase;
       letter-spacing:.04em; color:var(--muted); }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:.2rem .4rem; border-bottom:1px solid var(--line);
           vertical-align:top; }
  th { color:var(--muted); font-weight:600; }
  code { font-size:.9em; overflow-wrap:anywhere; }
  .ok { color:var(--ok); } .bad { color:var(--bad); } .muted { color:var(--muted); }
  .verdict { border:2px solid var(--line); border-radius:8px; padding:.5rem .8rem; }
  .verdict.ok { border-color:var(--ok); } .verdict.bad { border-color:var(--bad); }
  dl { display:grid; grid-template-columns:max-content 1fr; gap:.1rem .8rem; margin:0; }
  dt { color:var(--muted); } dd { margin:0; overflow-wrap:anywhere; }
  @media print { main { padding:0; } h2 { break-after:avoid; } tr { break-inside:avoid; } }
</style>
</head>
<body>
<main>
<h1>Audit report: {{ r.tenant_id }}</h1>
<p class="muted">Period {{ r.since | utc }} to {{ r.until | utc }} UTC (end exclusive) ·
generated {{ r.generated_at | utc }} UTC · {{ r.entries_in_period }} ledger entries in period</p>

<section id="verification" class="verdict {{ 'ok' if r.verified else 'bad' }}">
{% if r.verify and r.verify.ok %}
  <strong class="ok">Ledger verification: OK</strong>
  — {{ r.verify.count }} entries, every hash and link checked against the signed head.
{% else %}
  <strong class="bad">Ledger verification: FAILED</strong>
  {% if r.verify %}— first bad entry seq <strong id="first-bad-seq">{{ r.verify.first_bad_seq
  if r.verify.first_bad_seq is not none else "?" }}</strong>: {{ r.verify.problem }}{% endif %}
{% endif %}
  <dl>
    <dt>Head seq</dt><dd>{{ r.head.seq if r.head else 0 }}</dd>
    <dt>Head hash</dt>
    <dd><code id="head-hash">{{ r.head.hash if r.head else "(empty)" }}</code></dd>
    <dt>Policy versions</dt><dd>{% for v in r.policy_versions %}<code>{{ v }}</code>{%
      if not loop.last %}, {% endif %}{% else %}none{% endfor %}</dd>
  </dl>
</section>

<h2>Incidents ({{ r.incidents | length }})</h2>
{% if r.incidents %}<table id="incidents">
<thead><tr><th>Incident</th><th>Service</th><th>Stage now</th><th>Opened (UTC)</th>
<th>Action</th><th>Authorized by</th><th>Policy version</th></tr></thead><tbody>
{% for i in r.incidents %}<tr><td><code>{{ i.incident_id }}</code></td><td>{{ i.service }}</td>
<td>{{ i.stage }}</td><td>{{ i.opened_at | utc }}</td><td>{{ i.action }}</td>
<td>{{ i.authorized_by | join(", ") }}</td>
<td><code>{{ i.policy_version }}</code></td></tr>
{% endfor %}</tbody></table>
{% else %}<p class="muted">No incident activity in this period.</p>{% endif %}

<h2>Authorizations ({{ r.authorizations | length }})</h2>
{% if r.authorizations %}<ol id="statements">
{% for a in r.authorizations %}<li class="statement">{{ a.statement }}.</li>
{% endfor %}</ol>
<table id="authorizations">
<thead><tr><th>Time (UTC)</th><th>Incident</th><th>Service</th><th>Action authorized</th>
<th>Approved by</th><th>Policy version</th><th>Seq</th></tr></thead><tbody>
{% for a in r.authorizations %}<tr><td>{{ a.at | utc }}</td>
<td><code>{{ a.incident_id }}</code></td>
<td>{{ a.service }}</td><td class="action"><strong>{{ a.action }}</strong></td>
<td><strong>{{ a.approvers | join(", ") }}</strong></td>
<td><code>{{ a.policy_version }}</code></td><td>{{ a.seq }}</td></tr>
{% endfor %}</tbody></table>
{% else %}<p class="muted">Nothing was authorized in this period.</p>{% endif %}

<h2>Refused attempts ({{ r.refusals | length }})</h2>
{% if r.refusals %}<table id="refusals">
<thead><tr><th>Time (UTC)</th><th>Actor</th><th>Incident</th><th>Stage</th><th>Reason</th>
<th>Seq</th></tr></thead><tbody>
{% for x in r.refusals %}<tr><td>{{ x.at | utc }}</td><td>{{ x.actor }}</td>
<td>{% if x.incident_id %}<code>{{ x.incident_id }}</code>{% endif %}</td>
<td>{{ x.stage or "" }}</td>
<td>{{ x.reason }}</td><td>{{ x.seq }}</td></tr>
{% endfor %}</tbody></table>{% else %}<p class="muted">No refused attempts.</p>{% endif %}

<h2>Executions ({{ r.executions | selectattr("final") | list | length }} outcomes,
{{ r.executions | rejectattr("final") | list | length }} attempts)</h2>
{% if r.executions %}<table id="executions">
<thead><tr><th>Time (UTC)</th><th>Incident</th><th>Outcome</th><th>Detail</th><th>Seq</th></tr>
</thead><tbody>
{% for x in r.executions %}<tr><td>{{ x.at | utc }}</td><td><code>{{ x.incident_id }}</code></td>
<td>{% if x.final %}<strong>{{ x.outcome }}</strong>{% else %}{{ x.outcome }}{% endif %}</td>
<td>{{ x.reason }}</td><td>{{ x.seq }}</td></tr>
{% endfor %}</tbody></table>{% else %}<p class="muted">No executions.</p>{% endif %}

<h2>Schedules and silences ({{ r.oncall | length }})</h2>
{% if r.oncall %}<table id="oncall">
<thead><tr><th>Time (UTC)</th><th>What</th><th>Actor</th><th>Incident</th><th>Detail</th>
<th>Seq</th></tr></thead><tbody>
{% for x in r.oncall %}<tr><td>{{ x.at | utc }}</td><td>{{ x.kind }}: {{ x.decision }}</td>
<td>{{ x.actor }}</td><td>{% if x.incident_id %}<code>{{ x.incident_id }}</code>{% endif %}</td>
<td>{{ x.reason }}</td><td>{{ x.seq }}</td></tr>
{% endfor %}</tbody></table>{% else %}<p class="muted">No schedule or silence changes, and no
incident held by a silence.</p>{% endif %}

<p class="muted">Produced from the tenant's append-only, hash-chained ledger. Re-verify with
<code>alertengine ledger verify</code>; entries are numbered per tenant from 1.</p>
</main>
</body>
</html>
"""

_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_env.filters["utc"] = _utc


def render_html(report: Report) -> str:
    """One self-contained, printable HTML page (inline CSS, no script, all text escaped)."""
    return _env.from_string(_TEMPLATE).render(r=report)


# --- the command ----------------------------------------------------------------------------


def parse_when(text: str) -> float:
    """Epoch seconds, an ISO date (midnight UTC) or an ISO datetime (UTC unless it says)."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use epoch seconds, 2024-06-01 or 2024-06-01T12:00:00Z)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


async def _open_ledger(store_url: str, ledger_key: bytes) -> tuple[LedgerStore, list[Any]]:
    """The ledger behind ``store_url`` via ``alertengine.stores.factory`` (plus what to close)."""
    try:
        factory = importlib.import_module("alertengine.stores.factory")
    except ModuleNotFoundError as exc:
        if exc.name != "alertengine.stores.factory":
            raise
        if store_url.startswith("sqlite:///"):
            from alertengine.ledger.sqlite import SqliteLedgerStore

            led = SqliteLedgerStore(store_url[len("sqlite:///") :], key=ledger_key)
            return led, [led]
        raise ValueError(f"cannot open {store_url!r}: use sqlite:///path/to/file.db") from None
    opened: Any = factory.open_stores(store_url, ledger_key=ledger_key)
    if asyncio.iscoroutine(opened):
        opened = await opened
    ledger = getattr(opened, "ledger", None)
    if ledger is None:
        ledger = opened[0]
    closers = [opened] if hasattr(opened, "close") else list(opened)
    return ledger, closers


async def export_report(
    ledger: LedgerStore, tenant: str, since: float, until: float, out: Path | None
) -> Report:
    """Build the report and write its HTML to ``out`` (or print it when ``out`` is None)."""
    report = await build_report(ledger, tenant, since, until)
    html = render_html(report)
    if out is None:
        typer.echo(html)
    else:
        await asyncio.to_thread(out.write_text, html, encoding="utf-8")
    return report


def report_command(
    tenant: str = typer.Option(..., "--tenant", "-t", help="tenant id"),
    since: str = typer.Option(..., "--since", help="start (inclusive): ISO date/time or epoch s"),
    until: str = typer.Option(..., "--until", help="end (exclusive): ISO date/time or epoch s"),
    out: Path | None = typer.Option(None, "--out", "-o", help="HTML file (default: stdout)"),
    store_url: str = typer.Option(
        "", "--store-url", envvar="ALERTENGINE_STORE_URL", help="e.g. sqlite:///alertengine.db"
    ),
) -> None:
    """Write a one-page HTML audit report of a tenant's ledger for a period.

    Exits 2 on bad arguments, 1 when the ledger fails verification (the report says where).
    """
    try:
        start, end = parse_when(since), parse_when(until)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if end <= start:
        raise typer.BadParameter("--until must be after --since")
    if not store_url:
        raise typer.BadParameter("set --store-url or ALERTENGINE_STORE_URL")
    key = os.environ.get("ALERTENGINE_LEDGER_KEY", "").encode()
    if len(key) < 32:
        raise typer.BadParameter("ALERTENGINE_LEDGER_KEY (32+ bytes) is needed to verify the head")

    async def run() -> Report:
        ledger, closers = await _open_ledger(store_url, key)
        try:
            return await export_report(ledger, tenant, start, end, out)
        finally:
            for c in closers:
                await c.close()

    report = asyncio.run(run())
    if out is not None:
        verdict = "verification OK" if report.verified else "VERIFICATION FAILED"
        typer.echo(
            f"wrote {out}: {len(report.incidents)} incidents, "
            f"{len(report.authorizations)} authorizations, {len(report.refusals)} refused; "
            f"{verdict}",
            err=True,
        )
    if not report.verified:
        raise typer.Exit(1)
