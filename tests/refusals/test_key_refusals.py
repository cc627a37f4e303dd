"""A missing or wrong API key (tenant API, intake, on-call, admin routes, dashboard sign-in)
and a bad GitHub signature: answered 401 as before, and ledgered in ``_system`` as
``anonymous`` through the refusal budget, with a constant reason and never the key.

On the wired orchestrator (in-process ASGI, virtual clock) of :mod:`.test_wired`."""

from __future__ import annotations

import json
import logging

import pytest

from alertengine.ledger import LedgerQuery
from tests.refusals.test_wired import ADMIN, N, close_windows, orchestrator, refused, summaries
from tests.support.wired import Wired

#: What a scanner presents: never to be found in the ledger (nor in the logs).
WRONG = "aep_" + "w" * 36 + "sekret"
NO_KEY, WRONG_KEY = "no API key", "wrong API key"


async def everything_ledgered(w: Wired) -> str:
    """Every entry of every tenant's ledger, as one text (what `ledger export` writes)."""
    out = []
    for t in await w.rt.ledger.tenants():
        out += [json.dumps(e.to_dict()) for e in await w.rt.ledger.read(LedgerQuery(tenant_id=t))]
    return "\n".join(out)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


#: (method, path, body, headers, route template) of every family answered 401 for a key.
KEYED = [
    ("GET", "/incidents", None, bearer(WRONG), "/incidents"),
    ("GET", "/incidents/inc-42", None, {"X-API-Key": WRONG}, "/incidents/{incident_id}"),
    ("GET", "/ledger?tenant=acme", None, bearer(WRONG), "/ledger"),
    ("GET", "/ledger/verify", None, bearer(WRONG), "/ledger/verify"),
    ("POST", "/intake/health?service=checkout", {"ok": True}, bearer(WRONG), "/intake/health"),
    ("POST", "/intake/alertmanager", {"alerts": []}, bearer(WRONG), "/intake/alertmanager"),
    ("GET", "/silences", None, bearer(WRONG), "/silences"),
    ("GET", "/__alertengine/status", None, bearer(WRONG), "/__alertengine/status"),
    ("GET", "/metrics", None, {"X-API-Key": WRONG}, "/metrics"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "route"), KEYED)
async def test_a_wrong_key_is_401_and_one_system_entry_without_the_key(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: object,
    headers: dict[str, str],
    route: str,
) -> None:
    async with orchestrator(monkeypatch) as (w, _tw):
        with caplog.at_level(logging.DEBUG):
            r = await w.client.request(method, path, json=body, headers=headers)
            none = await w.client.request(method, path, json=body)
        for answer in (r, none):  # the answer is what it was
            assert answer.status_code == 401, answer.text
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.json()["error"] == "a valid API key is required"
        wrong, missing = await refused(w, "_system")
        for e, why in ((wrong, WRONG_KEY), (missing, NO_KEY)):
            assert (e.kind, e.actor, e.decision) == ("refused", "anonymous", "refused")
            assert e.data["path"] == route and e.data["why"] == why
            assert e.reason == f"{method} {route}: {why}"
        assert WRONG not in await everything_ledgered(w)
        assert WRONG[4:] not in caplog.text and "sekret" not in await everything_ledgered(w)
        # Nothing names a tenant: no tenant's ledger got anything.
        assert await refused(w, "acme") == [] and await refused(w, "beta") == []


