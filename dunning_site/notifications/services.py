"""The outbox: messages are rows first, delivered by a job after the writing transaction commits."""

import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Callable

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import dateformat, timezone
from redis.exceptions import RedisError
from rq import Queue, get_current_job
from rq.exceptions import DuplicateJobError
from rq.job import JobStatus

from dunning_site.accounts.models import Channel, Consent, Customer, User
from dunning_site.accounts.services import consent_record, contact_mark_unusable
from dunning_site.accounts.time_zones import Source as TimeZoneSource
from dunning_site.lib.admin import admin_history_record
from dunning_site.notifications import rules
from dunning_site.notifications.models import DeliveryEvent, InboundSms, Message, MessageTemplate
from dunning_site.notifications.rendering import one_line
from dunning_site.notifications.signals import message_send_veto, message_status_changed
from dunning_site.notifications.transports import TransportError, transport_for

logger = logging.getLogger(__name__)

QUEUE_NAME = "messages"
# Seconds between delivery attempts after a transient failure; the last one repeats.
DELIVERY_BACKOFF = [30, 120, 600, 1800, 3600]
MAX_DELIVERY_ATTEMPTS = 10
GAVE_UP = "Gave up after %(attempts)d attempts: %(error)s"
UNEXPECTED_FAILURE = (
    "Sending failed unexpectedly (%(error)s), so the message may or may not have gone out. "
    "It is not sent again automatically: check the provider's log before sending it by hand."
)
# Pauses (seconds) before writing a send's outcome again when the database connection broke.
OUTCOME_WRITE_PAUSES = (0.2, 0.5, 1, 2, 4)


def messages_enqueue_on_commit(messages: list[Message]) -> None:
    """Hand the messages to the delivery queue once the current transaction has committed."""
    ids = [message.pk for message in messages]
    if ids:
        # robust: if Redis is unreachable the rows stay `queued` and the sweeper enqueues them later.
        transaction.on_commit(lambda: _enqueue_delivery(ids), robust=True)


# The delivery job, named rather than imported: jobs are an edge that calls these services, and RQ
# imports the function by this name where it runs it.
DELIVER_JOB = "dunning_site.notifications.jobs.deliver"


def _enqueue_delivery(message_ids: list[int], *, at: dt.datetime | None = None) -> None:
    """Deliver now, or at `at`: the one way a delivery is (re)scheduled — deferrals, retries after a
    transient failure, scheduled drafts, the sweeper. If Redis is unreachable the rows stay `queued`
    and the sweeper enqueues them once it is back: nothing is lost, so a warning is enough."""
    queue: Queue = django_rq.get_queue(QUEUE_NAME)
    try:
        if at is None:
            # One round trip for the whole batch.
            queue.enqueue_many(
                [Queue.prepare_data(DELIVER_JOB, args=(message_id,), result_ttl=0) for message_id in message_ids]
            )
            return
        for message_id in message_ids:
            _schedule_delivery(queue, message_id, at)
    except RedisError as error:
        logger.warning("Could not enqueue %d deliveries (%s); the sweeper will.", len(message_ids), error)


def _schedule_delivery(queue: Queue, message_id: int, at: dt.datetime) -> None:
    """RQ runs a scheduled job at the whole second it was given, dropping the fraction: a job for
    12:00:30.4 runs at 12:00:30.0 and finds its message not yet due. So the second is rounded up.

    One job per message and second (its id says which): scheduling the same delivery twice, as a
    deferral and a stray early job may, keeps one job, so jobs never multiply."""
    second = math.ceil(at.timestamp())
    job_id = f"deliver-{message_id}-at-{second}"
    current = get_current_job()
    if current is not None and current.id == job_id:
        # This very job ran early (a worker's clock behind the scheduler's): the next second.
        second += 1
        job_id = f"deliver-{message_id}-at-{second}"
    job = queue.create_job(DELIVER_JOB, args=(message_id,), job_id=job_id, result_ttl=0, status=JobStatus.SCHEDULED)
    with contextlib.suppress(DuplicateJobError):  # already waiting for that second
        queue.schedule_job(job, dt.datetime.fromtimestamp(second, dt.UTC), unique=True)


