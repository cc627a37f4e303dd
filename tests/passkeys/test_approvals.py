"""Passkey approvals on the real authorizer, with a software authenticator (real P-256 keys,
real WebAuthn structures): what verifies is approved with its proof ledgered; every way an
assertion can be wrong is refused *and* ledgered, naming why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alertengine.authorize.tokens import Problem
from alertengine.incidents import Stage
from alertengine.passkeys.service import PasskeyError
from alertengine.policy import Policy
from tests.authorize.harness import backend_params, entries, validated_incident
from tests.passkeys.softkey import SoftAuthenticator
from tests.passkeys.support import ALICE, BOB, MALLORY, PasskeySystem, build_passkey_system


@pytest.fixture
async def pk(tmp_path: Path) -> AsyncIterator[PasskeySystem]:
    p = await build_passkey_system("memory", tmp_path)
    yield p
    await p.sys.close()


async def _stage(pk: PasskeySystem, incident: str) -> Stage:
    await pk.sys.engine.refresh("acme")
    state = await pk.sys.engine.get("acme", incident)
    assert state is not None
    return state.stage


@pytest.mark.parametrize("backend", backend_params())
async def test_enrolled_passkey_approves_and_the_ledger_holds_key_and_proof(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_server").url if backend == "redis" else None
    pk = await build_passkey_system(backend, tmp_path, redis_url=redis_url)
    try:
        auth = SoftAuthenticator(counter=7)
        cred = await pk.enroll("alice", auth)
        i = await validated_incident(pk.sys)
        result = await pk.approve(i, ALICE, auth)
        assert result.status == 200 and result.authorized, result
        assert await _stage(pk, i) is Stage.AUTHORIZED
        log = await entries(pk.sys, "acme")
        enrolled = [e for e in log if e.kind == "passkey" and e.decision == "enrolled"]
        assert len(enrolled) == 1 and enrolled[0].actor == "person:alice"
        assert enrolled[0].data["public_key_cose"] == cred.public_key
        assert enrolled[0].data["rp_id"] == "localhost"
        approval = next(e for e in log if e.kind == "approval")
        proof = approval.data["passkey"]
        assert proof["credential_id"] == cred.credential_id and proof["sign_count"] == 8
        assert {"authenticator_data", "client_data_json", "signature"} <= set(proof)
        # the counter moved forward in the store too
        stored = await pk.passkeys.credentials.get("acme", cred.credential_id)
        assert stored is not None and stored.sign_count == 8
    finally:
        await pk.sys.close()


async def test_an_ed25519_security_key_approves_too(pk: PasskeySystem) -> None:
    auth = SoftAuthenticator.ed25519(counter=3)
    await pk.enroll("alice", auth)
    i = await validated_incident(pk.sys)
    assert (await pk.approve(i, ALICE, auth)).authorized
    enrolled = [e for e in await entries(pk.sys, "acme") if e.decision == "enrolled"]
    assert enrolled[0].data["public_key_cose"]
    j = await validated_incident(pk.sys, service="billing")
    assert (await pk.approve(j, ALICE, auth, count=4)).status == 403  # 4 was spent above
    await _refusal(pk, "sign_count")


async def test_confirm_without_assertion_is_refused_and_ledgered(pk: PasskeySystem) -> None:
    await pk.enroll("alice", SoftAuthenticator())
    i = await validated_incident(pk.sys)
    link = await pk.sys.authorizer.issue("acme", i, ALICE)
    result = await pk.sys.authorizer.confirm(link.token)
    assert result.status == 401 and result.problem is Problem.PASSKEY_REQUIRED
    assert await _stage(pk, i) is Stage.VALIDATED
    refused = await pk.refused()
    assert refused[-1].data["problem"] == "passkey_required"
    assert refused[-1].incident_id == i and refused[-1].actor == ALICE
    # the bearer link alone was not spent: alice can still approve with her device
    assert (await pk.sys.authorizer.preview(link.token)).ok


async def _refusal(pk: PasskeySystem, result_problem: str) -> None:
    refused = await pk.refused()
    assert refused, "a refusal must be ledgered"
    assert refused[-1].data["problem"] == "passkey_refused"
    assert refused[-1].data["passkey_problem"] == result_problem, refused[-1].data


async def test_cloned_authenticator_sign_count_regression_is_refused(pk: PasskeySystem) -> None:
    auth = SoftAuthenticator(counter=10)
    await pk.enroll("alice", auth)
    i1 = await validated_incident(pk.sys, service="checkout")
    assert (await pk.approve(i1, ALICE, auth)).authorized  # counter now 11
    i2 = await validated_incident(pk.sys, service="billing")
    # A clone made before that approval still says 11 (or less): the device moved on.
    r = await pk.approve(i2, ALICE, auth, count=11)
    assert r.status == 403 and r.problem is Problem.PASSKEY_REFUSED
    await _refusal(pk, "sign_count")
    r = await pk.approve(i2, ALICE, auth, count=3)
    await _refusal(pk, "sign_count")
    assert await _stage(pk, i2) is Stage.VALIDATED
    assert (await pk.approve(i2, ALICE, auth, count=12)).authorized


async def test_two_copies_racing_with_one_counter_value_only_one_wins(pk: PasskeySystem) -> None:
    """Both copies of a cloned key present counter 5 on two incidents at once: the atomic
    claim on the counter value lets exactly one through."""
    import asyncio

    auth = SoftAuthenticator(counter=4)
    await pk.enroll("alice", auth)
    a = await validated_incident(pk.sys, service="checkout")
    b = await validated_incident(pk.sys, service="billing")
    results = await asyncio.gather(
        pk.approve(a, ALICE, auth, count=5), pk.approve(b, ALICE, auth, count=5)
    )
    assert sorted(r.status for r in results) == [200, 403]


async def test_a_double_submit_is_used_not_a_clone(tmp_path: Path) -> None:
    """Impatient taps send one assertion several times at once (SQLite: real thread hops,
    so the requests interleave): one approves, the rest are 'used', none looks like a clone."""
    import asyncio

    pk = await build_passkey_system("sqlite", tmp_path)
    try:
        auth = SoftAuthenticator(counter=4)
        await pk.enroll("alice", auth)
        i = await validated_incident(pk.sys)
        link = await pk.sys.authorizer.issue("acme", i, ALICE)
        assertion = auth.get_for(await pk.options_for(link.token, "alice"))
        results = await asyncio.gather(
            *(pk.sys.authorizer.confirm(link.token, assertion=assertion) for _ in range(5))
        )
        assert sorted(r.status for r in results) == [200, 409, 409, 409, 409]
        assert {r.problem for r in results} == {None, Problem.USED}
    finally:
        await pk.sys.close()


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"rp_id": "evil.example"}, "rp_id"),
        ({"origin": "https://evil.example"}, "origin"),
        ({"origin": "http://localhost:9999"}, "origin"),
        ({"user_verified": False}, "user_verification"),
    ],
)
async def test_wrong_rp_id_or_origin_is_refused(
    pk: PasskeySystem, kw: dict[str, object], problem: str
) -> None:
    auth = SoftAuthenticator()
    await pk.enroll("alice", auth)
    i = await validated_incident(pk.sys)
    r = await pk.approve(i, ALICE, auth, **kw)
    assert r.status == 403 and r.problem is Problem.PASSKEY_REFUSED
    await _refusal(pk, problem)
    assert await _stage(pk, i) is Stage.VALIDATED


async def test_assertion_for_another_incident_is_refused(pk: PasskeySystem) -> None:
    auth = SoftAuthenticator()
    await pk.enroll("alice", auth)
    i1 = await validated_incident(pk.sys, service="checkout")
    i2 = await validated_incident(pk.sys, service="billing")
    l1 = await pk.sys.authorizer.issue("acme", i1, ALICE)
    l2 = await pk.sys.authorizer.issue("acme", i2, ALICE)
    for_i1 = auth.get_for(await pk.options_for(l1.token, "alice"))
    r = await pk.sys.authorizer.confirm(l2.token, assertion=for_i1)
    assert r.status == 403
    await _refusal(pk, "challenge")
    assert await _stage(pk, i2) is Stage.VALIDATED


async def test_replayed_assertion_is_refused(pk: PasskeySystem) -> None:
    auth = SoftAuthenticator()
    await pk.enroll("alice", auth)
    i = await validated_incident(pk.sys)
    first = await pk.sys.authorizer.issue("acme", i, ALICE)
    captured = auth.get_for(await pk.options_for(first.token, "alice"))
    # Captured before it arrived; alice is sent a fresh link for the same incident.
    second = await pk.sys.authorizer.issue("acme", i, ALICE)
    r = await pk.sys.authorizer.confirm(second.token, assertion=captured)
    assert r.status == 403
    await _refusal(pk, "challenge")
    # The original pair works once; replaying it after is refused as used.
    assert (await pk.sys.authorizer.confirm(first.token, assertion=captured)).authorized
    again = await pk.sys.authorizer.confirm(first.token, assertion=captured)
    assert again.status == 409 and again.problem is Problem.USED
    assert (await pk.refused())[-1].data["problem"] == "used"


async def test_revoked_credential_is_refused_and_a_new_one_works(pk: PasskeySystem) -> None:
    lost = SoftAuthenticator()
    cred = await pk.enroll("alice", lost)
    await pk.passkeys.revoke("acme", cred.credential_id, actor="admin:cli")
    i = await validated_incident(pk.sys)
    link = await pk.sys.authorizer.issue("acme", i, ALICE)
    with pytest.raises(PasskeyError, match="no passkey enrolled"):  # the page offers nothing
        await pk.options_for(link.token, "alice")
    # ... but whoever holds the lost device can still sign the bound challenge:
    challenge = pk.passkeys.challenge_for(
        pk.sys.signer.decode(link.token), "alice", pk.sys.engine.policy_for("acme").version
    )
    r = await pk.sys.authorizer.confirm(link.token, assertion=lost.get(challenge))
    assert r.status == 403
    await _refusal(pk, "revoked")
    log = await entries(pk.sys, "acme")
    assert any(e.kind == "passkey" and e.decision == "revoked" for e in log)
    new = SoftAuthenticator()
    await pk.enroll("alice", new)
    assert (await pk.approve(i, ALICE, new)).authorized


async def test_someone_elses_or_unknown_credential_is_refused(pk: PasskeySystem) -> None:
    """The admin (mallory, an approver with her own passkey) holds alice's forwarded link:
    her device cannot make alice's approval; neither can a key nobody enrolled."""
    await pk.enroll("alice", SoftAuthenticator())
    admins = SoftAuthenticator()
    await pk.enroll("mallory", admins)
    i = await validated_incident(pk.sys)
    link = await pk.sys.authorizer.issue("acme", i, ALICE)
    challenge_for_alice = pk.passkeys.challenge_for(
        pk.sys.signer.decode(link.token), "alice", pk.sys.engine.policy_for("acme").version
    )
    r = await pk.sys.authorizer.confirm(link.token, assertion=admins.get(challenge_for_alice))
    assert r.status == 403
    await _refusal(pk, "wrong_person")
    stranger = SoftAuthenticator()
    r = await pk.sys.authorizer.confirm(link.token, assertion=stranger.get(challenge_for_alice))
    await _refusal(pk, "unknown_credential")
    assert await _stage(pk, i) is Stage.VALIDATED


