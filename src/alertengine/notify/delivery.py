"""Deliver one message along a tenant's route: retries, circuit breakers, fall-over.

Every attempt — sent, failed, or skipped because a breaker is open — is reported to the
injected ``record`` callback (the orchestrator ledgers it as ``kind="delivery"``). Waiting
for a provider's ``retry_after`` goes through the clock, so the simulator runs it on
virtual time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from alertengine.clock import Clock
from alertengine.notify.breaker import CircuitBreaker
from alertengine.notify.channel import Channel, DeliveryResult
from alertengine.notify.render import RenderedMessage


@dataclass(frozen=True)
class Recipient:
    """``channel`` names a configured channel; ``address`` is its chat id / phone number;
    ``identity`` is who this is (``engineer:telegram:123456``), used for escalation."""

    channel: str
    address: str
    identity: str


@dataclass(frozen=True)
class DeliveryEvent:
    tenant_id: str
    incident_id: str
    channel: str
    identity: str
    attempt: int
    at: float
    ok: bool
    status: int | None = None
    provider_message_id: str | None = None
    retry_after_s: float | None = None
    error: str = ""
    permanent: bool = False
    #: Why no request was made ("breaker_open", "unknown_channel"); empty when one was.
    skipped: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Ledger-ready data. The address (phone number, chat id) is left out on purpose."""
        return asdict(self)


@dataclass(frozen=True)
class DeliveryOutcome:
    delivered: bool
    recipient: Recipient | None
    events: tuple[DeliveryEvent, ...] = field(default=())

    @property
    def attempts(self) -> int:
        return sum(1 for e in self.events if not e.skipped)


Record = Callable[[DeliveryEvent], Awaitable[None]]


class Dispatcher:
    def __init__(
        self,
        channels: Mapping[str, Channel],
        record: Record,
        clock: Clock,
        retries: int = 2,
        backoff_s: float = 1.0,
        max_wait_s: float = 30.0,
        breaker_threshold: int = 3,
        breaker_reset_s: float = 60.0,
    ) -> None:
        """``retries`` extra attempts per recipient; waits longer than ``max_wait_s`` are
        not worth it during an incident: fall over to the next recipient instead."""
        self._channels = dict(channels)
        self._record = record
        self._clock = clock
        self._retries = max(0, retries)
        self._backoff_s = backoff_s
        self._max_wait_s = max_wait_s
        self._threshold = breaker_threshold
        self._reset_s = breaker_reset_s
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def breaker(self, tenant_id: str, channel: str) -> CircuitBreaker:
        key = (tenant_id, channel)
        if key not in self._breakers:
            self._breakers[key] = CircuitBreaker(self._threshold, self._reset_s)
        return self._breakers[key]

    async def _emit(self, events: list[DeliveryEvent], event: DeliveryEvent) -> None:
        events.append(event)
        await self._record(event)

    async def deliver(
        self,
        tenant_id: str,
        incident_id: str,
        route: Sequence[Recipient],
        msg: RenderedMessage,
    ) -> DeliveryOutcome:
        """Try each recipient in order until one delivery succeeds."""
        events: list[DeliveryEvent] = []

        def event(r: Recipient, attempt: int, **kw: Any) -> DeliveryEvent:
            return DeliveryEvent(
                tenant_id, incident_id, r.channel, r.identity, attempt, self._clock.now(), **kw
            )

        for r in route:
            channel = self._channels.get(r.channel)
            if channel is None:
                await self._emit(events, event(r, 0, ok=False, skipped="unknown_channel"))
                continue
            breaker = self.breaker(tenant_id, r.channel)
            for attempt in range(1, self._retries + 2):
                if not breaker.allow(self._clock.now()):
                    await self._emit(events, event(r, attempt, ok=False, skipped="breaker_open"))
                    break
                result = await self._send(channel, r, msg)
                await self._emit(
                    events,
                    event(
                        r,
                        attempt,
                        ok=result.ok,
                        status=result.status,
                        provider_message_id=result.provider_message_id,
                        retry_after_s=result.retry_after_s,
                        error=result.error,
                        permanent=result.permanent,
                    ),
                )
                if result.ok:
                    breaker.record_success()
                    return DeliveryOutcome(True, r, tuple(events))
                breaker.record_failure(self._clock.now())
                if result.permanent or attempt > self._retries:
                    break
                wait = (
                    result.retry_after_s
                    if result.retry_after_s is not None
                    else self._backoff_s * 2 ** (attempt - 1)
                )
                if wait > self._max_wait_s:
                    break
                await self._clock.sleep(wait)
        return DeliveryOutcome(False, None, tuple(events))

    @staticmethod
    async def _send(channel: Channel, r: Recipient, msg: RenderedMessage) -> DeliveryResult:
        try:
            return await channel.send(r.address, msg)
        except Exception as exc:  # channels promise not to raise; a bug must not stop fall-over
            return DeliveryResult(
                ok=False, channel=r.channel, error=f"channel raised {type(exc).__name__}"
            )
