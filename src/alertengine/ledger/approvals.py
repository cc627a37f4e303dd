"""``ledger verify --approvals``: re-check every approval offline, from the ledger alone.

One pass over a tenant's entries in seq order (a store, or a ``ledger export`` JSONL file):

* ``passkey/enrolled`` entries give each credential's person, COSE public key, RP ID and
  origin; ``passkey/revoked`` entries end a credential at that seq;
* each ``approval`` that carries a ``passkey`` proof is verified with py_webauthn against the
  key enrolled *earlier in the same ledger* and not revoked before it: the signature over
  authenticator data and client data, the RP ID hash, the origin, user verification, a sign
  count that only moves forward, and a challenge recomputed from the entry itself (tenant,
  incident, action, jti, policy version, person), so a proof copied onto another approval
  fails;
* each AUTHORIZED transition must follow its approvals, and their bound action must be the
  action it authorized.

An approval without a proof (a bearer link, the only kind before ``require_passkey``) is
counted, not failed, unless ``require_passkeys``: then it is a failure too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from webauthn import verify_authentication_response
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidJSONStructure

from alertengine.ledger.base import LedgerError, LedgerStore
from alertengine.ledger.chain import ChainVerifier, Checkpoint, Entry
from alertengine.passkeys.binding import approval_challenge, person_of


@dataclass
class _Key:
    person: str
    public_key: bytes
    rp_id: str
    origin: str
    enrolled_seq: int
    revoked_seq: int | None = None
    sign_count: int = 0


@dataclass
class ApprovalsReport:
    tenant_id: str
    entries: int = 0
    authorized: int = 0
    approvals: int = 0
    proven: int = 0
    bearer: int = 0
    enrolled: int = 0
    revoked: int = 0
    chain_problem: str = ""
    failures: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.chain_problem

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "tenant_id": self.tenant_id,
            "entries": self.entries,
            "authorized": self.authorized,
            "approvals": self.approvals,
            "proven_by_passkey": self.proven,
            "bearer_only": self.bearer,
            "credentials_enrolled": self.enrolled,
            "credentials_revoked": self.revoked,
            "chain_problem": self.chain_problem,
            "failures": [{"seq": s, "problem": p} for s, p in self.failures],
        }


class ApprovalAuditor:
    """Feed one tenant's entries in seq order; :attr:`report` says what held."""

    def __init__(self, tenant_id: str, *, require_passkeys: bool = False) -> None:
        self.report = ApprovalsReport(tenant_id)
        self.require_passkeys = require_passkeys
        self._chain = ChainVerifier(tenant_id)
        self._keys: dict[str, _Key] = {}
        # incident -> bound actions of the approvals since it was last authorized
        self._pending: dict[str, list[tuple[int, str | None]]] = {}

    def feed(self, e: Entry) -> None:
        r = self.report
        r.entries += 1
        if not r.chain_problem and not self._chain.feed(e):
            failure = self._chain.failure
            r.chain_problem = failure[1] if failure else "chain broken"
        if e.kind == "passkey":
            self._passkey(e)
        elif e.kind == "approval":
            self._approval(e)
        elif e.kind == "transition" and e.stage == "AUTHORIZED":
            self._authorized(e)

    def finish(self, checkpoint: Checkpoint | None = None, key: bytes | None = None) -> None:
        """With a store's signed head and the ledger key: a cut-off tail fails too."""
        result = self._chain.finish(checkpoint, key)
        if not result.ok and not self.report.chain_problem:
            self.report.chain_problem = result.problem or "chain broken"

    def _fail(self, e: Entry, why: str) -> None:
        self.report.failures.append((e.seq, f"{e.incident_id or '-'}: {why}"))

    def _passkey(self, e: Entry) -> None:
        d = e.data
        cred_id = str(d.get("credential_id", ""))
        if e.decision == "enrolled" and cred_id:
            try:
                key = base64url_to_bytes(str(d["public_key_cose"]))
            except (KeyError, ValueError):
                self._fail(e, f"enrollment of {cred_id} has no readable public key")
                return
            self._keys[cred_id] = _Key(
                person=str(d.get("person", "")),
                public_key=key,
                rp_id=str(d.get("rp_id", "")),
                origin=str(d.get("origin", "")),
                enrolled_seq=e.seq,
                sign_count=int(d.get("sign_count", 0) or 0),
            )
            self.report.enrolled += 1
        elif e.decision == "revoked" and cred_id in self._keys:
            self._keys[cred_id].revoked_seq = e.seq
            self.report.revoked += 1

    def _approval(self, e: Entry) -> None:
        r = self.report
        r.approvals += 1
        proof = e.data.get("passkey")
        incident = e.incident_id or ""
        if not isinstance(proof, dict):
            r.bearer += 1
            if self.require_passkeys:
                self._fail(e, f"approval by {e.actor} carries no passkey proof")
            self._pending.setdefault(incident, []).append((e.seq, None))
            return
        action = str(proof.get("action", ""))
        self._pending.setdefault(incident, []).append((e.seq, action))
        why = self._check(e, proof, action)
        if why:
            self._fail(e, why)
        else:
            r.proven += 1

    def _check(self, e: Entry, proof: dict[str, Any], action: str) -> str:
        cred_id = str(proof.get("credential_id", ""))
        key = self._keys.get(cred_id)
        person = person_of(e.actor)
        if key is None:
            return f"credential {cred_id[:16]}… was never enrolled before this approval"
        if key.revoked_seq is not None and key.revoked_seq < e.seq:
            return f"credential {cred_id[:16]}… was revoked at seq {key.revoked_seq}"
        if key.person != person:
            return f"credential of {key.person!r} used for an approval by {person!r}"
        challenge = approval_challenge(
            tenant=e.tenant_id,
            incident=e.incident_id or "",
            action=action,
            jti=str(e.data.get("jti", "")),
            policy_version=e.policy_version,
            person=person,
        )
        try:
            verified = verify_authentication_response(
                credential={
                    "id": cred_id,
                    "rawId": cred_id,
                    "type": "public-key",
                    "response": {
                        "authenticatorData": proof.get("authenticator_data"),
                        "clientDataJSON": proof.get("client_data_json"),
                        "signature": proof.get("signature"),
                        "userHandle": proof.get("user_handle"),
                    },
                },
                expected_challenge=challenge,
                expected_rp_id=key.rp_id,
                expected_origin=key.origin,
                credential_public_key=key.public_key,
                credential_current_sign_count=key.sign_count,
                require_user_verification=True,
            )
        except (InvalidAuthenticationResponse, InvalidJSONStructure, ValueError, KeyError) as exc:
            return f"passkey proof does not verify: {exc}"
        key.sign_count = verified.new_sign_count
        return ""

    def _authorized(self, e: Entry) -> None:
        self.report.authorized += 1
        incident = e.incident_id or ""
        approvals = self._pending.pop(incident, [])
        if not approvals:
            self._fail(e, "AUTHORIZED without an approval before it")
            return
        action = str(e.data.get("action", ""))
        for seq, bound in approvals:
            if bound is not None and action and bound != action:
                self._fail(e, f"approval at seq {seq} was for {bound!r}, not {action!r}")