@transaction.atomic
def messages_create(messages: list[Message]) -> list[Message]:
    """Write unsaved Message rows in one statement and enqueue the delivery of those not drafts."""
    for message in messages:
        message.full_clean(
            exclude=["customer", "template", "contact_rules", "assigned_to"],
            validate_unique=False,
            validate_constraints=False,
        )
    created = Message.objects.bulk_create(messages)
    due, later = [], {}
    for message in created:
        if message.status != Message.Status.QUEUED:
            continue
        if message.send_after > timezone.now():
            later.setdefault(message.send_after, []).append(message.pk)
        else:
            due.append(message)
    messages_enqueue_on_commit(due)
    for at, ids in later.items():
        transaction.on_commit(lambda at=at, ids=ids: _enqueue_delivery(ids, at=at), robust=True)
    return created


def message_deliver(*, message_id: int, now: dt.datetime | None = None) -> str:
    """Send one message at most once, if the contact rules allow it now; returns what happened.

    The rules are decided and the message claimed (queued → sending) in one transaction holding
    the customer's row, so two workers delivering to the same customer cannot both slip under a
    cap. The provider call happens after that commit; its id is recorded before anything else.
    Whatever the transport raises, the message leaves `sending` with what became of it.
    """
    now = now or timezone.now()
    with transaction.atomic():
        message = (
            Message.objects.select_related("contact_rules").filter(pk=message_id, status=Message.Status.QUEUED).first()
        )
        if message is None:
            return "not claimable"
        if message.send_after > now:
            # Early (RQ schedules by whole seconds, clocks differ): make sure a job runs when it is due.
            send_after = message.send_after
            transaction.on_commit(lambda: _enqueue_delivery([message_id], at=send_after), robust=True)
            return "not due"
        customer = Customer.objects.select_for_update().get(pk=message.customer_id)
        if not Message.objects.filter(pk=message_id, status=Message.Status.QUEUED).exists():
            return "not claimable"  # another worker claimed it while this one waited for the lock
        # The hold rule, asked at the claim: a hold laid after the message was written still stops it.
        if veto := message_send_veto(message=message, at=now):
            if veto.until is None:
                _cancel(message, veto.reason, now)
                return "cancelled"
            _defer(message, veto.until, veto.reason)
            return "deferred"
        decision = rules.decide(
            channel=message.channel,
            now=now,
            rules=rules.Rules.of(message.contact_rules),
            recipient=recipient_of(customer),
            recent=recent_contacts(customer=customer, now=now),
        )
        if decision.cancel:
            _cancel(message, decision.reason, now)
            return "cancelled"
        if not decision.send:
            _defer(message, decision.defer_until, decision.reason)
            return "deferred"
        claimed = Message.objects.filter(pk=message_id, status=Message.Status.QUEUED).update(
            status=Message.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1, deferred_reason=""
        )
        if not claimed:
            return "not claimable"
        # Read under the claim, so what is sent is what the row says (an edit committed before it).
        message = Message.objects.select_related("customer").get(pk=message_id)
    try:
        provider_id = transport_for(message.channel).send(message)
    except TransportError as error:
        return _delivery_failed(message, error, now)
    except Exception as error:
        logger.exception("Sending message %s failed unexpectedly", message_id)
        unexpected = TransportError(UNEXPECTED_FAILURE % {"error": repr(error)}, permanent=True)
        return _delivery_failed(message, unexpected, now)
    # Recorded before anything else, so a crash from here on cannot cause a second send.
    _write_outcome(lambda: _record_sent(message, provider_id))
    return "sent"


