"""Anymail's webhooks → our messages.

A tracking event can retire an address or record an opt-out, so whoever can post one can stop a
customer's reminders. Anymail authenticates each webhook the way the configured ESP does it (the
shared secret in the webhook URL's basic auth, plus the ESP's own signature where it has one:
Mailgun's, Postmark's…) and refuses a failure with a 400 before our receiver runs; but without
ANYMAIL_WEBHOOK_SECRET it only warns and lets everything through, so `anymail_webhooks()` refuses
every Anymail webhook (tracking and inbound) until the secret is configured. The webhook of an ESP
whose own settings are missing (one the site does not send through) answers 404, not a server error.

Events find their message by the unguessable tracking token the email carried in its metadata, or
else by the ESP's own message id, never by our sequential primary key.
"""

import functools
import logging
from collections.abc import Callable

import anymail.urls
from anymail.exceptions import AnymailConfigurationError, AnymailImproperlyInstalled
from anymail.signals import AnymailTrackingEvent, tracking
from anymail.utils import get_anymail_setting
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.urls import URLPattern

from dunning_site.notifications.models import Message
from dunning_site.notifications.services import message_tracking_record

logger = logging.getLogger(__name__)

WEBHOOK_SECRET_MISSING = "Anymail webhooks are refused until ANYMAIL_WEBHOOK_SECRET is configured."

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


def anymail_webhook_secret_configured() -> bool:
    """Read as Anymail reads it: ANYMAIL["WEBHOOK_SECRET"] (ANYMAIL_WEBHOOK_SECRET in the environment)."""
    return bool(get_anymail_setting("webhook_secret", default=None))


def _refused_without_webhook_secret(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not anymail_webhook_secret_configured():
            logger.warning("Refused an Anymail webhook (%s): ANYMAIL_WEBHOOK_SECRET is not set", request.path)
            return HttpResponseForbidden(WEBHOOK_SECRET_MISSING)
        try:
            return view(request, *args, **kwargs)
        except (AnymailConfigurationError, AnymailImproperlyInstalled) as error:
            raise Http404("This ESP is not configured.") from error

    return wrapped


def anymail_webhooks() -> tuple[list[URLPattern], str]:
    """Anymail's URL patterns (every ESP's tracking and inbound webhooks), each refused without the secret."""
    patterns = []
    for pattern in anymail.urls.urlpatterns:
        view = _refused_without_webhook_secret(pattern.callback)
        patterns.append(URLPattern(pattern.pattern, view, pattern.default_args, pattern.name))
    return patterns, anymail.urls.app_name


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
    token = (event.metadata or {}).get("tracking_token")
    if token and isinstance(token, str):
        found = Message.objects.filter(tracking_token=token).first()
        if found:
            return found
    if event.message_id:
        return Message.objects.filter(provider_message_id=event.message_id).first()
    return None
