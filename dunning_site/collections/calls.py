"""Collectors at work: ad-hoc messages written as drafts, the outcome of a call (a promise made on the
call is recorded by collections.promises, as the case page's is).
"""

import datetime as dt
import uuid

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from dunning_site.accounts.models import Channel, Invoice, User
from dunning_site.accounts.services import contact_mark_unusable
from dunning_site.collections.case_core import CASE_NOT_ACTIVE, case_pause
from dunning_site.collections.messaging import TemplateBook, compose
from dunning_site.collections.models import Case, Promise
from dunning_site.collections.promises import PROMISE_DATE_IN_PAST, promise_problems, promise_record
from dunning_site.collections.timeline import case_event_record, case_name
from dunning_site.notifications.models import Message, MessageTemplate
from dunning_site.notifications.services import messages_create

NOT_A_CALL = "Only call tasks have an outcome."


PROMISE_NEEDS_DATE_AND_AMOUNT = "A promise to pay needs a date and an amount."


@transaction.atomic
def case_message_compose(
    *, case: Case, template: MessageTemplate | None, channel: str, user: User, now: dt.datetime | None = None
) -> Message:
    """An ad-hoc message on a case, written from a template as a draft for the collector to
    personalize and send (message_edit, message_release)."""
    now = now or timezone.now()
    case = (
        Case.objects.select_related("customer", "policy__contact_rules", "assignee")
        .prefetch_related("customer__consents", Prefetch("invoices", queryset=Invoice.objects.order_by("due_on")))
        .get(pk=case.pk)
    )
    if not case.is_active:
        raise ValidationError(CASE_NOT_ACTIVE % {"case": case_name(case), "status": case.get_status_display().lower()})
    book = TemplateBook({template.key} if template else set())
    (message,) = messages_create(
        [
            compose(
                case=case,
                channel=channel,
                template_key=template.key if template else None,
                book=book,
                idempotency_key=f"case:{case.pk}:adhoc:{uuid.uuid4().hex}",
                now=now,
                draft=True,
                collector=user,
            )
        ]
    )
    case.messages.add(message)
    case_event_record(
        case, "collections.message.composed", user=user, at=now, message_id=message.pk, channel=message.channel
    )
    return message


@transaction.atomic
def call_outcome_record(
    *,
    message: Message,
    outcome: str,
    user: User,
    note: str = "",
    promised_on: dt.date | None = None,
    promised_amount: int | None = None,
) -> Message:
    """What came of a call. A promise is recorded (source "call", the note as what was said) and holds
    the case until the day after the promised day; a dispute pauses it with reason "dispute"; a wrong
    number makes the phone unusable."""
    now = timezone.now()
    message = Message.objects.select_for_update().select_related("customer").get(pk=message.pk)
    if message.channel != Channel.CALL:
        raise ValidationError(NOT_A_CALL)
    if outcome == Message.CallOutcome.PROMISE:
        if not promised_on or not promised_amount:
            raise ValidationError(PROMISE_NEEDS_DATE_AND_AMOUNT)
        if promised_on < timezone.localdate():
            raise ValidationError({"promised_on": PROMISE_DATE_IN_PAST})
        promised_cases = Case.objects.filter(messages=message, status__in=Case.ACTIVE_STATUSES).select_related("policy")
        for case in promised_cases:
            if problems := promise_problems(case=case, promised_on=promised_on, amount=promised_amount):
                raise ValidationError(problems)
    message.call_outcome, message.call_outcome_at, message.call_outcome_by = outcome, now, user
    message.save(update_fields=["call_outcome", "call_outcome_at", "call_outcome_by"])
    for case in Case.objects.filter(messages=message):
        data = {"message_id": message.pk, "outcome": outcome, "outcome_label": message.get_call_outcome_display()}
        if note:
            data["note"] = note
        if outcome == Message.CallOutcome.PROMISE:
            data |= {"promised_on": promised_on.isoformat(), "promised_amount": promised_amount}
        case_event_record(case, "collections.call.logged", user=user, at=now, **data)
        if case.is_active and outcome == Message.CallOutcome.PROMISE:
            promise_record(
                case=case,
                promised_on=promised_on,
                amount=promised_amount,
                source=Promise.Source.CALL,
                reason=note,
                user=user,
                now=now,
            )
        elif case.is_active and outcome == Message.CallOutcome.DISPUTE:
            case_pause(case=case, until=None, reason="dispute", user=user, replace_hold=True)
    if outcome == Message.CallOutcome.WRONG_NUMBER and message.customer.phone == message.to_address:
        contact_mark_unusable(customer=message.customer, channel=Channel.CALL, reason="Wrong number (call)", at=now)
    return message