def _write_outcome(write: Callable[[], None]) -> None:
    """Write what became of a send in one transaction, reconnecting when the database connection
    broke meanwhile (a failover, a restart, an idle connection cut by a proxy). The provider has
    already acted: losing this write would leave the message `sending`, for the sweeper to fail as
    "may have gone out", inviting staff to send again by hand what the customer already received."""
    for pause in (*OUTCOME_WRITE_PAUSES, None):
        try:
            with transaction.atomic():
                write()
            return
        except (OperationalError, InterfaceError) as error:
            if pause is None or connection.in_atomic_block:
                raise  # out of tries, or inside a caller's transaction, which a reconnect would lose
            logger.warning("Could not record a delivery's outcome (%s); reconnecting in %s s", error, pause)
            connection.close()
            time.sleep(pause)


def _record_sent(message: Message, provider_id: str) -> None:
    current = Message.objects.select_for_update().get(pk=message.pk)
    if current.provider_message_id == provider_id and current.sent_at is not None:
        return  # an earlier try committed; only its acknowledgement was lost
    fields: dict = {"provider_message_id": provider_id, "sent_at": timezone.now()}
    # A provider's event may have come first (delivered, bounced): it is further along than "sent".
    # `failed` is the sweeper's guess for a send that took too long; the provider's answer is truth.
    moves_on = current.status in (Message.Status.SENDING, Message.Status.FAILED)
    if moves_on:
        fields |= {"status": Message.Status.SENT, "error": ""}
    Message.objects.filter(pk=message.pk).update(**fields)
    message.provider_message_id, message.sent_at = provider_id, fields["sent_at"]
    if moves_on:
        message.error = ""
        _status_changed(message, current.status, Message.Status.SENT)


def recipient_of(customer: Customer) -> rules.Recipient:
    consents = {consent.channel: consent.granted for consent in customer.consents.all()}
    return rules.Recipient(
        time_zone=customer.time_zone,
        time_zones=tuple(customer.time_zone_candidates),
        time_zone_unknown=customer.time_zone_source == TimeZoneSource.UNKNOWN,
        do_not_contact_reason=customer.get_do_not_contact_reason_display() if customer.do_not_contact else "",
        sms_consent=consents.get(Channel.SMS, False),
        opted_out=frozenset(channel for channel, granted in consents.items() if not granted),
        email_unusable_reason=customer.email_unusable_reason if customer.email_unusable_since else "",
        phone_unusable_reason=customer.phone_unusable_reason if customer.phone_unusable_since else "",
    )


def recent_contacts(*, customer: Customer, now: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """Contacts made (or being made) in the last 7 days, whatever became of them afterwards."""
    return list(
        Message.objects.filter(customer=customer, claimed_at__gt=now - rules.WEEK, claimed_at__lte=now)
        .exclude(status__in=[Message.Status.QUEUED, Message.Status.DRAFT, Message.Status.CANCELLED])
        .values_list("channel", "claimed_at")
    )


def _cancel(message: Message, reason: str, now: dt.datetime) -> None:
    Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
        status=Message.Status.CANCELLED, cancelled_at=now, error=reason, deferred_reason=""
    )
    message.error = reason
    _status_changed(message, Message.Status.QUEUED, Message.Status.CANCELLED)


def _defer(message: Message, until: dt.datetime, reason: str) -> None:
    Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(send_after=until, deferred_reason=reason)
    message.send_after, message.deferred_reason = until, reason
    message_status_changed.send(sender=Message, message=message, previous_status=message.status, event="deferred")
    transaction.on_commit(lambda: _enqueue_delivery([message.pk], at=until), robust=True)


