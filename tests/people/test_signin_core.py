"""The pure parts of person sign-in (codes, token shapes, hashes) with Hypothesis, and the
service's once-only promises under concurrency, on the in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from alertengine.clock import VirtualClock
from alertengine.people import Channel, Person, PersonRegistry
from alertengine.people.signin import (
    TOKEN_PREFIX,
    USER_CODE_ALPHABET,
    SignInError,
    SignIns,
    format_user_code,
    hash_ref,
    new_token,
    new_user_code,
    parse_user_code,
    same_hash,
    secret_hash,
    token_shape_ok,
)
from alertengine.stores import MemoryStateStore

codes = st.text(alphabet=USER_CODE_ALPHABET, min_size=8, max_size=8)


@given(codes, st.sampled_from(["", " ", "-", " - "]), st.booleans())
def test_a_user_code_reads_back_however_it_is_typed(code: str, sep: str, lower: bool) -> None:
    shown = format_user_code(code)
    assert len(shown) == 9 and shown[4] == "-"
    typed = (code[:4] + sep + code[4:]).lower() if lower else code[:4] + sep + code[4:]
    assert parse_user_code(shown) == code
    assert parse_user_code(typed) == code


@given(st.text(max_size=20))
def test_anything_else_is_not_a_user_code(text: str) -> None:
    parsed = parse_user_code(text)
    if parsed is not None:
        assert len(parsed) == 8 and set(parsed) <= set(USER_CODE_ALPHABET)


@given(st.integers(min_value=0, max_value=2**32))
def test_new_user_codes_always_parse(seed: int) -> None:
    import random

    rng = random.Random(seed)
    code = new_user_code(rng.randrange)
    assert parse_user_code(format_user_code(code)) == code
    assert not set(code) & set("AEIOUY01")  # no vowels (no words), no 0/O 1/I confusion


@given(st.text(max_size=80))
def test_token_shape_accepts_only_our_tokens(text: str) -> None:
    if token_shape_ok(text):
        assert text.startswith(TOKEN_PREFIX)
    assert token_shape_ok(new_token())


@given(st.text(min_size=1, max_size=60), st.text(min_size=1, max_size=60))
def test_hashes_tell_secrets_apart_and_refs_reveal_no_secret(a: str, b: str) -> None:
    assert same_hash(secret_hash(a), secret_hash(b)) == (a == b)
    ref = hash_ref(a)
    assert len(ref) == 12 and secret_hash(a).startswith(ref)
    assert hash_ref(secret_hash(a)) == ref


class Sent:
    def __init__(self) -> None:
        self.links: list[str] = []

    async def __call__(self, tenant: str, person: Person, url: str, code: str) -> list[str]:
        self.links.append(url)
        return [c.kind for c in person.channels]


async def service() -> tuple[SignIns, Sent, list[tuple[str, str, str]], VirtualClock]:
    clock = VirtualClock(1_000_000.0)
    store = MemoryStateStore(clock)
    log: list[tuple[str, str, str]] = []

    async def record(
        tenant: str, kind: str, actor: str, decision: str, reason: str, data: Mapping[str, Any]
    ) -> None:
        log.append((kind, actor, decision))

    async def people_record(*_: Any) -> None:
        return None

    people = PersonRegistry(store, people_record)
    await people.add("acme", Person("alice", "Alice", (Channel("telegram", "1001"),)), actor="t")
    sent = Sent()
    return SignIns(store, clock, people, record, sent), sent, log, clock


async def test_racing_answers_and_polls_win_once() -> None:
    s, sent, log, _ = await service()
    p = await s.request(
        "acme", "alice", requester="tenant:acme", client="cli", describe="t",
        confirm_url=lambda c: f"x?c={c}",
    )  # fmt: skip
    code = sent.links[-1].split("c=")[1]
    answers = await asyncio.gather(
        *(s.answer(code, confirm=True) for _ in range(8)), return_exceptions=True
    )
    assert sum(not isinstance(a, SignInError) for a in answers) == 1
    polls = await asyncio.gather(
        *(s.poll(p.device_code, "acme", "tenant:acme") for _ in range(8)), return_exceptions=True
    )
    tokens = [x.token for x in polls if not isinstance(x, BaseException)]
    assert len(tokens) == 1 and tokens[0].startswith(TOKEN_PREFIX)
    assert [d for k, _, d in log if k == "signin"].count("token issued") == 1
    who = await s.verify(tokens[0])
    assert who.actor == "person:alice" and who.tenant_id == "acme"


async def test_a_voice_only_person_gets_no_link() -> None:
    s, sent, log, _ = await service()
    await s.people.add("acme", Person("vic", "Vic", (Channel("voice", "+15550001234"),)), actor="t")
    try:
        await s.request(
            "acme", "vic", requester="tenant:acme", client="cli", describe="t",
            confirm_url=lambda c: c,
        )  # fmt: skip
    except SignInError as exc:
        assert exc.status == 409
    else:
        raise AssertionError("a voice-only person was sent a link")
    assert sent.links == [] and log[-1][0] == "refused"
