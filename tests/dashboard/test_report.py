"""The auditor report: approver, policy version, refusals, executions, verification."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from alertengine.engine import Change
from alertengine.incidents import Stage
from alertengine.ledger.audit_report import build_report, parse_when, render_html, report_command
from tests.dashboard.helpers import authorized_incident, make_runtime

T0 = 1_700_000_000.0


@pytest.fixture
async def rt():
    rt = await make_runtime()
    yield rt
    await rt.drain()
    await rt.http.aclose()


async def small_ledger(rt) -> str:
    iid = await authorized_incident(rt)
    # A stranger's attempt on the incident and a used link: both refused and ledgered.
    await rt.engine.record(
        "acme", iid, kind="refused", actor="tenant:globex", decision="forbidden",
        reason="tenant 'globex' may not access tenant 'acme''s resources",
    )  # fmt: skip
    bad = await rt.authorizer.confirm("not-a-token")
    assert not bad.ok
    return iid


async def test_report_lists_approver_policy_refusals_and_verifies(rt):
    iid = await small_ledger(rt)
    report = await build_report(rt.ledger, "acme", T0 - 10, rt.clock.now() + 10, now=T0)
    policy_version = rt.orch.policy_for("acme").version
    assert [i.incident_id for i in report.incidents] == [iid]
    assert report.incidents[0].authorized_by == ("person:web-alice",)
    [auth] = report.authorizations
    assert auth.approvers == ("person:web-alice",) and auth.policy_version == policy_version
    assert any(x.actor == "tenant:globex" for x in report.refusals)
    assert report.verified and report.head is not None
    html = render_html(report)
    assert "Ledger verification: OK" in html and report.head.hash in html
    assert "person:web-alice" in html and policy_version in html
    assert f"Refused attempts ({len(report.refusals)})" in html
    assert "tenant:globex" in html


async def test_report_says_who_authorized_which_action_when_under_which_policy():
    """ "X authorized Y at Z under W" can be read off the report, Y included."""
    from alertengine.clock import VirtualClock
    from alertengine.ledger.audit_report import _utc
    from alertengine.ledger.memory import MemoryLedgerStore
    from alertengine.orchestrator.config import parse_config
    from alertengine.orchestrator.runtime import build_runtime, sync_tenants
    from alertengine.orchestrator.settings import Settings
    from alertengine.stores import MemoryStateStore
    from tests.dashboard.helpers import CONFIG

    config = {
        **CONFIG,
        "targets": [
            {"tenant": "acme", "service": "checkout", "action": "restart checkout workers"},
            {"tenant": "globex", "service": "billing"},
        ],
    }
    clock = VirtualClock()
    rt = await build_runtime(
        parse_config(config),
        ledger=MemoryLedgerStore(b"x" * 32),
        store=MemoryStateStore(clock),
        settings=Settings.from_env({"ALERT_SECRET": "s" * 40}),
        clock=clock,
    )
    await sync_tenants(rt)
    try:
        iid = await authorized_incident(rt)
        report = await build_report(rt.ledger, "acme", T0 - 10, rt.clock.now() + 10, now=T0)
    finally:
        await rt.drain()
        await rt.http.aclose()
    [auth] = report.authorizations
    assert auth.action == "restart checkout workers"
    assert report.incidents[0].action == "restart checkout workers"
    version = rt.orch.policy_for("acme").version
    sentence = (
        f"person:web-alice authorized 'restart checkout workers' on {iid} (checkout) at "
        f"{_utc(auth.at)} UTC under policy {version}"
    )
    assert auth.statement == sentence
    html = render_html(report)
    assert sentence.replace("'", "&#39;") in html
    assert '<td class="action"><strong>restart checkout workers</strong></td>' in html


async def test_period_filters_and_empty_period(rt):
    await small_ledger(rt)
    report = await build_report(rt.ledger, "acme", T0 - 1000, T0 - 500, now=T0)
    assert report.incidents == [] and report.refusals == [] and report.entries_in_period == 0
    assert report.verified  # the whole chain is verified whatever the period
    assert "No incident activity" in render_html(report)
    with pytest.raises(ValueError):
        await build_report(rt.ledger, "acme", T0, T0)


async def test_tampered_ledger_shows_the_failure(rt):
    await small_ledger(rt)
    chain = rt.ledger._raw_chain("acme")
    chain[2] = dataclasses.replace(chain[2], actor="engineer:web:mallory")
    report = await build_report(rt.ledger, "acme", T0 - 10, rt.clock.now() + 10, now=T0)
    assert not report.verified and report.verify is not None
    assert report.verify.first_bad_seq == 3
    html = render_html(report)
    assert "Ledger verification: FAILED" in html
    assert '<strong id="first-bad-seq">3</strong>' in html


async def test_executions_are_listed():
    rt = await make_runtime()
    iid = await authorized_incident(rt)
    # An execution attempt and its outcome, as the executor ledgers them.

    await rt.engine.record(
        "acme", iid, kind="execution", actor="orchestrator", decision="succeeded",
        reason="attempt 1: HTTP 200", data={"attempt": 1},
    )  # fmt: skip
    await rt.engine.transition(
        "acme", iid, Change(Stage.EXECUTED, actor="orchestrator", reason="webhook HTTP 200",
                            decision="executed"),
    )  # fmt: skip
    report = await build_report(rt.ledger, "acme", T0, rt.clock.now() + 1, now=T0)
    outcomes = [(x.outcome, x.final) for x in report.executions]
    assert ("succeeded", False) in outcomes and ("EXECUTED", True) in outcomes
    assert "1 outcomes" in render_html(report)
    await rt.drain()
    await rt.http.aclose()


def test_parse_when():
    assert parse_when("1700000000") == 1_700_000_000.0
    assert parse_when("2023-11-14") == 1699920000.0
    assert parse_when("2023-11-14T22:13:20Z") == 1_700_000_000.0
    assert parse_when("2023-11-14T23:13:20+01:00") == 1_700_000_000.0
    with pytest.raises(ValueError):
        parse_when("yesterday")


def test_report_command_arguments(tmp_path: Path, monkeypatch):
    app = typer.Typer()
    app.command()(report_command)
    runner = CliRunner()
    r = runner.invoke(app, ["--tenant", "acme", "--since", "x", "--until", "1"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["--tenant", "acme", "--since", "2", "--until", "1"])
    assert r.exit_code == 2
    monkeypatch.delenv("ALERTENGINE_STORE_URL", raising=False)
    r = runner.invoke(app, ["--tenant", "acme", "--since", "1", "--until", "2"])
    assert r.exit_code == 2


def test_report_command_on_sqlite(tmp_path: Path, monkeypatch):
    import asyncio

    from alertengine.ledger import EntryDraft
    from alertengine.ledger.sqlite import SqliteLedgerStore

    key = b"k" * 32
    db = tmp_path / "ae.db"

    async def seed() -> None:
        led = SqliteLedgerStore(db, key=key)
        await led.append(
            "acme",
            [EntryDraft("acme", "refused", "tenant:globex", T0 + 1, reason="no", decision="x")],
        )
        await led.close()

    asyncio.run(seed())
    monkeypatch.setenv("ALERTENGINE_LEDGER_KEY", key.decode())
    app = typer.Typer()
    app.command()(report_command)
    out = tmp_path / "r.html"
    r = CliRunner().invoke(
        app,
        ["--tenant", "acme", "--since", str(T0), "--until", str(T0 + 60), "--out", str(out),
         "--store-url", f"sqlite:///{db}"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert "Ledger verification: OK" in html and "Refused attempts (1)" in html
