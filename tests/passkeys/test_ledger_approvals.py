"""``alertengine ledger verify --approvals``: every approval re-checked offline from the
ledger (or its export) alone; a proof moved to another approval, a key used after its
revocation or never enrolled, someone else's name on an approval, an action other than the
one approved: each fails, even in a ledger rewritten and re-sealed by someone without the
person's device."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.ledger.approvals import audit, read_export
from alertengine.ledger.chain import GENESIS_HASH, Entry, EntryDraft, seal_many
from alertengine.ledger.tools import export_entries
from alertengine.policy import Policy
from tests.authorize.harness import LEDGER_KEY, validated_incident
from tests.passkeys.softkey import SoftAuthenticator
from tests.passkeys.support import ALICE, BOB, MALLORY, build_passkey_system

runner = CliRunner()
ENV = {"ALERTENGINE_LEDGER_KEY": LEDGER_KEY.decode()}


def _scenario(tmp_path: Path, policy: Policy | None = None) -> list[Entry]:
    """Alice approves three incidents, loses her device (revoked), enrolls a new one and
    approves a fourth; Bob approves a fifth. Returns acme's entries (export order)."""

    async def go() -> list[Entry]:
        pk = await build_passkey_system("sqlite", tmp_path, policy=policy)
        try:
            alice, bob = SoftAuthenticator(counter=1), SoftAuthenticator()
            old = await pk.enroll("alice", alice)
            await pk.enroll("bob", bob)
            for service in ("checkout", "billing", "search"):
                i = await validated_incident(pk.sys, service=service)
                assert (await pk.approve(i, ALICE, alice)).authorized
            await pk.passkeys.revoke("acme", old.credential_id, actor="admin:cli")
            alice = SoftAuthenticator()
            await pk.enroll("alice", alice)
            i = await validated_incident(pk.sys, service="cart")
            assert (await pk.approve(i, ALICE, alice)).authorized
            i = await validated_incident(pk.sys, service="auth")
            assert (await pk.approve(i, BOB, bob)).authorized
            out = io.StringIO()
            await export_entries(pk.sys.ledger, out, tenants=["acme"])
            return list(read_export(io.StringIO(out.getvalue())))
        finally:
            await pk.sys.close()

    return asyncio.run(go())


def _resealed(entries: list[Entry], edit: Callable[[list[Entry]], list[Entry]]) -> list[Entry]:
    """What someone with write access to the database (not the ledger key, not a device)
    can produce: any edit, with every hash recomputed so the chain walks clean."""
    drafts = [
        EntryDraft(
            tenant_id=e.tenant_id,
            kind=e.kind,
            actor=e.actor,
            timestamp=e.timestamp,
            incident_id=e.incident_id,
            stage=e.stage,
            decision=e.decision,
            reason=e.reason,
            confidence=e.confidence,
            policy_version=e.policy_version,
            data=e.data,
        )
        for e in edit(list(entries))
    ]
    return seal_many(drafts, 0, GENESIS_HASH)


def _approvals(entries: list[Entry]) -> list[int]:
    return [n for n, e in enumerate(entries) if e.kind == "approval"]


def test_store_and_export_verify_every_approval(tmp_path: Path) -> None:
    entries = _scenario(tmp_path)
    url = f"sqlite:///{tmp_path / 'ae.db'}"
    res = runner.invoke(app, ["ledger", "verify", "--approvals", "--store-url", url], env=ENV)
    assert res.exit_code == 0, res.output
    assert "acme: 5 authorized, 5 approvals (5 proven by passkey, 0 bearer" in res.output
    assert "3 passkeys enrolled, 1 revoked" in res.output
    # The auditor's copy: an export file, no store, no key.
    export = tmp_path / "acme.jsonl"
    res = runner.invoke(
        app, ["ledger", "export", "--tenant", "acme", "--out", str(export), "--store-url", url]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["ledger", "verify", "--approvals", "--file", str(export), "--json"], env={}
    )
    assert res.exit_code == 0, res.output
    assert '"proven_by_passkey": 5' in res.output
    assert audit(entries)["acme"].ok


