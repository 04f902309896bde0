"""Anymail's tracking webhooks → our messages.

Anymail authenticates each webhook the way the configured ESP does it (a shared secret in the
webhook URL's basic auth, plus the ESP's own signature where it has one: Mailgun's, Postmark's…)
and refuses the rest with a 4xx before this receiver runs. Events find their message by the
metadata the email carried, or else by the ESP's message id.
"""

import logging

from anymail.signals import AnymailTrackingEvent, tracking
from django.dispatch import receiver

from dunning_site.notifications.models import Message
from dunning_site.notifications.services import message_tracking_record

logger = logging.getLogger(__name__)

# Anymail's normalized event types → ours. "deferred" (a soft bounce the ESP retries), "queued"
# and "sent" add nothing to what delivery already recorded.
KINDS = {
    "delivered": "delivered",
    "bounced": "bounced",
    "rejected": "bounced",
    "failed": "failed",
    "complained": "complained",
    "unsubscribed": "unsubscribed",
    "opened": "opened",
    "clicked": "clicked",
}


@receiver(tracking)
def record_tracking_event(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    kind = KINDS.get(event.event_type)
    if kind is None:
        return
    message = _message_of(event)
    if message is None:
        logger.info("%s %s event for an unknown message (%s)", esp_name, event.event_type, event.message_id)
        return
    reason = event.description or event.mta_response or event.reject_reason or ""
    event_id = f"{esp_name}:{event.event_id}" if event.event_id else None
    message_tracking_record(
        message=message,
        kind=kind,
        at=event.timestamp,
        provider_event_id=event_id,
        data={"esp": esp_name, "event_type": event.event_type, "reject_reason": event.reject_reason or ""},
        reason=reason if kind in ("bounced", "failed", "complained") else "",
    )


def _message_of(event: AnymailTrackingEvent) -> Message | None:
    message_id = (event.metadata or {}).get("message_id")
    if message_id and str(message_id).isdigit():
        found = Message.objects.filter(pk=int(message_id)).first()
        if found:
            return found
    if event.message_id:
        return Message.objects.filter(provider_message_id=event.message_id).first()
    return None
