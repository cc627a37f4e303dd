"""The auditor's report: one tenant, one period, one self-contained HTML page.

``build_report`` reads the tenant's ledger (never anything else: state is what the ledger
says) and collects the incidents touched in ``[since, until)``, who authorized what under
which policy version, every refused attempt, every execution attempt and outcome, and the
verification of the tenant's *whole* chain against its signed head. ``render_html`` turns it
into a printable page (inline CSS, no script, everything escaped). ``report_command`` is the
``alertengine ledger report`` command.

The report also balances the books (:mod:`alertengine.ledger.reconcile`) and carries the
tenant's signed checkpoint with the public key that verifies it. ``render_pdf`` writes the
same content as a PDF with ReportLab (no browser at run time): the auditor's one-pager.
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
from alertengine.ledger.checkpoint import NoteSigner
from alertengine.ledger.reconcile import ReceiptRecord, Reconciliation


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
    #: The books balanced (:mod:`alertengine.ledger.reconcile`); None: the store has no tree.
    reconciliation: Reconciliation | None = None
    #: The tenant's current tree head as a signed C2SP checkpoint, and the key to verify it.
    checkpoint: str = ""
    public_key: str = ""
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
    signer: NoteSigner | None = None,
    receipts: Sequence[ReceiptRecord] = (),
) -> Report:
    """The report of ``tenant_id`` for entries with ``since <= timestamp < until``.

    With a ``signer`` (the log's checkpoint key) the report carries the signed checkpoint;
    ``receipts`` (the receivers' own) join the ledgered ones in the reconciliation.
    """
    if until <= since:
        raise ValueError("until must be after since")
    reconciliation, checkpoint, public_key = await _books(ledger, tenant_id, signer, receipts)
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
            _authorized_by(s),
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
        reconciliation=reconciliation,
        checkpoint=checkpoint,
        public_key=public_key,
        oncall=[
            OnCallEvent(e.timestamp, e.seq, e.kind, e.decision, e.actor, e.incident_id, e.reason)
            for e in in_period
            if e.kind in ONCALL_KINDS
        ],
    )


async def _books(
    ledger: LedgerStore,
    tenant_id: str,
    signer: NoteSigner | None,
    receipts: Sequence[ReceiptRecord],
) -> tuple[Reconciliation | None, str, str]:
    """The tenant's reconciliation, signed checkpoint and public key (where possible)."""
    from alertengine.ledger.base import TreeStore
    from alertengine.ledger.reconcile import reconcile
    from alertengine.ledger.tlog import ConsistencyProof, TransparencyLog

    if not isinstance(ledger, TreeStore):
        return None, "", ""
    log = TransparencyLog(ledger, signer or NoteSigner.generate("unsigned"))
    current = await log.tree_head(tenant_id)

    async def consistency(a: int, b: int) -> ConsistencyProof:
        return await log.consistency_proof(tenant_id, a, b)

    entries = [e async for e in ledger.scan(tenant_id)]
    books = await reconcile(tenant_id, entries, current, consistency, receipts=receipts)
    if signer is None:
        return books, "", ""
    return books, await log.checkpoint(tenant_id), signer.verifier.vkey


def _authorized_by(s: IncidentState) -> tuple[str, ...]:
    """Every distinct approver of the incident's authorization (a quorum is several), or
    nobody when it was never authorized."""
    authorizers = [h.actor for h in s.history if h.stage is Stage.AUTHORIZED]
    if not authorizers:
        return ()
    return tuple(dict.fromkeys([*s.approvers, *authorizers]))


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

<h2>Reconciliation</h2>
<section id="reconciliation" class="verdict {{ 'ok' if r.reconciliation and
  r.reconciliation.balanced else 'bad' }}">
  <strong class="{{ 'ok' if r.reconciliation and r.reconciliation.balanced else 'bad' }}">{{
  reconciliation_sentence(r) }}</strong>
{% if r.reconciliation and r.reconciliation.mismatches %}<ul id="mismatches">
{% for m in r.reconciliation.mismatches %}<li>{{ m.line() }}</li>
{% endfor %}</ul>{% endif %}
</section>

<h2>Checkpoint</h2>
{% if r.checkpoint %}<pre id="checkpoint">{{ r.checkpoint }}</pre>
<dl><dt>Public key</dt><dd><code id="public-key">{{ r.public_key }}</code></dd></dl>
{% endif %}<p id="how-to-verify">{{ verify_instructions(r) }}</p>
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


def verification_sentence(r: Report) -> str:
    v = r.verify
    if v is not None and v.ok:
        return (
            f"Ledger verification: OK. {v.count} entries, every hash and link checked "
            "against the signed head."
        )
    where = "" if v is None else f" First bad entry seq {v.first_bad_seq}: {v.problem}"
    return f"Ledger verification: FAILED.{where}"