def test_an_edited_export_fails_its_chain(tmp_path: Path) -> None:
    entries = _scenario(tmp_path)
    export = tmp_path / "edited.jsonl"
    n = _approvals(entries)[0]
    lines = [e.to_json() for e in entries]
    lines[n] = lines[n].replace('"via":"web"', '"via":"wbe"')
    export.write_text("\n".join(lines) + "\n")
    res = runner.invoke(app, ["ledger", "verify", "--approvals", "--file", str(export)])
    assert res.exit_code == 1 and "altered" in res.output


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> list[Entry]:
    return _scenario(tmp_path_factory.mktemp("approvals"))


def test_resealed_but_unchanged_still_verifies(scenario: list[Entry]) -> None:
    assert audit(_resealed(scenario, lambda es: es))["acme"].ok  # the helper is honest


def test_a_proof_moved_to_another_approval_fails(scenario: list[Entry]) -> None:
    first, second = _approvals(scenario)[:2]

    def swap(es: list[Entry]) -> list[Entry]:
        moved = {**es[second].data, "passkey": es[first].data["passkey"]}
        es[second] = Entry.from_dict({**es[second].to_dict(), "data": moved})
        return es

    report = audit(_resealed(scenario, swap))["acme"]
    assert not report.ok and report.proven == 4
    assert "challenge" in report.failures[0][1].lower()


def test_a_key_used_after_its_revocation_fails(scenario: list[Entry]) -> None:
    def revoke_first(es: list[Entry]) -> list[Entry]:
        n = next(i for i, e in enumerate(es) if e.kind == "passkey" and e.decision == "revoked")
        revocation = es.pop(n)
        first_approval = _approvals(es)[0]
        es.insert(first_approval, revocation)
        return es

    report = audit(_resealed(scenario, revoke_first))["acme"]
    assert len(report.failures) == 3
    assert all("was revoked at seq" in why for _, why in report.failures)


def test_a_key_never_enrolled_fails(scenario: list[Entry]) -> None:
    def drop_bob(es: list[Entry]) -> list[Entry]:
        return [e for e in es if not (e.kind == "passkey" and e.data.get("person") == "bob")]

    report = audit(_resealed(scenario, drop_bob))["acme"]
    assert len(report.failures) == 1 and "never enrolled" in report.failures[0][1]


def test_an_admin_cannot_sign_as_alice_by_renaming_the_approval(scenario: list[Entry]) -> None:
    def rename(es: list[Entry]) -> list[Entry]:
        n = _approvals(es)[0]
        es[n] = Entry.from_dict({**es[n].to_dict(), "actor": MALLORY})
        return es

    report = audit(_resealed(scenario, rename))["acme"]
    assert "used for an approval by 'mallory'" in report.failures[0][1]


def test_an_authorized_action_other_than_the_approved_one_fails(scenario: list[Entry]) -> None:
    def other_action(es: list[Entry]) -> list[Entry]:
        n = next(i for i, e in enumerate(es) if e.kind == "transition" and e.stage == "AUTHORIZED")
        es[n] = Entry.from_dict(
            {**es[n].to_dict(), "data": {**es[n].data, "action": "drop database"}}
        )
        return es

    report = audit(_resealed(scenario, other_action))["acme"]
    assert "not 'drop database'" in report.failures[0][1]


def test_bearer_approvals_are_counted_and_fail_only_when_passkeys_are_required(
    tmp_path: Path,
) -> None:
    async def go() -> list[Entry]:
        pk = await build_passkey_system("memory", tmp_path, policy=Policy())
        try:
            i = await validated_incident(pk.sys)
            link = await pk.sys.authorizer.issue("acme", i, BOB)
            assert (await pk.sys.authorizer.confirm(link.token)).authorized
            return [e async for e in pk.sys.ledger.scan("acme")]
        finally:
            await pk.sys.close()

    entries = asyncio.run(go())
    report = audit(entries)["acme"]
    assert report.ok and report.bearer == 1 and report.proven == 0
    strict = audit(entries, require_passkeys=True)["acme"]
    assert not strict.ok and "no passkey proof" in strict.failures[0][1]
