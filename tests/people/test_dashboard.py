"""The dashboard's People page through the real app: what it shows (masked addresses,
reachability, on call, passkeys, WhatsApp/voice facts, no secrets), the same validation and
messages as ``alertengine person``, every change ledgered with the session's actor, tenant
isolation, CSRF, and GET changing nothing."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from alertengine.cli import app as cli_app
from alertengine.ledger import LedgerQuery
from alertengine.orchestrator.runtime import Runtime, create_app
from alertengine.passkeys.credentials import Credential, CredentialStore
from alertengine.people import Channel, channel_marker
from tests.people.dashboard_runtime import (
    ADMIN_KEY,
    ALICE_WA,
    AUTH_TOKEN,
    LEDGER_KEY,
    SID,
    close,
    make_runtime,
    store_url,
)

BASE = "http://orch.test"
VOICE = "+263772345678"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    rt = await make_runtime(tmp_path)
    transport = httpx.ASGITransport(app=create_app(rt, run_loop=False))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        await sign_in(rt, client)
        yield rt, client
    await close(rt)


async def sign_in(rt: Runtime, c: httpx.AsyncClient, *, admin: bool = False) -> None:
    data = {"api_key": ADMIN_KEY, "tenant": "acme"} if admin else {"api_key": rt.new_keys["acme"]}
    r = await c.post("/dashboard/signin", data=data)
    assert r.status_code == 303, r.text


async def page(c: httpx.AsyncClient) -> tuple[str, str]:
    r = await c.get("/dashboard/people")
    assert r.status_code == 200, r.text
    return r.text, csrf_of(r.text)


def csrf_of(text: str) -> str:
    return text.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def error_of(text: str) -> str:
    m = re.search(r'<p class="bad" role="alert" id="people-error">(.*?)</p>', text, re.S)
    assert m, "no error shown"
    return html.unescape(m.group(1))


async def post(c: httpx.AsyncClient, path: str, **form: str) -> httpx.Response:
    if "csrf" not in form:
        form["csrf"] = (await page(c))[1]
    return await c.post(f"/dashboard/people{path}", data=form)


async def people_entries(rt: Runtime, tenant: str = "acme") -> list[Any]:
    entries = await rt.ledger.read(LedgerQuery(tenant_id=tenant))
    return [e for e in entries if e.kind == "people" and e.actor != "config"]


async def refusals(rt: Runtime, tenant: str) -> list[Any]:
    return [e for e in await rt.ledger.read(LedgerQuery(tenant_id=tenant)) if e.kind == "refused"]


async def channels(rt: Runtime, tenant: str, pid: str) -> list[tuple[str, str]]:
    assert rt.notifier.people is not None
    p = await rt.notifier.people.get(tenant, pid)
    return [(c.kind, c.address) for c in p.channels] if p else []


# --- what the page shows ----------------------------------------------------------------


async def test_page_lists_the_tenants_people_masked_reachable_on_call_with_passkeys(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    await CredentialStore(rt.store).add(
        Credential("acme", "alice", "cred-1", "pk", 0, "alerts.example.com", "https://x", 1.0)
    )
    text, _ = await page(c)
    alice = text.split('data-person="alice"', 1)[1].split("</tr>", 1)[0]
    assert "+26377•••4567" in alice and ALICE_WA not in text and ALICE_WA[1:] not in text
    assert 'data-kind="whatsapp" data-reachable="yes"' in alice
    # No Telegram token in this deployment: the same reason check-config gives.
    assert 'data-kind="telegram" data-reachable="no"' in alice
    assert "TELEGRAM_BOT_TOKEN not set" in alice
    assert 'data-on-call="yes"' in alice and "alice-gh" in alice
    assert "<td>1</td>" in alice  # one passkey enrolled
    bob = text.split('data-person="bob"', 1)[1].split("</tr>", 1)[0]
    assert 'data-on-call="yes"' not in bob and "<td>0</td>" in bob
    assert "bob@example.com" in bob
    assert "On call now: <strong>alice</strong>" in text
    # Only this tenant's people: globex's zed is not there.
    assert 'data-person="zed"' not in text and "999" not in text
    # The WhatsApp/voice facts, and no secret.
    for fact in ("wa-channel", "wa-template", "voice-channel", "callbacks"):
        assert f'id="fact-{fact}" data-ok="yes"' in text, fact
    assert SID not in text and "…cdef" in text
    assert AUTH_TOKEN not in text and "AC" + "1" * 32 not in text


async def test_facts_say_why_voice_and_whatsapp_would_not_work(tmp_path: Path) -> None:
    rt = await make_runtime(
        tmp_path, twilio=False, base_url="http://127.0.0.1:8700", content_sid=""
    )
    try:
        transport = httpx.ASGITransport(app=create_app(rt, run_loop=False))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            await sign_in(rt, c)
            text, _ = await page(c)
    finally:
        await close(rt)
    facts = dict(re.findall(r'id="fact-([a-z-]+)" data-ok="(yes|no)"', text))
    assert facts == {
        "wa-channel": "no",
        "wa-template": "no",
        "voice-channel": "no",
        "callbacks": "no",
    }
    assert "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_VOICE_FROM not set" in text
    assert "no Content SID" in text and "TWILIO_AUTH_TOKEN not set" in text
    # Each channel's row says the same as the facts.
    assert 'data-kind="whatsapp" data-reachable="no"' in text


async def test_a_loopback_base_url_is_named_as_what_twilio_cannot_call(tmp_path: Path) -> None:
    rt = await make_runtime(tmp_path, base_url="http://127.0.0.1:8700")
    try:
        transport = httpx.ASGITransport(app=create_app(rt, run_loop=False))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            await sign_in(rt, c)
            text, _ = await page(c)
    finally:
        await close(rt)
    assert 'id="fact-callbacks" data-ok="no"' in text
    assert "http://127.0.0.1:8700 is not a public address: Twilio cannot call it back" in text
    assert 'id="fact-voice-channel" data-ok="yes"' in text  # calls go out; answers cannot come


async def test_get_changes_nothing(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    before = (await rt.ledger.count("acme"), await rt.store.list("people"))
    keys = await rt.store.list("people_marker_keys")
    for _ in range(2):
        await page(c)
    assert (await rt.ledger.count("acme"), await rt.store.list("people")) == before
    assert await rt.store.list("people_marker_keys") == keys


# --- changes: ledgered with the session's actor -----------------------------------------


async def test_each_change_is_ledgered_with_the_sessions_actor_never_an_address(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    r = await post(c, "/channels", tenant="acme", person="alice", kind="voice", address=VOICE)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/people"
    assert ("voice", VOICE) in await channels(rt, "acme", "alice")
    text, _ = await page(c)
    assert "+26377•••5678" in text and VOICE not in text
    r = await post(c, "", person="dave", name="Dave D", github="Dave-GH, d2",
                   kind="whatsapp", address="+44 7700 900123")  # fmt: skip
    assert r.status_code == 303
    assert await channels(rt, "acme", "dave") == [("whatsapp", "+447700900123")]
    # Remove by the row's button (a ref, never the address) and by a typed address.
    text, token = await page(c)
    row = text.split('data-person="alice"', 1)[1].split("</tr>", 1)[0]
    ref = row.split('name="kind" value="voice"><input type="hidden" name="ref" value="', 1)[1][:24]
    r = await post(c, "/channels/remove", csrf=token, person="alice", kind="voice", ref=ref)
    assert r.status_code == 303 and ("voice", VOICE) not in await channels(rt, "acme", "alice")
    r = await post(c, "/channels/remove", person="dave", kind="whatsapp", address="+447700900123")
    assert r.status_code == 303 and await channels(rt, "acme", "dave") == []
    r = await post(c, "/remove", person="dave")
    assert r.status_code == 303 and await channels(rt, "acme", "dave") == []
    assert rt.notifier.people is not None and await rt.notifier.people.get("acme", "dave") is None

    entries = await people_entries(rt)
    assert [(e.decision, e.actor, e.data["person"]) for e in entries] == [
        ("channel added", "tenant:acme", "person:alice"),
        ("person added", "tenant:acme", "person:dave"),
        ("channel removed", "tenant:acme", "person:alice"),
        ("channel removed", "tenant:acme", "person:dave"),
        ("person removed", "tenant:acme", "person:dave"),
    ]
    key = await rt.notifier.people.marker_key("acme")
    assert entries[0].data["channel"] == {
        "kind": "voice",
        "marker": channel_marker(key, Channel("voice", VOICE)),
    }
    assert entries[1].data["github_logins"] == ["dave-gh", "d2"]
    dump = "\n".join(e.to_json() for e in entries)
    for number in (VOICE, VOICE[1:], "447700900123", ALICE_WA[1:]):
        assert number not in dump
    assert (await rt.ledger.verify("acme")).ok


async def test_an_admin_session_is_ledgered_as_admin(env) -> None:  # type: ignore[no-untyped-def]
    rt, _ = env
    transport = httpx.ASGITransport(app=create_app(rt, run_loop=False))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as admin:
        await sign_in(rt, admin, admin=True)
        r = await post(admin, "/channels", person="bob", kind="voice", address=VOICE)
        assert r.status_code == 303
    assert [(e.decision, e.actor) for e in await people_entries(rt)] == [("channel added", "admin")]


# --- the CLI's validation and messages ---------------------------------------------------


def cli(tmp: Path, *args: str) -> Any:
    env = {"ALERTENGINE_STORE_URL": store_url(tmp), "ALERTENGINE_LEDGER_KEY": LEDGER_KEY}
    return CliRunner().invoke(cli_app, [*args, "--tenant", "acme"], env=env)


def squash(text: str) -> str:
    return " ".join(text.split())


#: (CLI arguments, the dashboard's form path and fields): the same wrong input both ways.
CASES: list[tuple[tuple[str, ...], str, dict[str, str]]] = [
    (("person", "add", "Bad Id"), "", {"person": "Bad Id"}),
    (("person", "add", "alice"), "", {"person": "alice"}),
    (("person", "add", "eve", "--github", "-bad-"), "", {"person": "eve", "github": "-bad-"}),
    (("person", "add", "eve", "--channel", "voice=0123"), "",
     {"person": "eve", "kind": "voice", "address": "0123"}),
    (("person", "channel", "add", "bob", "voice", "12345"), "/channels",
     {"person": "bob", "kind": "voice", "address": "12345"}),
    (("person", "channel", "add", "bob", "sms", "+263772345678"), "/channels",
     {"person": "bob", "kind": "sms", "address": "+263772345678"}),
    (("person", "channel", "add", "bob", "whatsapp", ALICE_WA), "/channels",
     {"person": "bob", "kind": "whatsapp", "address": ALICE_WA}),
    (("person", "channel", "add", "bob", "telegram", "1", "--user-id", "a:b"), "/channels",
     {"person": "bob", "kind": "telegram", "address": "1", "user_id": "a:b"}),
    (("person", "channel", "add", "alice", "whatsapp", ALICE_WA), "/channels",
     {"person": "alice", "kind": "whatsapp", "address": ALICE_WA}),
    (("person", "channel", "remove", "bob", "voice"), "/channels/remove",
     {"person": "bob", "kind": "voice"}),
    (("person", "channel", "add", "Bad Id", "web", "x"), "/channels",
     {"person": "Bad Id", "kind": "web", "address": "x"}),
]  # fmt: skip


async def test_bad_input_gets_the_clis_message_with_400_and_changes_nothing(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    before = (await rt.ledger.count("acme"), await rt.store.list("people"))
    for args, path, form in CASES:
        result = await asyncio.to_thread(cli, tmp_path, *args)
        assert result.exit_code == 2, (args, result.output)
        r = await post(c, path, tenant="acme", **form)
        assert r.status_code == 400, (form, r.status_code)
        assert squash(error_of(r.text)) == squash(result.stderr), args
    assert (await rt.ledger.count("acme"), await rt.store.list("people")) == before


async def test_a_missing_person_is_404_with_the_clis_message(env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    result = await asyncio.to_thread(cli, tmp_path, "person", "remove", "nobody")
    r = await post(c, "/remove", person="nobody")
    assert r.status_code == 404
    assert (
        squash(error_of(r.text)) == squash(result.stderr) == "no person 'nobody' in tenant 'acme'"
    )
    assert await refusals(rt, "acme") == [] and await refusals(rt, "globex") == []


async def test_a_failed_add_refills_the_form_it_came_from(env) -> None:  # type: ignore[no-untyped-def]
    _, c = env
    r = await post(c, "", form="add-person", person="eve", name="Eve E", kind="voice",
                   address="0123")  # fmt: skip
    assert r.status_code == 400
    assert 'id="person-name" name="name" maxlength="200" value="Eve E"' in r.text
    assert '<option value="voice" selected>' in r.text.split('id="person-form"', 1)[1]


# --- tenant isolation --------------------------------------------------------------------


async def test_a_form_naming_another_tenant_is_refused_and_ledgered(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    zed = await channels(rt, "globex", "zed")
    for path, form in [
        ("/channels", {"person": "zed", "kind": "voice", "address": VOICE}),
        ("/remove", {"person": "zed"}),
        ("", {"person": "mallory"}),
    ]:
        r = await post(c, path, tenant="globex", **form)
        assert r.status_code == 403, (path, r.status_code)
    assert await channels(rt, "globex", "zed") == zed
    assert await people_entries(rt, "globex") == [] and await people_entries(rt) == []
    refused = await refusals(rt, "globex")
    assert [(e.actor, e.decision) for e in refused] == [("tenant:acme", "forbidden")] * 3
    assert refused[0].data["via"] == "dashboard"
    assert "may not access tenant 'globex'" in refused[0].reason
    # A tenant that does not exist: the same 403, ledgered under the session's own tenant.
    r = await post(c, "/remove", tenant="initech", person="zed")
    assert r.status_code == 403
    assert len(await refusals(rt, "acme")) == 1


async def test_another_tenants_person_is_answered_as_missing_and_the_attempt_ledgered(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    zed = await channels(rt, "globex", "zed")
    probe = await post(c, "/channels", tenant="acme", person="zed", kind="voice", address=VOICE)
    missing = await post(c, "/channels", tenant="acme", person="yan", kind="voice", address=VOICE)
    # Indistinguishable from a person nobody has: other tenants' ids cannot be probed.
    assert probe.status_code == missing.status_code == 404
    assert error_of(probe.text) == "no person 'zed' in tenant 'acme'"
    assert error_of(missing.text) == "no person 'yan' in tenant 'acme'"
    for path, form in [("/remove", {"person": "zed"}),
                       ("/channels/remove", {"person": "zed", "kind": "telegram"})]:  # fmt: skip
        assert (await post(c, path, **form)).status_code == 404
    assert await channels(rt, "globex", "zed") == zed
    assert [e.actor for e in await refusals(rt, "globex")] == ["tenant:acme"] * 3
    assert await refusals(rt, "acme") == []


async def test_a_shared_person_id_reaches_only_the_sessions_tenant(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    globex_alice = await channels(rt, "globex", "alice")
    r = await post(c, "/channels/remove", person="alice", kind="telegram")
    assert r.status_code == 303
    assert ("telegram", "4242") not in await channels(rt, "acme", "alice")
    assert await channels(rt, "globex", "alice") == globex_alice
    assert await people_entries(rt, "globex") == []
    assert [e.data["person"] for e in await people_entries(rt)] == ["person:alice"]


# --- CSRF --------------------------------------------------------------------------------


async def test_forms_need_the_pages_token_and_the_same_origin(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    form = {"tenant": "acme", "person": "bob", "kind": "voice", "address": VOICE}
    _, token = await page(c)
    for path in ("", "/remove", "/channels", "/channels/remove"):
        assert (await c.post(f"/dashboard/people{path}", data=form)).status_code == 403
        wrong = await c.post(f"/dashboard/people{path}", data={**form, "csrf": "0" * 64})
        assert wrong.status_code == 403
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"},
                    {"Origin": "null"}):  # fmt: skip
        r = await c.post(
            "/dashboard/people/channels", data={**form, "csrf": token}, headers=headers
        )
        assert r.status_code == 403, headers
    # Another session's token is refused; no session at all: sign in first.
    async with httpx.AsyncClient(transport=c._transport, base_url=BASE) as other:
        await asyncio.sleep(0.01)  # a later sign-in: another cookie
        await sign_in(rt, other)
        r = await other.post("/dashboard/people/channels", data={**form, "csrf": token})
        assert r.status_code == 403
    async with httpx.AsyncClient(transport=c._transport, base_url=BASE) as anon:
        r = await anon.post("/dashboard/people/channels", data={**form, "csrf": token})
        assert r.status_code == 303 and r.headers["location"].endswith("/signin")
        assert (await anon.get("/dashboard/people")).status_code == 303
    assert await people_entries(rt) == [] and ("voice", VOICE) not in await channels(
        rt, "acme", "bob"
    )
    ok = await c.post("/dashboard/people/channels", data={**form, "csrf": token})
    assert ok.status_code == 303 and ("voice", VOICE) in await channels(rt, "acme", "bob")


async def test_a_forged_or_stale_channel_ref_removes_nothing(env) -> None:  # type: ignore[no-untyped-def]
    rt, c = env
    before = await channels(rt, "acme", "alice")
    text, _ = await page(c)
    row = text.split('data-person="alice"', 1)[1].split("</tr>", 1)[0]
    ref = row.split('name="kind" value="telegram"><input type="hidden" name="ref" value="', 1)[1]
    for kind, forged in (("telegram", "0" * 24), ("whatsapp", ref[:24])):  # wrong ref, wrong kind
        r = await post(c, "/channels/remove", person="alice", kind=kind, ref=forged)
        assert r.status_code == 400
        assert error_of(r.text) == f"person 'alice' has no such {kind} channel"
    # A ref names one person's channel: under bob it names nothing.
    r = await post(c, "/channels/remove", person="bob", kind="telegram", ref=ref[:24])
    assert r.status_code == 400
    assert await channels(rt, "acme", "alice") == before and await people_entries(rt) == []
