"""The authorizer on real components (in-memory ledger/store and the other backends)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import jwt
import pytest

from alertengine.authorize import AuthorizationError, Problem
from alertengine.clock import VirtualClock
from alertengine.engine import Change
from alertengine.incidents import Stage, fold
from alertengine.policy import Policy
from tests.authorize.harness import (
    ALICE,
    BOB,
    CAROL,
    System,
    add_tenant,
    backend_params,
    build_system,
    entries,
    validated_incident,
)


@pytest.fixture(params=backend_params())
async def sys(request: pytest.FixtureRequest, tmp_path: Path) -> System:
    redis_url = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_server").url
    s = await build_system(request.param, tmp_path, clock=VirtualClock(), redis_url=redis_url)
    await add_tenant(s)
    yield s  # type: ignore[misc]
    await s.close()


async def test_issue_refuses_unless_validated(sys: System) -> None:
    state, _ = await sys.engine.open("acme", "api", reason="x", snapshot={})
    with pytest.raises(AuthorizationError) as info:
        await sys.authorizer.issue("acme", state.incident_id, ALICE)
    assert info.value.problem is Problem.NOT_AWAITING
    with pytest.raises(AuthorizationError):
        await sys.authorizer.issue("acme", "inc-nope", ALICE)


async def test_issue_refuses_a_recipient_who_is_not_an_approver(sys: System) -> None:
    i = await validated_incident(sys)
    with pytest.raises(AuthorizationError) as info:
        await sys.authorizer.issue("acme", i, "engineer:web:mallory@example.com")
    assert info.value.problem is Problem.NOT_APPROVER


async def test_issue_ledgers_jti_and_hash_never_the_token(sys: System) -> None:
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, ALICE)
    assert link.url.endswith(f"/action/recover?token={link.token}")
    (tok,) = await entries(sys, "acme", "token")
    assert tok.decision == "issued" and tok.data["jti"] == link.jti
    assert tok.data["recipient"] == ALICE and tok.data["expires_at"] == link.expires_at
    assert len(tok.data["token_sha256_prefix"]) == 16
    for e in await entries(sys, "acme"):
        assert link.token not in e.to_json()
        assert link.token.split(".")[2] not in e.to_json()
    state = await sys.engine.get("acme", i)
    assert state is not None and state.token is not None and state.token["jti"] == link.jti


async def test_confirm_authorizes_with_the_approval_in_the_same_append(sys: System) -> None:
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, ALICE)
    woken: list[tuple[str, str]] = []
    sys.authorizer.on_authorized = lambda t, n: woken.append((t, n))
    r = await sys.authorizer.confirm(link.token)
    assert r.ok and r.status == 200 and r.authorized and r.approver == ALICE
    assert woken == [("acme", i)]
    all_entries = await entries(sys, "acme")
    approval, transition = all_entries[-2:]
    assert approval.kind == "approval" and approval.actor == ALICE
    assert approval.data["jti"] == link.jti
    assert transition.kind == "transition" and transition.stage == "AUTHORIZED"
    assert transition.actor == ALICE and transition.seq == approval.seq + 1
    assert fold(all_entries)[f"acme/{i}"].stage is Stage.AUTHORIZED
    assert (await sys.ledger.verify("acme")).ok


async def test_second_confirm_is_409_used_and_ledgered(sys: System) -> None:
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, ALICE)
    assert (await sys.authorizer.confirm(link.token)).ok
    again = await sys.authorizer.confirm(link.token)
    assert (again.ok, again.status, again.problem) == (False, 409, Problem.USED)
    refusal = (await entries(sys, "acme", "refused"))[-1]
    assert refusal.data["problem"] == "used" and refusal.data["jti"] == link.jti
    assert refusal.incident_id == i


async def test_concurrent_confirms_authorize_once(sys: System) -> None:
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, ALICE)
    results = await asyncio.gather(*(sys.authorizer.confirm(link.token) for _ in range(200)))
    assert sum(r.ok for r in results) == 1
    assert {r.status for r in results if not r.ok} == {409}
    assert len(await entries(sys, "acme", "refused")) == 199
    transitions = [e for e in await entries(sys, "acme", "transition") if e.stage == "AUTHORIZED"]
    assert len(transitions) == 1


async def test_unknown_approver_removed_after_issue(sys: System) -> None:
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, ALICE)
    await sys.tenants.set_approvers("acme", "web", ["carol@example.com"])
    r = await sys.authorizer.confirm(link.token)
    assert (r.status, r.problem) == (403, Problem.NOT_APPROVER)
    assert (await sys.engine.get("acme", i)).stage is Stage.VALIDATED  # type: ignore[union-attr]
    # The token was not consumed by the refusal: re-adding the approver lets it work.
    await sys.tenants.set_approvers("acme", "web", ["alice@example.com"])
    assert (await sys.authorizer.confirm(link.token)).ok


async def test_signed_token_for_an_approver_never_listed(sys: System) -> None:
    i = await validated_incident(sys)
    token, _ = sys.signer.issue(
        tenant="acme", incident=i, action="x", approver="engineer:web:eve@example.com", ttl_s=60
    )
    r = await sys.authorizer.confirm(token)
    assert (r.status, r.problem) == (403, Problem.NOT_APPROVER)
    assert (await entries(sys, "acme", "refused"))[-1].actor == "engineer:web:eve@example.com"


async def test_wrong_tenant(sys: System) -> None:
    await add_tenant(sys, "globex")
    i = await validated_incident(sys, "acme")
    # A validly signed token naming acme's incident under another tenant.
    token, _ = sys.signer.issue(tenant="globex", incident=i, action="x", approver=ALICE, ttl_s=60)
    r = await sys.authorizer.confirm(token)
    assert (r.status, r.problem) == (403, Problem.WRONG_TENANT)
    assert (await entries(sys, "globex", "refused"))[-1].data["problem"] == "wrong_tenant"
    # A caller authenticated as globex redeeming acme's link.
    link = await sys.authorizer.issue("acme", i, ALICE)
    r = await sys.authorizer.confirm(link.token, expected_tenant="globex")
    assert (r.status, r.problem) == (403, Problem.WRONG_TENANT)
    assert (await sys.engine.get("acme", i)).stage is Stage.VALIDATED  # type: ignore[union-attr]


async def test_forged_token_is_ledgered_under_its_claimed_tenant_or_system(sys: System) -> None:
    i = await validated_incident(sys)
    claims = {"iss": "alertengine", "tenant": "acme", "incident": i, "action": "x",
              "approver": ALICE, "jti": "j1", "iat": 1, "exp": 2_000_000_000}  # fmt: skip
    forged = jwt.encode(claims, b"w" * 40, algorithm="HS256")
    r = await sys.authorizer.confirm(forged)
    assert (r.status, r.problem) == (401, Problem.FORGED)
    e = (await entries(sys, "acme", "refused"))[-1]
    assert e.incident_id == i and e.data["jti"] == "j1" and e.actor == "anonymous"
    forged2 = jwt.encode({**claims, "tenant": "nobody"}, b"w" * 40, algorithm="HS256")
    assert (await sys.authorizer.confirm(forged2)).status == 401
    e2 = (await entries(sys, "_system", "refused"))[-1]
    assert e2.data["claimed_tenant"] == "nobody" and e2.incident_id is None
    assert (await sys.engine.get("acme", i)).stage is Stage.VALIDATED  # type: ignore[union-attr]


async def test_expired_token_is_410_and_ledgered(sys: System) -> None:
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, ALICE)
    assert isinstance(sys.clock, VirtualClock)
    sys.clock.set(link.expires_at)
    r = await sys.authorizer.confirm(link.token)
    assert (r.status, r.problem) == (410, Problem.EXPIRED)
    assert (await entries(sys, "acme", "refused"))[-1].data["problem"] == "expired"


async def test_not_awaiting_approval(sys: System) -> None:
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, ALICE)
    await sys.engine.transition("acme", i, Change(Stage.RECOVERED, "policy", "healthy again"))
    r = await sys.authorizer.confirm(link.token)
    assert (r.status, r.problem) == (409, Problem.NOT_AWAITING)


async def test_preview_has_no_side_effects(sys: System) -> None:
    i = await validated_incident(sys, diagnosis={"summary": "bad deploy", "confidence": 0.8})
    link = await sys.authorizer.issue("acme", i, ALICE)
    before = await sys.ledger.count("acme")
    for _ in range(20):
        p = await sys.authorizer.preview(link.token)
        assert p.ok and p.incident_id == i and p.stage == "VALIDATED"
    assert p.service == "checkout" and p.action == "restart workers"
    assert p.detection["error_rate"] == 0.3 and p.diagnosis == {"summary": "bad deploy",
                                                                "confidence": 0.8}  # fmt: skip
    assert (p.approvals, p.approvals_required, p.expires_at) == ((), 1, link.expires_at)
    assert await sys.ledger.count("acme") == before
    assert await sys.store.claimed("token:" + link.jti) is None
    bad = await sys.authorizer.preview("garbage")
    assert (bad.ok, bad.problem, bad.status) == (False, Problem.MALFORMED, 400)
    assert await sys.ledger.count("_system") == 0
    await sys.authorizer.confirm(link.token)
    used = await sys.authorizer.preview(link.token)
    assert used.problem is Problem.USED and used.message == "This approval was already used."


async def test_quorum_of_two_distinct_approvers(sys: System, tmp_path: Path) -> None:
    s = await build_system(clock=VirtualClock(), policy=Policy(approvals_required=2))
    await add_tenant(s)
    i = await validated_incident(s)
    a = await s.authorizer.issue("acme", i, ALICE)
    a2 = await s.authorizer.issue("acme", i, ALICE)
    b = await s.authorizer.issue("acme", i, BOB)
    first = await s.authorizer.confirm(a.token)
    assert (first.ok, first.status, first.authorized, first.waiting_for) == (True, 202, False, 1)
    assert "waiting for 1 more" in first.message
    assert (await s.engine.get("acme", i)).stage is Stage.VALIDATED  # type: ignore[union-attr]
    same = await s.authorizer.confirm(a2.token)  # the same person again does not count
    assert (same.status, same.problem) == (409, Problem.ALREADY_APPROVED)
    second = await s.authorizer.confirm(b.token)
    assert second.authorized and second.approvals == 2
    state = await s.engine.get("acme", i)
    assert state is not None and state.stage is Stage.AUTHORIZED
    assert set(state.approvers) == {ALICE, BOB}
    await s.close()


async def test_quorum_race_between_two_approvers_still_authorizes() -> None:
    s = await build_system(clock=VirtualClock(), policy=Policy(approvals_required=2))
    await add_tenant(s)
    i = await validated_incident(s)
    a = await s.authorizer.issue("acme", i, ALICE)
    c = await s.authorizer.issue("acme", i, CAROL)
    results = await asyncio.gather(s.authorizer.confirm(a.token), s.authorizer.confirm(c.token))
    assert all(r.ok for r in results)
    assert (await s.engine.get("acme", i)).stage is Stage.AUTHORIZED  # type: ignore[union-attr]


async def test_deployer_may_not_be_the_sole_approver() -> None:
    s = await build_system(clock=VirtualClock(), policy=Policy(forbid_deployer_sole_approval=True))
    await add_tenant(s)
    i = await validated_incident(
        s, diagnosis={"summary": "x", "commit": {"author_username": "alice@example.com"}}
    )
    link = await s.authorizer.issue("acme", i, ALICE)
    r = await s.authorizer.confirm(link.token)
    assert (r.status, r.problem) == (403, Problem.SELF_APPROVAL)
    other = await s.authorizer.issue("acme", i, CAROL)
    assert (await s.authorizer.confirm(other.token)).authorized


async def test_confirm_identity_from_a_chat_button(sys: System) -> None:
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, BOB)
    stranger = await sys.authorizer.confirm_identity("telegram", "999", f"ae:{link.jti}")
    assert (stranger.status, stranger.problem) == (403, Problem.NOT_APPROVER)
    r = await sys.authorizer.confirm_identity("telegram", "123456", f"ae:{link.jti}")
    assert r.authorized and r.approver == BOB
    again = await sys.authorizer.confirm_identity("telegram", "123456", f"ae:{link.jti}")
    assert again.problem is Problem.USED
    unknown = await sys.authorizer.confirm_identity("telegram", "123456", "ae:nope")
    assert unknown.status == 400


async def test_expire_due_expires_or_reproposes() -> None:
    clock = VirtualClock()
    s = await build_system(clock=clock, policy=Policy(token_ttl_s=60))
    await add_tenant(s)
    i = await validated_incident(s)
    await s.authorizer.issue("acme", i, ALICE)
    assert await s.authorizer.expire_due("acme") == []
    clock.set(clock.now() + 60)
    (out,) = await s.authorizer.expire_due("acme")
    assert (out.incident_id, out.action) == (i, "expired")
    state = await s.engine.get("acme", i)
    assert state is not None and state.stage is Stage.EXPIRED
    assert state.history[-1].actor == "policy"

    clock2 = VirtualClock()
    r = await build_system(clock=clock2, policy=Policy(token_ttl_s=60, expiry_action="repropose"))
    await add_tenant(r)
    j = await validated_incident(r)
    first = await r.authorizer.issue("acme", j, ALICE)
    clock2.set(clock2.now() + 61)
    (out,) = await r.authorizer.expire_due("acme")
    assert out.action == "reproposed" and out.jti and out.jti != first.jti
    st = await r.engine.get("acme", j)
    assert st is not None and st.stage is Stage.VALIDATED and st.reproposals == 1
    tok = (await entries(r, "acme", "token"))[-1]
    assert tok.decision == "reproposed" and tok.data["previous_jti"] == first.jti
    clock2.set(clock2.now() + 61)  # max_reproposals=1: the next time it expires
    (out,) = await r.authorizer.expire_due("acme")
    assert out.action == "expired"


def _hold_pre_checks_until(store: object, monkeypatch: pytest.MonkeyPatch, callers: int) -> None:
    """Order the real store's calls: every confirm's "already used?" pre-check answers
    (truthfully, from the store) only once ``callers`` confirms have all asked it, so each
    of them gets past the pre-check and only the atomic claim can stop the losers."""
    real = store.claimed  # type: ignore[attr-defined]
    asked = 0
    everyone_asked = asyncio.Event()

    async def claimed(key: str) -> str | None:
        nonlocal asked
        answer: str | None = await real(key)
        asked += 1
        if asked >= callers:
            everyone_asked.set()
        await asyncio.wait_for(everyone_asked.wait(), timeout=30)
        return answer

    monkeypatch.setattr(store, "claimed", claimed)


async def test_the_atomic_claim_refuses_a_confirm_that_passed_the_pre_check(
    sys: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two confirms of one link, both past the "already used?" pre-check before either
    claims: exactly one authorizes, the other is refused as used (409) and ledgered."""
    i = await validated_incident(sys)
    link = await sys.authorizer.issue("acme", i, ALICE)
    _hold_pre_checks_until(sys.store, monkeypatch, callers=2)
    results = await asyncio.gather(*(sys.authorizer.confirm(link.token) for _ in range(2)))
    assert sorted(r.authorized for r in results) == [False, True]
    (loser,) = [r for r in results if not r.ok]
    assert (loser.status, loser.problem) == (409, Problem.USED)
    (refusal,) = await entries(sys, "acme", "refused")
    assert refusal.data["problem"] == "used" and refusal.data["jti"] == link.jti
    assert refusal.incident_id == i and refusal.actor == ALICE
    assert len(await entries(sys, "acme", "approval")) == 1
    authorized = [e for e in await entries(sys, "acme", "transition") if e.stage == "AUTHORIZED"]
    assert len(authorized) == 1
    assert (await sys.ledger.verify("acme")).ok


async def test_the_atomic_claim_keeps_one_link_to_one_approval_under_a_quorum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With two approvals required, a link redeemed twice at once must not ledger two
    approvals for it: the second one is refused at the claim and the quorum still waits."""
    s = await build_system(clock=VirtualClock(), policy=Policy(approvals_required=2))
    try:
        await add_tenant(s)
        i = await validated_incident(s)
        link = await s.authorizer.issue("acme", i, ALICE)
        _hold_pre_checks_until(s.store, monkeypatch, callers=2)
        results = await asyncio.gather(*(s.authorizer.confirm(link.token) for _ in range(2)))
        assert sorted((r.status, r.problem) for r in results) == [
            (202, None),
            (409, Problem.USED),
        ]
        approvals = await entries(s, "acme", "approval")
        assert [e.data["jti"] for e in approvals] == [link.jti]
        (refusal,) = await entries(s, "acme", "refused")
        assert refusal.data["problem"] == "used"
        state = await s.engine.get("acme", i)
        assert state is not None and state.stage is Stage.VALIDATED
    finally:
        await s.close()
