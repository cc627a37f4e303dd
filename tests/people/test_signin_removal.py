"""A person who leaves the registry stops being signed in everywhere: their CLI tokens are
revoked at once (ledgered once, with the count) whichever way they were removed (the People
page, the CLI, config), and a dashboard session acting as them names them no more at the next
request. Also: the running orchestrator prunes dead tokens from its loop under the sweep
lease, and the ``requested`` entry carries the requester's address and agent as data, not in
its reason."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from alertengine.cli import app
from alertengine.clock import SystemClock
from alertengine.ledger import LedgerQuery
from alertengine.people import PersonRegistry
from alertengine.people.model import Person
from alertengine.people.signin import TOKENS, SignIns, secret_hash
from alertengine.people.signin_prune import TOKEN_GRACE_S, SignInPruner
from alertengine.stores.factory import open_ledger, open_state_store
from tests.people.signin_support import ADMIN_KEY, ALICE, BOB, site
from tests.people.test_signin_dashboard import csrf, signin


async def test_removing_a_person_on_the_people_page_ends_their_tokens_and_session() -> None:
    async with site() as s:
        incident = await s.incident()
        bob_token = await s.token("bob", BOB)
        # The admin's dashboard session acts as Alice (she confirmed from her phone).
        await signin(s, ADMIN_KEY, "acme")
        page = await s.client.get("/dashboard/person")
        await s.client.post(
            "/dashboard/person/signin", data={"csrf": csrf(page), "person": "alice"}
        )
        await s.answer(s.link(ALICE))
        page = await s.client.get("/dashboard/person")
        done = await s.client.post(
            "/dashboard/person/poll",
            data={"csrf": csrf(page)},
            headers={"Accept": "application/json"},
        )
        assert done.status_code == 200
        assert "alice (acme)" in (await s.client.get("/dashboard/")).text
        alice_token = await s.token("alice", ALICE)
        # Another operator removes Alice and Bob (here, through the server's own registry,
        # the one the config sync and the People page use).
        people = s.rt.notifier.people
        assert people is not None
        await people.remove("acme", "alice", actor="operator:ann")
        # The next request of Alice's session no longer names her, and her ack is refused.
        home = await s.client.get("/dashboard/")
        assert home.status_code == 200 and "alice (acme)" not in home.text
        assert 'id="acting-person"' not in home.text
        page = await s.client.get(f"/dashboard/incidents/{incident}")
        assert 'id="ack-button"' not in page.text
        page = await s.client.get("/dashboard/person")
        refused = await s.client.post(
            f"/dashboard/incidents/{incident}/ack", data={"csrf": csrf(page)}
        )
        assert refused.status_code == 403
        assert "sign in as a person first" in refused.text
        assert not [e for e in await s.entries("acme", "ack") if e.actor == "person:alice"]
        # Her CLI token is refused as revoked (not merely "no longer in the tenant").
        r = await s.client.get("/people/whoami", headers={"Authorization": f"Bearer {alice_token}"})
        assert r.status_code == 401 and "revoked" in r.text
        steps = [e for e in await s.entries("acme", "signin") if e.decision == "tokens revoked"]
        assert [(e.actor, e.data["person"], e.data["count"]) for e in steps] == [
            ("operator:ann", "alice", 1)
        ]
        assert steps[0].reason.startswith("tokens revoked: person removed")
        # Bob's token is untouched; removing him on the People page ends it too.
        ok = await s.client.get("/people/whoami", headers={"Authorization": f"Bearer {bob_token}"})
        assert ok.status_code == 200
        people_page = await s.client.get("/dashboard/people")
        gone = await s.client.post(
            "/dashboard/people/remove", data={"csrf": csrf(people_page), "person": "bob"}
        )
        assert gone.status_code in (200, 303), gone.text
        r = await s.client.get("/people/whoami", headers={"Authorization": f"Bearer {bob_token}"})
        assert r.status_code == 401 and "revoked" in r.text
        steps = [e for e in await s.entries("acme", "signin") if e.decision == "tokens revoked"]
        assert [(e.data["person"], e.data["count"]) for e in steps] == [("alice", 1), ("bob", 1)]


async def test_the_running_orchestrator_prunes_dead_tokens_under_the_sweep_lease() -> None:
    async with site() as s:
        pruners = [
            h
            for h in s.rt.orch.tick_hooks
            if isinstance(getattr(h, "__self__", None), SignInPruner)
        ]
        assert len(pruners) == 1  # a sweep hook: only the replica holding the sweep lease
        assert not [
            h
            for h in s.rt.orch.replica_hooks
            if isinstance(getattr(h, "__self__", None), SignInPruner)
        ]
        token = await s.token("alice", ALICE)
        auth = {"Authorization": f"Bearer {token}"}
        assert (await s.client.delete("/people/signin/token", headers=auth)).status_code == 200
        await s.clock.advance(TOKEN_GRACE_S / 2)
        await pruners[0]()
        r = await s.client.get("/people/whoami", headers=auth)
        assert r.status_code == 401 and "revoked" in r.text  # still told why, for a while
        await s.clock.advance(TOKEN_GRACE_S)
        await pruners[0]()
        assert await s.rt.store.get(TOKENS, secret_hash(token)) is None
        r = await s.client.get("/people/whoami", headers=auth)
        assert r.status_code == 401 and "unknown" in r.text
        # Bookkeeping, not an event: no ledger entry for the deletion.
        decisions = [e.decision for e in await s.entries("acme", "signin")]
        assert decisions.count("token revoked") == 1 and not any("prune" in d for d in decisions)


async def test_the_requested_entry_keeps_address_and_agent_as_data_not_in_its_reason() -> None:
    async with site() as s:
        r = await s.client.post(
            "/people/signin",
            json={"person": "alice", "client": "cli"},
            headers={**s.auth(), "User-Agent": "curl/8.5.0 (secret-laptop)"},
        )
        assert r.status_code == 201, r.text
        [asked] = [e for e in await s.entries("acme", "signin") if e.decision == "requested"]
        assert asked.data["user_agent"] == "curl/8.5.0 (secret-laptop)"
        assert asked.data["address"] == "127.0.0.1"
        assert "secret-laptop" not in asked.reason and "127.0.0.1" not in asked.reason
        assert not re.search(r"\d+\.\d+\.\d+\.\d+", asked.reason)
        # The person's page still shows who asks (that is what they judge).
        page = await s.client.get(s.link(ALICE))
        assert "secret-laptop" in page.text


def test_person_remove_on_the_cli_revokes_their_tokens(tmp_path: Path) -> None:
    db = tmp_path / "ae.db"
    env = {"ALERTENGINE_STORE_URL": f"sqlite:///{db}", "ALERTENGINE_LEDGER_KEY": "l" * 40}

    def cli(*args: str) -> Any:
        return CliRunner().invoke(app, list(args), env=env)

    assert cli("tenant", "add", "acme").exit_code == 0
    r = cli("person", "add", "alice", "--tenant", "acme", "--channel", "telegram=1001")
    assert r.exit_code == 0, r.output

    async def sign_in() -> str:
        store = open_state_store(f"sqlite:///{db}")
        links: list[str] = []

        async def record(*_: Any) -> None:
            return None

        async def send(tenant: str, person: Person, url: str, code: str) -> list[str]:
            links.append(url.rsplit("=", 1)[1])
            return ["telegram"]

        signins = SignIns(store, SystemClock(), PersonRegistry(store), record, send)
        pending = await signins.request(
            "acme", "alice", requester="tenant:acme", client="cli", describe="t",
            confirm_url=lambda c: f"https://x/c?c={c}",
        )  # fmt: skip
        await signins.answer(links[0], confirm=True)
        token = (await signins.poll(pending.device_code, "acme", "tenant:acme")).token
        await store.close()
        return token

    token = asyncio.run(sign_in())
    r = cli("person", "remove", "alice", "--tenant", "acme", "--actor", "operator:bo")
    assert r.exit_code == 0, r.output

    async def after() -> tuple[Mapping[str, Any] | None, list[Any]]:
        store = open_state_store(f"sqlite:///{db}")
        ledger = open_ledger(f"sqlite:///{db}", key=None)
        try:
            assert (await ledger.verify("acme")).ok
            entries = await ledger.read(LedgerQuery(tenant_id="acme"))
            return await store.get(TOKENS, secret_hash(token)), list(entries)
        finally:
            await store.close()
            await ledger.close()

    doc, entries = asyncio.run(after())
    assert doc is not None and doc["revoked"] is True
    revoked = [e for e in entries if e.decision == "tokens revoked"]
    assert [(e.kind, e.actor, e.data["count"]) for e in revoked] == [("signin", "operator:bo", 1)]
