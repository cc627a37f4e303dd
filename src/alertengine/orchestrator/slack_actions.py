"""What a Slack button press does to an incident. The route (notify/slack_webhook.py) has
checked Slack's signature and the timestamp already; this decides what the press means and
who pressed it.

Approve goes through the SAME path as a Telegram or WhatsApp button
(:meth:`Authorizer.confirm_as`: single use, stage, tenant, quorum, passkey); I'm on it
through :class:`Acknowledger`. The presser must be a person of the link's tenant by their
Slack member id (a ``slack`` channel whose address or ``user_id`` is that id); anyone else is
refused and ledgered under a keyed marker, never the raw id. Each press (its ``action_ts``,
presser, action and value) is taken once: a replayed request is refused and ledgered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from alertengine.authorize.service import Authorizer
from alertengine.engine import IncidentEngine
from alertengine.notify.slack import ACTION_ACK, ACTION_APPROVE
from alertengine.notify.slack_webhook import Interaction, Reply
from alertengine.orchestrator.ack import Acknowledger, link_ref
from alertengine.people import PersonRegistry
from alertengine.stores.base import StateStore
from alertengine.tenants import SYSTEM_TENANT

#: A press is remembered well past the 5 minutes a signed request stays acceptable.
REPLAY_TTL_S = 24 * 3600.0
VERBS = {ACTION_APPROVE: "approve", ACTION_ACK: "ack"}
PAUSED_TEXT = "AlertEngine cannot record decisions right now. Nothing was changed; try again soon."


def press_key(i: Interaction) -> str:
    """One key per press: Slack stamps each with its own ``action_ts``."""
    a = i.action
    raw = "\x00".join((a.action_ts, i.team_id, i.user_id, a.action_id, a.value))
    return "slack:press:" + hashlib.sha256(raw.encode()).hexdigest()


class SlackActions:
    def __init__(
        self,
        engine: IncidentEngine,
        authorizer: Authorizer,
        acknowledger: Acknowledger,
        people: PersonRegistry,
        store: StateStore,
        paused: Callable[[], str | None],
    ) -> None:
        self.engine, self.authorizer, self.ack = engine, authorizer, acknowledger
        self.people, self.store, self.paused = people, store, paused

    async def press(self, i: Interaction) -> Reply:
        verb = VERBS.get(i.action.action_id)
        if verb is None:
            # A link button ("Approve fix", "I'm on it" pages): Slack reports those presses
            # too and wants a 200; the page does the rest.
            return Reply()
        if self.paused() is not None:
            # Before anything is touched: the store or the ledger is what is down.
            return Reply(PAUSED_TEXT)
        if not await self.store.claim(press_key(i), REPLAY_TTL_S):
            await self.engine.record(
                SYSTEM_TENANT,
                None,
                kind="refused",
                actor="anonymous",
                decision="refused",
                reason="replayed Slack interaction (this press was already handled)",
                data={"via": "slack", "action_ts": i.action.action_ts[:64]},
            )
            return Reply("already handled", status=409)
        link = await link_ref(self.store, i.action.value)
        if link is None:
            await self.engine.record(
                SYSTEM_TENANT,
                None,
                kind="refused",
                actor="slack:unknown",
                decision="refused",
                reason=f"stale or unknown Slack {verb} button",
                data={"via": "slack", "ref": i.action.value[:64]},
            )
            return Reply("This button is no longer valid.")
        person = await self.people.find_by_channel(link.tenant_id, "slack", i.user_id)
        if person is None:
            marker = (
                await self.people.sender_marker(link.tenant_id, "slack", i.user_id)
                or "invalid-user"
            )
            await self.engine.record(
                link.tenant_id,
                link.incident_id,
                kind="refused",
                actor=f"slack:{marker}",
                decision="refused",
                reason=f"Slack {verb} from a user who is no person of this tenant",
                data={"via": "slack", "jti": link.jti, "sender_marker": marker},
            )
            return Reply("You are not an approver for this service.")
        if verb == "ack":
            acked = await self.ack.acknowledge(
                link.tenant_id, link.incident_id, person.actor, "slack"
            )
            return Reply(acked.message)
        return Reply(
            await self.authorizer.approve_in_chat(
                link.tenant_id, link.incident_id, link.jti, person.actor, "slack"
            )
        )