async def test_forged_signature_is_refused(pk: PasskeySystem) -> None:
    auth = SoftAuthenticator()
    await pk.enroll("alice", auth)
    i = await validated_incident(pk.sys)
    link = await pk.sys.authorizer.issue("acme", i, ALICE)
    assertion = auth.get_for(await pk.options_for(link.token, "alice"))
    # Another key signs the same bytes under alice's credential id.
    impostor = SoftAuthenticator(credential_id=auth.credential_id)
    assertion["response"]["signature"] = impostor.get_for(
        await pk.options_for(link.token, "alice")
    )["response"]["signature"]
    r = await pk.sys.authorizer.confirm(link.token, assertion=assertion)
    assert r.status == 403
    await _refusal(pk, "signature")


async def test_in_chat_button_cannot_approve_under_require_passkey(pk: PasskeySystem) -> None:
    await pk.enroll("123456", SoftAuthenticator())
    i = await validated_incident(pk.sys)
    link = await pk.sys.authorizer.issue("acme", i, "engineer:telegram:123456")
    r = await pk.sys.authorizer.confirm_identity("telegram", "123456", f"ae:{link.jti}")
    assert r.status == 401 and r.problem is Problem.PASSKEY_REQUIRED
    assert (await pk.refused())[-1].data["via"] == "telegram"
    assert await _stage(pk, i) is Stage.VALIDATED