def _delivery_failed(message: Message, error: TransportError, now: dt.datetime) -> str:
    """A refused address bounces (and is retired, as a hard bounce retires it, so the case's next
    step takes another channel); a permanent failure, or the last attempt, fails with its reason;
    anything else goes back to `queued` for the next attempt, after the backoff."""
    if error.recipient_refused:
        reason = str(error)
        _write_outcome(
            lambda: message_tracking_record(
                message=message, kind="bounced", at=now, reason=reason, data={"refused_when_sending": reason}
            )
        )
        return "bounced"
    if error.permanent or message.attempts >= MAX_DELIVERY_ATTEMPTS:
        reason = str(error) if error.permanent else GAVE_UP % {"attempts": message.attempts, "error": error}

        def fail() -> None:
            Message.objects.filter(pk=message.pk).update(
                status=Message.Status.FAILED, failed_at=now, error=reason, provider_message_id=error.provider_id
            )
            message.error, message.provider_message_id = reason, error.provider_id
            _status_changed(message, Message.Status.SENDING, Message.Status.FAILED)

        _write_outcome(fail)
        return "failed"
    delay = DELIVERY_BACKOFF[min(message.attempts, len(DELIVERY_BACKOFF)) - 1]
    next_attempt = now + dt.timedelta(seconds=delay)

    def retry_later() -> None:
        Message.objects.filter(pk=message.pk).update(
            status=Message.Status.QUEUED, send_after=next_attempt, error=str(error)
        )
        transaction.on_commit(lambda: _enqueue_delivery([message.pk], at=next_attempt), robust=True)

    _write_outcome(retry_later)
    return "retrying"


def _status_changed(message: Message, previous: str, status: str, *, event: str = "") -> None:
    message.status = status
    message_status_changed.send(sender=Message, message=message, previous_status=previous, event=event or status)


STUCK_SENDING = (
    "The worker stopped while handing this message to the provider, so it may or may not have gone out. "
    "It is not sent again automatically: check the provider's log before sending it by hand."
)
STUCK_AFTER = dt.timedelta(minutes=30)


def messages_sweep(*, now: dt.datetime | None = None) -> int:
    """Re-enqueue messages still `queued` well after they were due (their job was lost), and fail
    those stuck in `sending` (the worker died mid-send): at most once beats at least once."""
    now = now or timezone.now()
    for message in Message.objects.filter(status=Message.Status.SENDING, claimed_at__lte=now - STUCK_AFTER):
        with transaction.atomic():
            if Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
                status=Message.Status.FAILED, failed_at=now, error=STUCK_SENDING
            ):
                message.error = STUCK_SENDING
                _status_changed(message, Message.Status.SENDING, Message.Status.FAILED)
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


# ---------------------------------------------------------------------------------------------
# Drafts: a collector personalizes a message before it goes


@transaction.atomic
def message_rewrite(*, message: Message, subject: str, body: str, html_body: str) -> bool:
    """Replace the words of a message not yet sent with words written again from the same template
    (what the customer owes changed). Its idempotency key, time and status stay; a message claimed
    for sending meanwhile is left as it goes. Returns whether the words were replaced."""
    return bool(
        Message.objects.filter(pk=message.pk, status__in=Message.PENDING_STATUSES).update(
            subject=subject, body=body, html_body=html_body
        )
    )


@transaction.atomic
def message_review_ask(*, message: Message, reason: str) -> str | None:
    """A message whose words cannot be written again by the machine (a collector personalized them)
    and that is now wrong: it does not go until a collector has read it again. A queued one goes back
    to draft, for whoever wrote it; a draft stays a draft. Returns the status it had, or None if it was
    claimed for sending meanwhile."""
    message = Message.objects.select_for_update().filter(pk=message.pk, status__in=Message.PENDING_STATUSES).first()
    if message is None:
        return None
    previous = message.status
    message.review_reason = reason[:255]
    fields = ["review_reason"]
    if previous == Message.Status.QUEUED:
        message.status = Message.Status.DRAFT
        message.assigned_to_id = message.edited_by_id or message.assigned_to_id
        fields += ["status", "assigned_to"]
    message.save(update_fields=fields)
    return previous


NOT_EDITABLE = "This message is %(status)s; only drafts and messages not yet sent can be edited."
SCHEDULE_IN_PAST = "Choose a time in the future, or send it now."
# A message scheduled further ahead would speak of a debt as it is today to a customer months later
# (and a typing slip, year 9999, would hold it for ever): beyond this, write it nearer the day.
SCHEDULE_HORIZON = dt.timedelta(days=90)
SCHEDULE_TOO_FAR = "Choose a time within %(days)s days from now (by %(latest)s at the latest)."


