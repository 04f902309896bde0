"""The outbox: messages are rows first, delivered by a job after the writing transaction commits."""

import datetime as dt
import logging

import django_rq
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Queue, Retry

from dunning_site.notifications.models import Message
from dunning_site.notifications.signals import message_status_changed
from dunning_site.notifications.transports import TransportError, transport_for

logger = logging.getLogger(__name__)

QUEUE_NAME = "messages"
# Seconds between delivery attempts after a transient failure; the last one repeats.
DELIVERY_BACKOFF = [30, 120, 600, 1800, 3600]
MAX_DELIVERY_ATTEMPTS = 10
GAVE_UP = "Gave up after %(attempts)d attempts: %(error)s"


def messages_enqueue_on_commit(messages: list[Message]) -> None:
    """Hand the messages to the delivery queue once the current transaction has committed."""
    ids = [message.pk for message in messages]
    if ids:
        # robust: if Redis is unreachable the rows stay `queued` and the sweeper enqueues them later.
        transaction.on_commit(lambda: _enqueue_delivery(ids), robust=True)


def _enqueue_delivery(message_ids: list[int]) -> None:
    from dunning_site.notifications.jobs import deliver

    queue: Queue = django_rq.get_queue(QUEUE_NAME)
    retry = Retry(max=len(DELIVERY_BACKOFF), interval=DELIVERY_BACKOFF)
    # One round trip for the whole batch. If Redis is unreachable the rows stay `queued` and the
    # sweeper enqueues them once it is back: nothing is lost, so a warning is enough.
    try:
        queue.enqueue_many(
            [Queue.prepare_data(deliver, args=(message_id,), retry=retry, result_ttl=0) for message_id in message_ids]
        )
    except RedisError as error:
        logger.warning("Could not enqueue %d deliveries (%s); the sweeper will.", len(message_ids), error)


@transaction.atomic
def messages_create(messages: list[Message]) -> list[Message]:
    """Write unsaved Message rows in one statement and enqueue their delivery on commit."""
    for message in messages:
        message.full_clean(exclude=["customer", "template"], validate_unique=False, validate_constraints=False)
    created = Message.objects.bulk_create(messages)
    messages_enqueue_on_commit(created)
    return created


def message_deliver(*, message_id: int, now: dt.datetime | None = None) -> str:
    """Send one message at most once; returns what happened, for the job's log.

    The claim is a conditional update queued → sending, so a second job for the same message
    (a duplicate enqueue, the sweeper) finds nothing to claim and does nothing.
    """
    now = now or timezone.now()
    claimed = Message.objects.filter(pk=message_id, status=Message.Status.QUEUED, send_after__lte=now).update(
        status=Message.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return "not claimable"
    message = Message.objects.select_related("customer").get(pk=message_id)
    try:
        provider_id = transport_for(message.channel).send(message)
    except TransportError as error:
        return _delivery_failed(message, error, now)
    # Recorded before anything else, so a crash from here on cannot cause a second send.
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.SENT, provider_message_id=provider_id, sent_at=timezone.now(), error=""
    )
    _status_changed(message, Message.Status.SENDING, Message.Status.SENT)
    return "sent"


class DeliveryDeferred(Exception):
    """Raised so RQ schedules the next attempt; the message is back in `queued`."""


def _delivery_failed(message: Message, error: TransportError, now: dt.datetime) -> str:
    if error.permanent or message.attempts >= MAX_DELIVERY_ATTEMPTS:
        reason = str(error) if error.permanent else GAVE_UP % {"attempts": message.attempts, "error": error}
        Message.objects.filter(pk=message.pk).update(status=Message.Status.FAILED, failed_at=now, error=reason)
        _status_changed(message, Message.Status.SENDING, Message.Status.FAILED)
        return "failed"
    delay = DELIVERY_BACKOFF[min(message.attempts, len(DELIVERY_BACKOFF)) - 1]
    Message.objects.filter(pk=message.pk).update(
        status=Message.Status.QUEUED, send_after=now + dt.timedelta(seconds=delay), error=str(error)
    )
    raise DeliveryDeferred(str(error))


def _status_changed(message: Message, previous: str, status: str) -> None:
    message.status = status
    message_status_changed.send(sender=Message, message=message, previous_status=previous)


def messages_sweep(*, now: dt.datetime | None = None) -> int:
    """Re-enqueue messages still `queued` well after they were due (their job was lost)."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.DUNNING_SWEEP_AFTER_SECONDS)
    ids = list(
        Message.objects.filter(status=Message.Status.QUEUED, send_after__lte=cutoff).values_list("pk", flat=True)[:1000]
    )
    if ids:
        logger.info("Re-enqueueing %d messages whose delivery job was lost", len(ids))
        _enqueue_delivery(ids)
    return len(ids)


@transaction.atomic
def messages_cancel(*, messages) -> int:
    """Cancel messages not yet claimed by a delivery job; a message already sending goes out."""
    now = timezone.now()
    return messages.filter(status__in=Message.PENDING_STATUSES).update(
        status=Message.Status.CANCELLED, cancelled_at=now
    )
