"""What a phone does to an incident: a WhatsApp quick-reply press or reply, a key pressed
during a call, a call's status. The routes (notify/twilio_webhook.py) have checked Twilio's
signature already; this decides what the message means and who sent it.

A WhatsApp Approve goes through the SAME path as a Telegram button
(:meth:`Authorizer.confirm_as`: single use, stage, tenant, quorum, passkey); Acknowledge
through :class:`Acknowledger`. The sender must be a person of the incident's tenant by their
registered number; the number itself never reaches the ledger (a keyed marker does). A call
only acknowledges: nothing on the keypad approves. A call that ends unanswered (busy,
no-answer, failed, canceled) is handed to ``unanswered`` (the Notifier's fall-over).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from alertengine.authorize.service import Authorizer
from alertengine.engine import IncidentEngine
from alertengine.notify.twilio import LAST_REF, SessionWindows, bare_number
from alertengine.notify.twilio_webhook import Reply
from alertengine.orchestrator.ack import Acknowledger, link_ref
from alertengine.people import PersonRegistry
from alertengine.refusals.gate import RefusalGate
from alertengine.stores.base import StateStore
from alertengine.tenants import SYSTEM_TENANT

#: A MessageSid / CallSid is claimed this long: Twilio retries within minutes, never days.
REPLAY_TTL_S = 7 * 24 * 3600.0
#: (tenant, incident, jti, CallSid, CallStatus, number called) -> whether it fell over.
Unanswered = Callable[[str, str, str, str, str, str], Awaitable[bool]]
VERBS = {"approve": "approve", "ack": "ack", "details": "details"}
#: Typed replies understood without a button (case-insensitive).
TYPED = {"approve": "approve", "yes": "approve", "ack": "ack", "on it": "ack", "details": "details"}


def parse_press(params: dict[str, str]) -> tuple[str, str]:
    """(verb, ref) from a quick-reply payload (``approve:<jti>``) or a typed reply
    (``approve``; ``approve <jti>``); ("", "") when it is neither."""
    payload = params.get("ButtonPayload", "").strip()
    if payload:
        verb, _, ref = payload.partition(":")
        return (VERBS.get(verb.lower(), ""), ref.strip())
    words = params.get("Body", "").strip().lower().split()
    if not words:
        return "", ""
    if len(words) >= 2 and " ".join(words[:2]) in TYPED:
        return TYPED[" ".join(words[:2])], ""
    verb = TYPED.get(words[0], "")
    return verb, (words[1] if verb and len(words) == 2 else "")


class PhoneActions:
    #: A call that ended unanswered falls over (wired to ``Notifier.call_unanswered``).
    unanswered: Unanswered | None = None

    def __init__(
        self,
        engine: IncidentEngine,
        authorizer: Authorizer,
        acknowledger: Acknowledger,
        people: PersonRegistry,
        store: StateStore,
        windows: SessionWindows,
        paused: Callable[[], str | None],
    ) -> None:
        self.engine, self.authorizer, self.ack = engine, authorizer, acknowledger
        self.people, self.store, self.windows, self.paused = people, store, windows, paused
        #: Refusals that name no tenant (a replay, an unknown button) go through the budget.
        self.refusals = RefusalGate.passthrough(engine.record)

    async def _replayed(self, sid: str, kind: str) -> bool:
        return not sid or not await self.store.claim(f"twilio:{kind}:{sid}", REPLAY_TTL_S)

    async def whatsapp(self, params: dict[str, str], _ref: str) -> Reply:
        sid, number = params.get("MessageSid", ""), bare_number(params.get("From", ""))
        if await self._replayed(sid, "msg"):
            await self.refusals.record(
                "replayed or unnamed message",
                SYSTEM_TENANT,
                None,
                kind="refused",
                actor="anonymous",
                decision="refused",
                reason="replayed or unnamed Twilio message (MessageSid already seen)",
                data={"via": "whatsapp", "message_sid": sid[:64]},
            )
            return Reply("already handled", status=409)
        await self.windows.inbound(number)  # the person wrote: free-form text may follow
        verb, ref = parse_press(params)
        if not verb:
            return Reply("Reply APPROVE, ACK or DETAILS, or use the buttons under the alert.")
        if not ref:
            doc = await self.store.get(LAST_REF, self.windows.key_of(number))
            ref = str(doc.get("ref", "")) if doc else ""
        link = await link_ref(self.store, ref)
        if link is None:
            await self.refusals.record(
                "unknown button",
                SYSTEM_TENANT,
                None,
                kind="refused",
                actor="whatsapp:unknown",
                decision="refused",
                reason=f"stale or unknown WhatsApp {verb} button",
                data={"via": "whatsapp", "ref": ref[:64]},
            )
            return Reply("This button is no longer valid.")
        person = await self.people.find_by_channel(link.tenant_id, "whatsapp", number)
        if person is None:
            marker = (
                await self.people.sender_marker(link.tenant_id, "whatsapp", number)
                or "invalid-number"
            )
            await self.engine.record(
                link.tenant_id,
                link.incident_id,
                kind="refused",
                actor=f"whatsapp:{marker}",
                decision="refused",
                reason=f"WhatsApp {verb} from a number that is no person of this tenant",
                data={"via": "whatsapp", "jti": link.jti, "sender_marker": marker},
            )
            return Reply("You are not an approver for this service.")
        if self.paused() is not None:
            return Reply("AlertEngine cannot record decisions right now. Nothing was changed.")
        if verb == "ack":
            return Reply(
                (
                    await self.ack.acknowledge(
                        link.tenant_id, link.incident_id, person.actor, "whatsapp"
                    )
                ).message
            )
        if verb == "details":
            state = await self.engine.get(link.tenant_id, link.incident_id)
            if state is None:
                return Reply("Unknown incident.")
            cause = str((state.diagnosis or {}).get("cause", "")) or "no diagnosis yet"
            return Reply(f"{state.service}: {state.stage}. Likely cause: {cause}")
        return Reply(
            await self.authorizer.approve_in_chat(
                link.tenant_id, link.incident_id, link.jti, person.actor, "whatsapp"
            )
        )

    async def gather(self, params: dict[str, str], ref: str) -> Reply:
        """A key pressed during a call: 1 acknowledges as the person the call was for."""
        link = await link_ref(self.store, ref)
        call = params.get("CallSid", "")
        if link is None:
            await self.ack.refuse_anonymous("voice:unknown", "unknown call", "voice")
            return Reply("This call is no longer valid. Goodbye.")
        if params.get("Digits", "") != "1":
            return Reply("Nothing was recorded. Check your phone to decide. Goodbye.")
        if await self._replayed(f"{call}:1", "gather"):
            return Reply("Already acknowledged. Goodbye.")
        result = await self.ack.acknowledge(
            link.tenant_id, link.incident_id, link.recipient, "voice"
        )
        await self._call_event(link.tenant_id, link.incident_id, call, "acknowledged", ref)
        return Reply(f"{result.message} Goodbye.")

    async def status(self, params: dict[str, str], ref: str) -> Reply:
        link = await link_ref(self.store, ref)
        call, status = params.get("CallSid", ""), params.get("CallStatus", "")[:32]
        if link is None:
            await self.ack.refuse_anonymous("voice:unknown", "unknown call", "voice")
            return Reply()
        if await self._replayed(f"{call}:{status}", "status"):
            return Reply()
        await self._call_event(link.tenant_id, link.incident_id, call, status, ref)
        if self.unanswered is not None:  # nobody picked up: their next channel, at once
            to = bare_number(params.get("To", ""))
            await self.unanswered(link.tenant_id, link.incident_id, link.jti, call, status, to)
        return Reply()

    async def _call_event(
        self, tenant_id: str, incident_id: str, call: str, outcome: str, ref: str
    ) -> None:
        """``kind="call"``: answered, completed, busy, no-answer, failed, acknowledged."""
        await self.engine.record(
            tenant_id,
            incident_id,
            kind="call",
            actor="twilio",
            decision=outcome or "unknown",
            reason=f"voice call {outcome or 'unknown'}",
            data={"call_sid": call[:64], "jti": ref[:64]},
        )
