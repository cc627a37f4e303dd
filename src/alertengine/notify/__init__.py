"""Notifications: render the incident, deliver it over Telegram, WhatsApp, Slack, webhooks."""

from alertengine.notify.channel import Channel, DeliveryResult
from alertengine.notify.delivery import DeliveryEvent, DeliveryOutcome, Dispatcher, Recipient
from alertengine.notify.render import Button, IncidentMessage, RenderedMessage, render

__all__ = [
    "Button",
    "Channel",
    "DeliveryEvent",
    "DeliveryOutcome",
    "DeliveryResult",
    "Dispatcher",
    "IncidentMessage",
    "Recipient",
    "RenderedMessage",
    "render",
]
