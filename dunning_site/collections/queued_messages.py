"""Messages not yet sent keep up with what the case owes: a message is sent with the amounts of the
moment it goes, not of the moment it was written.

A reminder held by quiet hours or a weekly cap can wait days in the outbox, and a draft waits for its
collector; meanwhile a payment or a write-off changes what is owed. When it does (case_core's
reconciliation, a partial write-off), each of the case's pending messages is written again from the
template it came from, with the current amounts: same idempotency key, same time, same status, and a
"refreshed" event on the timeline. Words a collector personalized cannot be written again by the
machine, and sending them with a wrong amount would be worse than sending them late: such a message
goes back to draft (a draft stays one) with the reason, on its writer's worklist, until they read it
again (notifications.services.message_review_ask). A message written before its template key was
kept (an empty key) is treated the same way: its words cannot be rebuilt.
"""

import datetime as dt

from dunning_site.collections.messaging import TemplateBook, words_for
from dunning_site.collections.models import Case
from dunning_site.collections.timeline import case_event_record
from dunning_site.lib.money import format_money
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import message_review_ask, message_rewrite

AMOUNTS_CHANGED = (
    "What is owed changed since this message was written (%(previous)s, now %(now)s): "
    "check the amounts in it before it goes."
)


def case_messages_refresh(*, case: Case, previous: int, now: dt.datetime) -> int:
    """Write the case's pending messages again with what it owes now (`previous`: what it owed);
    inside the caller's transaction, the case locked. Returns how many messages changed."""
    pending = list(
        case.messages.filter(status__in=Message.PENDING_STATUSES).select_for_update(of=("self",)).order_by("pk")
    )
    if not pending:
        return 0
    case = Case.objects.select_related("customer", "policy__contact_rules", "assignee").get(pk=case.pk)
    amounts = {
        "previous": previous,
        "amount_overdue": case.amount_overdue,
        "currency": case.currency,
    }
    book = TemplateBook({message.template_key for message in pending if message.template_key})
    changed = 0
    for message in pending:
        if message.edited_by_id is not None or not message.template_key:
            reason = AMOUNTS_CHANGED % {
                "previous": format_money(previous, case.currency),
                "now": format_money(case.amount_overdue, case.currency),
            }
            was = message_review_ask(message=message, reason=reason)
            if was is not None:
                changed += 1
                case_event_record(
                    case,
                    "collections.message.review_asked",
                    at=now,
                    message_id=message.pk,
                    channel=message.channel,
                    status=Message.Status.DRAFT,
                    reason=reason,
                    **amounts,
                )
            continue
        _template, subject, body, html = words_for(
            case=case,
            channel=message.channel,
            template_key=message.template_key,
            book=book,
            today=now.date(),
            collector=message.assigned_to if message.status == Message.Status.DRAFT else None,
        )
        if (subject, body, html) == (message.subject, message.body, message.html_body):
            continue  # words without amounts (a discreet SMS) need no new version
        if message_rewrite(message=message, subject=subject, body=body, html_body=html):
            changed += 1
            case_event_record(
                case,
                "collections.message.refreshed",
                at=now,
                message_id=message.pk,
                channel=message.channel,
                status=message.status,
                **amounts,
            )
    return changed