async def test_two_person_rule_with_passkeys_each_ledgered(pk: PasskeySystem) -> None:
    await pk.sys.close()
    pk2 = await build_passkey_system(policy=Policy(require_passkey=True, approvals_required=2))
    try:
        a, b = SoftAuthenticator(), SoftAuthenticator()
        await pk2.enroll("alice", a)
        await pk2.enroll("bob", b)
        i = await validated_incident(pk2.sys)
        assert (await pk2.approve(i, ALICE, a)).status == 202
        assert (await pk2.approve(i, BOB, b)).authorized
        approvals = [e for e in await entries(pk2.sys, "acme") if e.kind == "approval"]
        assert [e.data["passkey"]["person"] for e in approvals] == ["alice", "bob"]
    finally:
        await pk2.sys.close()


async def test_policy_per_action_only_asks_for_the_named_actions(tmp_path: Path) -> None:
    policy = Policy(require_passkey=True, passkey_actions=("rollback",))
    pk = await build_passkey_system(policy=policy)
    try:
        i = await validated_incident(pk.sys, action="restart workers")
        link = await pk.sys.authorizer.issue("acme", i, MALLORY)
        assert not (await pk.sys.authorizer.preview(link.token)).passkey_required
        assert (await pk.sys.authorizer.confirm(link.token)).authorized
        j = await validated_incident(pk.sys, service="billing", action="rollback")
        link = await pk.sys.authorizer.issue("acme", j, MALLORY)
        assert (await pk.sys.authorizer.preview(link.token)).passkey_required
        assert (await pk.sys.authorizer.confirm(link.token)).problem is Problem.PASSKEY_REQUIRED
    finally:
        await pk.sys.close()


async def test_without_the_policy_links_approve_as_before(tmp_path: Path) -> None:
    pk = await build_passkey_system(policy=Policy())
    try:
        i = await validated_incident(pk.sys)
        link = await pk.sys.authorizer.issue("acme", i, ALICE)
        r = await pk.sys.authorizer.confirm(link.token)
        assert r.authorized
        approval = next(e for e in await entries(pk.sys, "acme") if e.kind == "approval")
        assert "passkey" not in approval.data
    finally:
        await pk.sys.close()
