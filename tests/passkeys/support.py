"""A real system (engine, ledger, store, authorizer) with passkeys wired in, for tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alertengine.authorize.service import ConfirmResult
from alertengine.passkeys.credentials import Credential
from alertengine.passkeys.service import Passkeys
from alertengine.policy import Policy
from tests.authorize.harness import System, add_tenant, build_system, entries
from tests.passkeys.softkey import SoftAuthenticator

BASE_URL = "http://localhost:8700"
ALICE = "engineer:web:alice"
BOB = "engineer:web:bob"
MALLORY = "engineer:web:mallory"  # the admin: also an approver, never alice's proxy


@dataclass
class PasskeySystem:
    sys: System
    passkeys: Passkeys

    @property
    def policy(self) -> Policy:
        return self.sys.policy

    async def enroll(
        self, person: str, auth: SoftAuthenticator, tenant: str = "acme"
    ) -> Credential:
        link = await self.passkeys.issue_enrollment(tenant, person)
        options = await self.passkeys.registration_options(link.token)
        return await self.passkeys.finish_enrollment(link.token, auth.create(options))

    async def options_for(self, token: str, person: str) -> str:
        claims = self.sys.signer.decode(token)
        version = self.sys.engine.policy_for(claims.tenant).version
        return await self.passkeys.assertion_options(claims, person, version)

    async def approve(
        self, incident: str, identity: str, auth: SoftAuthenticator, **get_kw: Any
    ) -> ConfirmResult:
        link = await self.sys.authorizer.issue("acme", incident, identity)
        person = identity.rsplit(":", 1)[1]
        assertion = auth.get_for(await self.options_for(link.token, person), **get_kw)
        return await self.sys.authorizer.confirm(link.token, assertion=assertion)

    async def refused(self, tenant: str = "acme") -> list[Any]:
        return [e for e in await entries(self.sys, tenant) if e.kind == "refused"]


async def build_passkey_system(
    backend: str = "memory",
    tmp_path: Path | None = None,
    *,
    policy: Policy | None = None,
    redis_url: str | None = None,
    webhook_url: str | None = None,
) -> PasskeySystem:
    sys = await build_system(
        backend,
        tmp_path,
        policy=policy or Policy(require_passkey=True),
        redis_url=redis_url,
        webhook_url=webhook_url,
        base_url=BASE_URL,
    )
    await add_tenant(sys, "acme", {"web": ["alice", "bob", "mallory"], "telegram": ["123456"]})
    await add_tenant(sys, "globex", {"web": ["gina"]})
    passkeys = Passkeys(sys.engine, sys.store, sys.clock, BASE_URL)
    sys.authorizer.passkeys = passkeys
    return PasskeySystem(sys, passkeys)
