"""People: a tenant's approvers as persons, each with channels and GitHub logins.

``alertengine.people`` is the import point: the pure model (:class:`Person`,
:class:`Channel`, :func:`person_actor`, :func:`parse_person_actor`) and the store-backed
:class:`PersonRegistry` (``async get(tenant_id, person_id) -> Person | None``).
"""

from alertengine.people.model import (
    CHANNEL_KINDS,
    PERSON_PREFIX,
    Channel,
    LegacyApprover,
    Person,
    PersonError,
    channel_marker,
    channel_problem,
    find_by_channel,
    ledger_view,
    parse_person_actor,
    people_from_legacy,
    person_actor,
    person_id_problem,
    shared_addresses,
)
from alertengine.people.registry import PersonRegistry, Record, ledger_recorder

__all__ = [
    "CHANNEL_KINDS",
    "PERSON_PREFIX",
    "Channel",
    "LegacyApprover",
    "Person",
    "PersonError",
    "PersonRegistry",
    "Record",
    "channel_marker",
    "channel_problem",
    "find_by_channel",
    "ledger_recorder",
    "ledger_view",
    "parse_person_actor",
    "people_from_legacy",
    "person_actor",
    "person_id_problem",
    "shared_addresses",
]
