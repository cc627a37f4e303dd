"""Recovery tokens: every forgery kind is refused with its own problem and HTTP status."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from alertengine.authorize.tokens import (
    Problem,
    SecretError,
    TokenError,
    TokenSigner,
    check_secret,
    peek,
    token_fingerprint,
)
from alertengine.clock import VirtualClock
from tests.authorize.harness import SECRET


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def signer(clock: VirtualClock) -> TokenSigner:
    return TokenSigner(SECRET, clock)


def issue(signer: TokenSigner, ttl: float = 300) -> tuple[str, dict[str, object]]:
    token, claims = signer.issue(
        tenant="acme", incident="inc-1", action="restart", approver="engineer:web:a", ttl_s=ttl
    )
    return token, claims.to_payload()


def refused(signer: TokenSigner, token: str) -> TokenError:
    with pytest.raises(TokenError) as info:
        signer.decode(token)
    return info.value


def test_round_trip_has_every_claim(signer: TokenSigner, clock: VirtualClock) -> None:
    token, payload = issue(signer)
    c = signer.decode(token)
    assert (c.tenant, c.incident, c.action, c.approver) == (
        "acme",
        "inc-1",
        "restart",
        "engineer:web:a",
    )
    assert c.exp - c.iat == 300 and c.iat == int(clock.now())
    assert payload["iss"] == "alertengine" and len(c.jti) >= 16
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "HS256", "typ": "JWT"}


def test_each_token_has_a_fresh_jti(signer: TokenSigner) -> None:
    assert len({signer.decode(issue(signer)[0]).jti for _ in range(50)}) == 50


def test_expiry_uses_the_injected_clock_with_zero_leeway(
    signer: TokenSigner, clock: VirtualClock
) -> None:
    token, _ = issue(signer, ttl=300)
    clock.set(clock.now() + 299)
    assert signer.decode(token).incident == "inc-1"
    clock.set(clock.now() + 1)
    err = refused(signer, token)
    assert err.problem is Problem.EXPIRED and err.status == 410
    assert err.claims is not None and err.claims.incident == "inc-1"


def test_forged_signature(signer: TokenSigner) -> None:
    _, payload = issue(signer)
    forged = jwt.encode(payload, b"x" * 40, algorithm="HS256")
    err = refused(signer, forged)
    assert (err.problem, err.status) == (Problem.FORGED, 401)
    assert err.unverified["tenant"] == "acme"  # readable for ledgering, never trusted


def test_tampered_payload_keeps_header_and_signature(signer: TokenSigner) -> None:
    token, payload = issue(signer)
    h, _, s = token.split(".")
    evil = f"{h}.{b64({**payload, 'tenant': 'other'})}.{s}"
    assert refused(signer, evil).problem is Problem.FORGED


def test_alg_none_is_refused(signer: TokenSigner) -> None:
    _, payload = issue(signer)
    for alg in ("none", "None", "NONE"):
        token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(payload)}."
        err = refused(signer, token)
        assert (err.problem, err.status) == (Problem.ALGORITHM, 401)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_hs512_with_the_right_secret_is_still_refused(signer: TokenSigner) -> None:
    _, payload = issue(signer)
    token = jwt.encode(payload, SECRET, algorithm="HS512")
    assert refused(signer, token).problem is Problem.ALGORITHM


def test_rs256_shaped_token_is_refused(signer: TokenSigner) -> None:
    _, payload = issue(signer)
    sig = base64.urlsafe_b64encode(b"\x01" * 256).rstrip(b"=").decode()
    token = f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(payload)}.{sig}"
    assert refused(signer, token).problem is Problem.ALGORITHM


def test_extra_header_fields_are_refused(signer: TokenSigner) -> None:
    _, payload = issue(signer)
    for extra in ({"kid": "../../dev/null"}, {"jku": "http://evil/"}, {"typ": "JOSE"}):
        token = jwt.encode(payload, SECRET, algorithm="HS256", headers=extra)
        assert refused(signer, token).problem is Problem.ALGORITHM


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.b.c", "!!.??.**", "x" * 5000, "e30.e30.e30.e30"]
)
def test_malformed(signer: TokenSigner, token: str) -> None:
    err = refused(signer, token)
    assert (err.problem, err.status) == (Problem.MALFORMED, 400)


def test_missing_claim_is_malformed_even_when_signed(signer: TokenSigner) -> None:
    _, payload = issue(signer)
    del payload["approver"]
    assert refused(signer, jwt.encode(payload, SECRET, algorithm="HS256")).problem is (
        Problem.MALFORMED
    )


def test_wrong_issuer_is_refused(signer: TokenSigner) -> None:
    _, payload = issue(signer)
    token = jwt.encode({**payload, "iss": "someone-else"}, SECRET, algorithm="HS256")
    assert refused(signer, token).problem is Problem.MALFORMED


def test_check_secret() -> None:
    with pytest.raises(SecretError, match="ALERT_SECRET is not set"):
        check_secret(None, demo=False)
    with pytest.raises(SecretError, match="only 10 bytes"):
        check_secret("0123456789", demo=False)
    assert check_secret("k" * 32, demo=False) == b"k" * 32
    demo = check_secret(None, demo=True)
    assert len(demo) == 32 and demo != check_secret(None, demo=True)


def test_peek_and_fingerprint_never_need_the_secret(signer: TokenSigner) -> None:
    token, _ = issue(signer)
    assert peek(token)["incident"] == "inc-1" and peek("junk") == {}
    fp = token_fingerprint(token)
    assert len(fp) == 16 and fp not in token