async def test_valid_keys_and_public_routes_ledger_no_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with orchestrator(monkeypatch) as (w, _tw):
        acme = bearer(w.rt.new_keys["acme"])
        assert (await w.client.get("/incidents", headers=acme)).status_code == 200
        assert (await w.client.get("/silences", headers=acme)).status_code == 200
        assert (await w.client.get("/metrics", headers=bearer(ADMIN))).status_code == 200
        for path in ("/healthz", "/openapi.json", "/dashboard/signin", "/ledger/public-key"):
            r = await w.client.get(path, headers=bearer(WRONG))
            assert r.status_code < 400, (path, r.status_code)
            head = await w.client.head(path)
            assert head.status_code != 401, path
        preflight = await w.client.options(
            "/incidents",
            headers={"Origin": "https://x.test", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.status_code != 401
        assert await refused(w, "_system") == []


async def test_a_flood_of_wrong_keys_is_n_entries_and_one_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = 50
    async with orchestrator(monkeypatch) as (w, _tw):
        for i in range(sent):  # made-up incident ids: still one route, one budget key
            r = await w.client.get(f"/incidents/inc-{i}", headers=bearer(f"{WRONG}{i}"))
            assert r.status_code == 401
        assert len(await refused(w, "_system")) == N
        await close_windows(w)
        entries = await refused(w, "_system")
        (s,) = summaries(entries)
        assert len(entries) == N + 1
        assert s.data["count"] == sent - N and s.data["count"] + N == sent
        assert (s.data["route"], s.data["reason"]) == ("/incidents/{incident_id}", WRONG_KEY)
        assert s.reason.startswith(f"{sent - N} more requests refused on /incidents/")
        assert WRONG not in await everything_ledgered(w)
        assert (await w.rt.ledger.verify("_system")).ok


async def test_a_flood_on_intake_and_metrics_is_counted_per_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = 50
    async with orchestrator(monkeypatch) as (w, _tw):
        for i in range(sent):
            h = bearer(f"{WRONG}{i}")
            assert (
                await w.client.post("/intake/alertmanager", json={}, headers=h)
            ).status_code == 401
            assert (await w.client.get("/metrics", headers=h)).status_code == 401
        await close_windows(w)
        entries = await refused(w, "_system")
        assert len(entries) == 2 * (N + 1)
        counts = {e.data["route"]: e.data["count"] for e in summaries(entries)}
        assert counts == {"/intake/alertmanager": sent - N, "/metrics": sent - N}


async def test_a_bad_github_signature_is_401_and_ledgered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = 50
    async with orchestrator(monkeypatch) as (w, _tw):
        url = "/commits/webhook?tenant=acme&service=checkout"
        push = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
        r = await w.client.post(url, content=b"{}", headers=push)
        assert r.status_code == 401 and r.json() == {"error": "invalid or missing signature"}
        forged = {**push, "X-Hub-Signature-256": "sha256=" + "0" * 64}
        for _ in range(sent):
            r = await w.client.post(url, content=b"{}", headers=forged)
            assert r.status_code == 401
        missing, *bad = await refused(w, "_system")
        assert (missing.kind, missing.actor) == ("refused", "anonymous")
        assert missing.reason == "github webhook /commits/webhook: missing X-Hub-Signature-256"
        assert len(bad) == N and all("invalid X-Hub-Signature-256" in e.reason for e in bad)
        await close_windows(w)
        (s,) = summaries(await refused(w, "_system"))
        assert s.data["count"] == sent - N and s.data["route"] == "/commits/webhook"
        assert await refused(w, "acme") == []  # the query names acme: nothing proves it


async def test_a_failed_dashboard_sign_in_is_ledgered_without_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = 50
    async with orchestrator(monkeypatch) as (w, _tw):
        r = await w.client.post("/dashboard/signin", data={"api_key": WRONG})
        assert r.status_code == 401 and "That key was not accepted." in r.text
        assert "ae_dashboard" not in r.headers.get("set-cookie", "")
        r = await w.client.post("/dashboard/signin", data={"api_key": ""})
        assert r.status_code == 401
        wrong, missing = await refused(w, "_system")
        assert (wrong.actor, wrong.data["path"], wrong.data["why"]) == (
            "anonymous",
            "/dashboard/signin",
            WRONG_KEY,
        )
        assert missing.data["why"] == NO_KEY
        for i in range(sent):
            await w.client.post("/dashboard/signin", data={"api_key": f"{WRONG}{i}"})
        await close_windows(w)
        entries = [e for e in await refused(w, "_system") if e.data.get("why") != NO_KEY]
        assert sum(e.data.get("count", 1) for e in entries) == sent + 1
        assert len(summaries(entries)) == 1 and len(entries) == N + 1
        assert WRONG not in await everything_ledgered(w)
        # A good key still signs in, and is not a refusal.
        ok = await w.client.post("/dashboard/signin", data={"api_key": w.rt.new_keys["acme"]})
        assert ok.status_code == 303
        assert len(await refused(w, "_system")) == len(entries) + 1


async def test_a_tenants_key_and_a_wrong_key_are_kept_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tenant's key on an admin route is that tenant's (403, its own entry); a wrong key
    is nobody's (401, ``_system``): the two never mix."""
    async with orchestrator(monkeypatch) as (w, _tw):
        acme = bearer(w.rt.new_keys["acme"])
        assert (await w.client.get("/__alertengine/status", headers=acme)).status_code == 403
        assert (
            await w.client.get("/__alertengine/status", headers=bearer(WRONG))
        ).status_code == 401
        (forbidden, anonymous) = await refused(w, "_system")
        assert forbidden.actor == "tenant:acme" and forbidden.decision == "forbidden"
        assert anonymous.actor == "anonymous" and anonymous.data["why"] == WRONG_KEY


async def test_a_wrong_key_with_a_genuine_link_is_refused_and_the_link_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller meant to prove a tenant and did not: 401 and a `_system` entry, never
    "the link alone decides"; nothing reaches the link's tenant."""
    async with orchestrator(monkeypatch) as (w, _tw):
        link, _ = w.rt.authorizer.signer.issue(
            tenant="acme", incident="inc-real", action="recover", approver="person:alice", ttl_s=600
        )
        for accept in ("application/json", "text/html"):
            r = await w.client.post(
                "/action/recover/confirm",
                data={"token": link},
                headers={**bearer(WRONG), "Accept": accept},
            )
            assert r.status_code == 401, r.text
            assert "not accepted" in r.text and "link still works" in r.text
        own = [e for e in await refused(w, "_system") if e.data.get("why") == WRONG_KEY]
        assert [e.data["path"] for e in own] == ["/action/recover/confirm"] * 2
        assert await refused(w, "acme") == []
        assert WRONG not in await everything_ledgered(w)