def audit(
    entries: Iterable[Entry], *, require_passkeys: bool = False
) -> dict[str, ApprovalsReport]:
    """Audit entries of one or more tenants (each tenant's in seq order)."""
    auditors: dict[str, ApprovalAuditor] = {}
    for e in entries:
        a = auditors.get(e.tenant_id)
        if a is None:
            a = auditors[e.tenant_id] = ApprovalAuditor(
                e.tenant_id, require_passkeys=require_passkeys
            )
        a.feed(e)
    for a in auditors.values():
        a.finish()
    return {t: a.report for t, a in sorted(auditors.items())}


def read_export(stream: TextIO) -> Iterator[Entry]:
    """Entries of a ``ledger export --format jsonl`` file; a bad line raises ValueError."""
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            yield Entry.from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"line {n}: not a ledger entry ({exc})") from None


async def audit_store(
    store: LedgerStore,
    tenants: Sequence[str] | None = None,
    *,
    key: bytes | None = None,
    require_passkeys: bool = False,
) -> dict[str, ApprovalsReport]:
    """Audit a store's tenants, streamed; with ``key`` the signed head is checked too."""
    out: dict[str, ApprovalsReport] = {}
    for tenant in tenants if tenants is not None else await store.tenants():
        a = ApprovalAuditor(tenant, require_passkeys=require_passkeys)
        async for e in store.scan(tenant):
            a.feed(e)
        a.finish(await store.head(tenant), key)
        out[tenant] = a.report
    return out