def schedule_problem(*, send_at: dt.datetime, now: dt.datetime) -> str | None:
    """Why a message cannot be scheduled for `send_at`, or None."""
    if send_at <= now:
        return SCHEDULE_IN_PAST
    latest = now + SCHEDULE_HORIZON
    if send_at > latest:
        return SCHEDULE_TOO_FAR % {
            "days": SCHEDULE_HORIZON.days,
            "latest": dateformat.format(timezone.localtime(latest), "D j M Y, H:i"),
        }
    return None


@transaction.atomic
def message_edit(*, message: Message, subject: str, body: str, html_body: str | None, user: User) -> Message:
    """Replace the text of a message not yet sent; what is stored is exactly what will be sent."""
    message = Message.objects.select_for_update().get(pk=message.pk)
    if message.status not in Message.PENDING_STATUSES:
        raise ValidationError(NOT_EDITABLE % {"status": message.get_status_display().lower()})
    body = body.strip() + "\n"
    if html_body is not None:
        message.html_body = html_body
    elif body != message.body:
        # The HTML part still says what the template said; mail clients would show it instead of
        # the edited text, so the edited message goes as text only.
        message.html_body = ""
    message.subject = one_line(subject)
    message.body = body
    message.edited_by, message.edited_at = user, timezone.now()
    message.review_reason = ""  # the collector has read it again
    message.save(update_fields=["subject", "body", "html_body", "edited_by", "edited_at", "review_reason"])
    message_status_changed.send(
        sender=Message, message=message, previous_status=message.status, event="edited", user=user
    )
    return message


@transaction.atomic
def message_release(*, message: Message, user: User, send_at: dt.datetime | None = None) -> Message:
    """Send a draft now, or at `send_at`; the contact rules still apply when it goes."""
    now = timezone.now()
    if send_at is not None and (problem := schedule_problem(send_at=send_at, now=now)):
        raise ValidationError({"send_at": problem})
    message = Message.objects.select_for_update().get(pk=message.pk)
    if message.status != Message.Status.DRAFT:
        raise ValidationError(NOT_EDITABLE % {"status": message.get_status_display().lower()})
    # Refused now rather than cancelled at its claim: the collector learns it while they can act.
    if veto := message_send_veto(message=message, at=send_at or now):
        raise ValidationError(veto.refusal)
    message.status = Message.Status.QUEUED
    message.send_after = send_at or now
    message.review_reason = ""  # released by a collector who has seen it
    message.save(update_fields=["status", "send_after", "review_reason"])
    message_status_changed.send(
        sender=Message,
        message=message,
        previous_status=Message.Status.DRAFT,
        event="scheduled" if send_at else "released",
        user=user,
    )
    if send_at:
        transaction.on_commit(lambda: _enqueue_delivery([message.pk], at=send_at), robust=True)
    else:
        messages_enqueue_on_commit([message])
    return message


# ---------------------------------------------------------------------------------------------
# Tracking: what providers tell us after sending

# How far along a message is; a late "delivered" never overrides a "bounced", and so on.
_PROGRESS = {
    Message.Status.SENT: 1,
    Message.Status.DELIVERED: 2,
    Message.Status.BOUNCED: 3,
    Message.Status.FAILED: 3,
}
TRACKING_STATUS = {
    "delivered": Message.Status.DELIVERED,
    "bounced": Message.Status.BOUNCED,
    "failed": Message.Status.FAILED,
}