def reconciliation_sentence(r: Report) -> str:
    b = r.reconciliation
    if b is None:
        return "Reconciliation: not available (this store keeps no Merkle tree)."
    counts = (
        f"{b.authorizations} authorization(s), {b.executions} execution(s), "
        f"{b.receipts} receipt(s), tree size {b.tree_size}"
    )
    if b.balanced:
        return (
            f"Reconciliation: BALANCED. Every execution has its authorization quorum and "
            f"exactly one receipt; {counts}."
        )
    return f"Reconciliation: {len(b.mismatches)} MISMATCH(ES); {counts}."


def verify_instructions(r: Report) -> str:
    if not r.checkpoint:
        return (
            "No checkpoint key was available when this report was made: print the signed "
            "checkpoint with `alertengine ledger checkpoint --tenant "
            f"{r.tenant_id}` and the key with `alertengine ledger public-key`."
        )
    return (
        "To verify: save the checkpoint above as checkpoint.txt. It is a C2SP signed note: "
        "any signed-note verifier checks its Ed25519 signature with the public key alone. "
        f"To check that an entry is in it, run `alertengine ledger prove --tenant "
        f"{r.tenant_id} --seq N > proof.json`, then `alertengine ledger check-proof "
        "proof.json --public-key KEY --checkpoint checkpoint.txt` (KEY is the public key "
        "above). A witness's older checkpoint is checked the same way with "
        "`ledger verify --witness FILE`."
    )


_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_env.filters["utc"] = _utc
_env.globals.update(
    reconciliation_sentence=reconciliation_sentence, verify_instructions=verify_instructions
)


def render_html(report: Report) -> str:
    """One self-contained, printable HTML page (inline CSS, no script, all text escaped)."""
    return _env.from_string(_TEMPLATE).render(r=report)


# --- PDF ------------------------------------------------------------------------------------


