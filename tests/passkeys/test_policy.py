"""``require_passkey`` / ``passkey_actions``: from a tenant's table and from the environment,
part of the policy version, and the pure rule of which actions need a passkey."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertengine.orchestrator.config import ConfigError, parse_config
from alertengine.passkeys.binding import approval_challenge, person_of
from alertengine.policy import Policy, PolicyError, load_policy


def test_tenant_table_and_environment() -> None:
    cfg = parse_config(
        {
            "orchestrator": {"base_url": "https://ae.example.com"},
            "tenants": [
                {
                    "id": "acme",
                    "policy": {"require_passkey": True, "passkey_actions": ["rollback"]},
                },
                {"id": "beta"},
            ],
        }
    )
    acme, beta = cfg.policy_for("acme", {}), cfg.policy_for("beta", {})
    assert acme.require_passkey and acme.passkey_actions == ("rollback",)
    assert not beta.require_passkey
    assert acme.version != beta.version  # an auditor sees the rule in the version
    env = {"POLICY_REQUIRE_PASSKEY": "true", "POLICY_PASSKEY_ACTIONS": "rollback, restart"}
    assert load_policy(env).passkey_actions == ("rollback", "restart")
    assert load_policy({"POLICY_PASSKEY_ACTIONS": '["a b"]'}).passkey_actions == ("a b",)
    with pytest.raises(PolicyError, match="passkey_actions"):
        load_policy({"POLICY_PASSKEY_ACTIONS": "[not json"})
    with pytest.raises(ConfigError, match="require_passkey"):
        parse_config({"tenants": [{"id": "acme", "policy": {"require_passkey": "maybe"}}]})


@pytest.mark.parametrize(
    ("base_url", "why"),
    [
        ("http://127.0.0.1:8700", "must be a domain name, not '127.0.0.1'"),
        ("https://[::1]:8700", "must be a domain name"),
        ("http://ae.example.com", "only on https:// pages"),
    ],
)
def test_a_base_url_browsers_refuse_passkeys_on_stops_start_up(base_url: str, why: str) -> None:
    tenants = [{"id": "acme", "policy": {"require_passkey": True}}]
    with pytest.raises(ConfigError, match=r"orchestrator\.base_url: tenant acme requires") as err:
        parse_config({"orchestrator": {"base_url": base_url}, "tenants": tenants})
    assert why in str(err.value)
    # Without the policy the same URL is fine, and https / http://localhost are fine with it.
    parse_config({"orchestrator": {"base_url": base_url}, "tenants": [{"id": "acme"}]})
    for ok in ("https://ae.example.com", "http://localhost:8700"):
        parse_config({"orchestrator": {"base_url": ok}, "tenants": tenants})


@given(st.booleans(), st.lists(st.text(min_size=1), max_size=3), st.text(min_size=1))
def test_which_actions_need_a_passkey(require: bool, actions: list[str], action: str) -> None:
    expected = require and (not actions or action in actions)
    policy = Policy(require_passkey=require, passkey_actions=tuple(actions))
    assert policy.requires_passkey(action) is expected


_field = st.text(max_size=20)


@given(_field, _field, _field, _field, _field, _field, st.integers(0, 5), _field)
def test_the_challenge_changes_with_every_field(
    tenant: str, incident: str, action: str, jti: str, version: str, person: str, k: int, other: str
) -> None:
    fields = {"tenant": tenant, "incident": incident, "action": action, "jti": jti,
              "policy_version": version, "person": person}  # fmt: skip
    name = sorted(fields)[k]
    changed = {**fields, name: fields[name] + "x" + other}
    assert approval_challenge(**fields) == approval_challenge(**dict(fields))
    assert approval_challenge(**fields) != approval_challenge(**changed)


def test_person_of_actor_shapes() -> None:
    assert person_of("person:alice") == "alice"
    assert person_of("engineer:web:alice") == "alice"
    assert person_of("engineer:telegram:123456") == "123456"
    # No field boundary can be shifted: the encoding is a JSON array, not a concatenation.
    assert approval_challenge(
        tenant="a", incident="b:c", action="x", jti="j", policy_version="v", person="p"
    ) != approval_challenge(
        tenant="a:b", incident="c", action="x", jti="j", policy_version="v", person="p"
    )