@transaction.atomic
def message_tracking_record(
    *,
    message: Message,
    kind: str,
    at: dt.datetime | None = None,
    provider_event_id: str | None = None,
    data: dict | None = None,
    reason: str = "",
) -> bool:
    """Apply one provider event to its message; False when the event was already recorded.

    kind: delivered, bounced (hard), failed, complained, unsubscribed, opened, clicked. A hard
    bounce or a complaint makes the address unusable; a complaint or an unsubscribe is an opt-out.
    """
    at = at or timezone.now()
    try:
        with transaction.atomic():  # a savepoint: a duplicate event id (providers retry) is not an error
            DeliveryEvent.objects.create(
                message=message, kind=kind, provider_event_id=provider_event_id, at=at, data=data or {}
            )
    except IntegrityError:
        return False
    message = Message.objects.select_for_update().select_related("customer").get(pk=message.pk)
    previous = message.status
    fields: dict = {}
    status = TRACKING_STATUS.get(kind)
    if status and _PROGRESS.get(status, 0) > _PROGRESS.get(previous, 0):
        fields["status"] = status
        fields["delivered_at" if status == Message.Status.DELIVERED else "failed_at"] = at
        if reason:
            fields["error"] = reason
    if kind == "opened" and not message.opened_at:
        fields["opened_at"] = at
    if kind == "clicked" and not message.clicked_at:
        fields["clicked_at"] = at
    if fields:
        Message.objects.filter(pk=message.pk).update(**fields)
        for name, value in fields.items():
            setattr(message, name, value)
    if kind in ("bounced", "complained"):
        contact_mark_unusable(customer=message.customer, channel=message.channel, reason=reason or kind, at=at)
    if kind in ("complained", "unsubscribed"):
        source = "complaint" if kind == "complained" else "unsubscribe"
        consent_record(customer=message.customer, channel=message.channel, granted=False, source=source, at=at)
    message_status_changed.send(sender=Message, message=message, previous_status=previous, event=kind)
    return True


TEMPLATE_SAVED_MEANWHILE = "This message already has a version in this language for this segment (saved meanwhile)."


@transaction.atomic
def message_template_save(*, form, user: User) -> MessageTemplate:
    """Save a validated template form (validation refused anything unsafe to render); the admin's
    history records who changed what."""
    added = form.instance.pk is None
    try:
        with transaction.atomic():
            template = form.save()
    except IntegrityError:
        raise ValidationError(TEMPLATE_SAVED_MEANWHILE) from None
    admin_history_record(user=user, obj=template, form=form, formsets=[], added=added)
    return template


# ---------------------------------------------------------------------------------------------
# Customers' replies by SMS

# Twilio's default keywords (help.twilio.com, "Twilio support for opt-out keywords"): Twilio itself
# answers them and blocks, or unblocks, our sender for that number, so the same words must change
# the consent we keep, or the contact rules and Twilio would disagree. YES is one of Twilio's opt-in
# words although a customer may write it in answer to anything: Twilio lifts a STOP on it anyway, so
# we take it as Twilio does, an opt-in written by the number's holder to our number (only the whole
# reply counts: "Yes, I will pay" changes nothing). ARRET is not Twilio's by default (it is the
# French-Canadian STOP some carriers require); recording more opt-outs than Twilio is safe.
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE", "ARRET"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})


@transaction.atomic
def inbound_sms_receive(
    *, provider_id: str, sender: str, body: str, at: dt.datetime | None = None
) -> InboundSms | None:
    """Record a customer's SMS and do what its keyword asks (opt out of SMS, or back in), once per
    provider id: a webhook posted again — Twilio retrying, or someone replaying a captured request —
    finds the row and changes nothing (None)."""
    word = body.strip().upper()
    if word in OPT_OUT_KEYWORDS:
        effect, granted = InboundSms.Effect.OPTED_OUT, False
    elif word in OPT_IN_KEYWORDS:
        effect, granted = InboundSms.Effect.OPTED_IN, True
    else:
        effect, granted, word = InboundSms.Effect.NONE, None, ""
    at = at or timezone.now()
    # A second request with the same id waits on the unique index until the first commits, then finds its row.
    inbound, created = InboundSms.objects.get_or_create(
        provider_id=provider_id, defaults={"sender": sender[:64], "keyword": word, "effect": effect, "received_at": at}
    )
    if not created:
        return None
    if granted is not None and sender:
        for customer in Customer.objects.filter(phone=sender):
            consent_record(
                customer=customer,
                channel=Channel.SMS,
                granted=granted,
                source=Consent.Source.REPLY,
                note=f"Replied {word}",
                at=at,
            )
    return inbound