def print_reports(console: Console, reports: Mapping[str, ApprovalsReport]) -> None:
    for r in reports.values():
        tag = "[green]OK[/]  " if r.ok else "[red]FAIL[/]"
        console.print(
            f"{tag} {r.tenant_id}: {r.authorized:,} authorized, {r.approvals:,} approvals "
            f"({r.proven:,} proven by passkey, {r.bearer:,} bearer link only), "
            f"{r.enrolled:,} passkeys enrolled, {r.revoked:,} revoked"
        )
        if r.chain_problem:
            console.print(f"     chain: {r.chain_problem}")
        for seq, why in r.failures[:50]:
            console.print(f"     seq {seq}: {why}")
        if len(r.failures) > 50:
            console.print(f"     … and {len(r.failures) - 50:,} more")


def verify_approvals_command(
    tenant: str | None,
    store_url: str | None,
    export_file: Path | None,
    as_json: bool,
    require_passkeys: bool,
) -> None:
    """``ledger verify --approvals [--file export.jsonl]``: exit 0 all proven as far as they
    claim, 1 on any failure, 2 when it cannot run."""
    import typer

    from alertengine.cli_common import print_json, stdout_console
    from alertengine.ledger.tools import ledger_key_from_env, store_url_from_env
    from alertengine.stores.factory import open_ledger, sqlite_path

    err = Console(stderr=True)
    try:
        if export_file is not None:
            with open(export_file, encoding="utf-8") as stream:
                entries = (e for e in read_export(stream) if tenant in (None, e.tenant_id))
                reports = audit(entries, require_passkeys=require_passkeys)
        else:
            url = store_url or store_url_from_env()
            if url.startswith("sqlite:") and not sqlite_path(url).exists():
                err.print(f"[red]No ledger at {sqlite_path(url)}[/] (from {url}).")
                raise typer.Exit(2)
            key = ledger_key_from_env()
            store = open_ledger(url, key=key)

            async def run() -> dict[str, ApprovalsReport]:
                try:
                    return await audit_store(
                        store,
                        None if tenant is None else [tenant],
                        key=key,
                        require_passkeys=require_passkeys,
                    )
                finally:
                    await store.close()

            reports = asyncio.run(run())
    except (OSError, ValueError, LedgerError) as exc:
        err.print(f"[red]Cannot verify approvals:[/] {exc}")
        raise typer.Exit(2) from exc
    if tenant is not None and all(r.entries == 0 for r in reports.values()):
        err.print(f"[red]No ledger entries for tenant {tenant!r}[/]: nothing was verified.")
        raise typer.Exit(2)
    if as_json:
        print_json(
            {
                "ok": all(r.ok for r in reports.values()),
                "results": [r.to_dict() for r in reports.values()],
            }
        )
    else:
        if not reports:
            stdout_console().print("The ledger is empty: nothing to verify.")
        print_reports(stdout_console(), reports)
    if not all(r.ok for r in reports.values()):
        raise typer.Exit(1)