def render_pdf(report: Report) -> bytes:
    """The auditor's one-pager as PDF bytes (ReportLab; the same sentences as the HTML)."""
    import io
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        KeepTogether,
        Paragraph,
        Preformatted,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=8.5, leading=10.5)
    small = ParagraphStyle("small", parent=body, fontSize=7.5, leading=9)
    h1 = ParagraphStyle("h1", parent=styles["Heading1"], fontSize=14, spaceAfter=2)
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], fontSize=10, spaceBefore=6, spaceAfter=2)
    ok_colour, bad_colour = colors.HexColor("#1a7f37"), colors.HexColor("#cf222e")
    mono = ParagraphStyle("mono", parent=body, fontName="Courier", fontSize=7, leading=8.5)

    def p(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(text), style)

    def verdict(text: str, good: bool) -> Paragraph:
        colour = ok_colour if good else bad_colour
        return Paragraph(f'<font color="{colour.hexval()}"><b>{escape(text)}</b></font>', body)

    r = report
    story: list[Any] = [
        Paragraph(f"Audit report: {escape(r.tenant_id)}", h1),
        p(
            f"Period {_utc(r.since)} to {_utc(r.until)} UTC (end exclusive). Generated "
            f"{_utc(r.generated_at)} UTC. {r.entries_in_period} ledger entries in the period."
        ),
        Spacer(1, 2 * mm),
        verdict(verification_sentence(r), r.verified),
        p(
            f"Head seq {r.head.seq if r.head else 0}, head hash "
            f"{r.head.hash if r.head else '(empty)'}. Policy versions: "
            f"{', '.join(r.policy_versions) or 'none'}.",
            small,
        ),
        Paragraph(f"Authorizations ({len(r.authorizations)})", h2),
    ]
    if r.authorizations:
        story += [p(f"{i}. {a.statement}.") for i, a in enumerate(r.authorizations, 1)]
    else:
        story.append(p("Nothing was authorized in this period."))
    story.append(Paragraph(f"Incidents ({len(r.incidents)})", h2))
    if r.incidents:
        rows = [["Incident", "Service", "Stage now", "Opened (UTC)", "Action", "Authorized by",
                 "Policy"]]  # fmt: skip
        rows += [
            [
                Paragraph(escape(i.incident_id), small),
                Paragraph(escape(i.service), small),
                i.stage,
                _utc(i.opened_at),
                Paragraph(escape(i.action), small),
                Paragraph(escape(", ".join(i.authorized_by)), small),
                Paragraph(escape(i.policy_version), small),
            ]
            for i in r.incidents
        ]
        table = Table(rows, repeatRows=1, colWidths=[38*mm, 18*mm, 20*mm, 27*mm, 22*mm,
                                                      35*mm, 20*mm])  # fmt: skip
        table.setStyle(
            TableStyle(
                [
                    ("FONTSIZE", (0, 0), (-1, -1), 7),
                    ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                    ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d7de")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.append(table)
    else:
        story.append(p("No incident activity in this period."))
    finals = [x for x in r.executions if x.final]
    story += [
        Paragraph(f"Executions ({len(finals)} outcomes)", h2),
        *[
            p(f"{_utc(x.at)} UTC {x.incident_id}: {x.outcome} (seq {x.seq}). {x.reason}", small)
            for x in finals
        ],
        p(f"Refused attempts in the period: {len(r.refusals)}.", small),
        Paragraph("Reconciliation", h2),
        verdict(
            reconciliation_sentence(r),
            r.reconciliation is not None and r.reconciliation.balanced,
        ),
    ]
    if r.reconciliation is not None:
        story += [p(m.line(), small) for m in r.reconciliation.mismatches]
    checkpoint_block: list[Any] = [Paragraph("Checkpoint", h2)]
    if r.checkpoint:
        checkpoint_block += [
            Preformatted(r.checkpoint.rstrip("\n"), mono),
            p(f"Public key: {r.public_key}", small),
        ]
    checkpoint_block.append(p(verify_instructions(r), small))
    story.append(KeepTogether(checkpoint_block))

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=14 * mm,
        rightMargin=14 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=f"Audit report: {r.tenant_id}",
        author="AlertEngine",
        subject=f"{_utc(r.since)} to {_utc(r.until)} UTC",
        invariant=True,  # the same report gives the same bytes
    )
    doc.build(story)
    return out.getvalue()


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
    ledger: LedgerStore,
    tenant: str,
    since: float,
    until: float,
    out: Path | None,
    *,
    pdf: Path | None = None,
    signer: NoteSigner | None = None,
    receipts: Sequence[ReceiptRecord] = (),
) -> Report:
    """Build the report; write its HTML to ``out`` (or print it when neither ``out`` nor
    ``pdf`` is given) and its PDF to ``pdf``."""
    report = await build_report(ledger, tenant, since, until, signer=signer, receipts=receipts)
    html = render_html(report)
    if out is None and pdf is None:
        typer.echo(html)
    elif out is not None:
        await asyncio.to_thread(out.write_text, html, encoding="utf-8")
    if pdf is not None:
        await asyncio.to_thread(pdf.write_bytes, render_pdf(report))
    return report


def _checkpoint_signer(store_url: str) -> NoteSigner | None:
    """The log's checkpoint key if this machine has it (the report then carries the
    signed checkpoint); never created here."""
    from alertengine.ledger.checkpoint import CheckpointError
    from alertengine.ledger.keys import load_signer, state_dir_for

    try:
        return load_signer(state_dir=state_dir_for(store_url), create=False)
    except CheckpointError:
        return None


def report_command(
    tenant: str = typer.Option(..., "--tenant", "-t", help="tenant id"),
    since: str = typer.Option(..., "--since", help="start (inclusive): ISO date/time or epoch s"),
    until: str = typer.Option(..., "--until", help="end (exclusive): ISO date/time or epoch s"),
    out: Path | None = typer.Option(None, "--out", "-o", help="HTML file (default: stdout)"),
    pdf: Path | None = typer.Option(None, "--pdf", help="also (or only) write the PDF here"),
    receipts_files: list[Path] = typer.Option(
        [], "--receipts", help="a receiver's receipts for the reconciliation (repeatable)"
    ),
    store_url: str = typer.Option(
        "", "--store-url", envvar="ALERTENGINE_STORE_URL", help="e.g. sqlite:///alertengine.db"
    ),
) -> None:
    """Write a one-page HTML audit report of a tenant's ledger for a period.

    Exits 2 on bad arguments, 1 when the ledger fails verification (the report says where;
    it also shows whether the books balance: ``ledger reconcile`` exits 1 on that).
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

    from alertengine.ledger.reconcile import parse_receipts_file

    try:
        records = [
            r
            for f in receipts_files
            for r in parse_receipts_file(f.read_text(encoding="utf-8"), str(f))
        ]
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"--receipts: {exc}") from None
    signer = _checkpoint_signer(store_url)

    async def run() -> Report:
        ledger, closers = await _open_ledger(store_url, key)
        try:
            return await export_report(
                ledger, tenant, start, end, out, pdf=pdf, signer=signer, receipts=records
            )
        finally:
            for c in closers:
                await c.close()

    report = asyncio.run(run())
    if out is not None or pdf is not None:
        verdict = "verification OK" if report.verified else "VERIFICATION FAILED"
        books = report.reconciliation
        if books is not None:
            verdict += "; books balanced" if books.balanced else "; BOOKS DO NOT BALANCE"
        typer.echo(
            f"wrote {', '.join(str(f) for f in (out, pdf) if f)}: "
            f"{len(report.incidents)} incidents, "
            f"{len(report.authorizations)} authorizations, {len(report.refusals)} refused; "
            f"{verdict}",
            err=True,
        )
    # The books are in the report; `ledger reconcile` is the command that fails on them.
    if not report.verified:
        raise typer.Exit(1)
