"""Reads of the outbox, for operators, `make run`'s console and the staff who release a message."""

import dataclasses
import datetime as dt

from django.db.models import Count, Min, Q
from django.utils import timezone

from dunning_site.notifications import rules
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import recent_contacts, recipient_of


@dataclasses.dataclass(frozen=True)
class Held:
    """Messages a contact rule holds back for the same reason, and the earliest moment one may go."""

    reason: str
    count: int
    until: dt.datetime


@dataclasses.dataclass(frozen=True)
class OutboxSummary:
    sent: int  # handed to the provider (sent, delivered, and later bounced or failed after sending)
    failed: int
    due: int  # queued, due, not held by a rule: a worker is about to deliver them
    held: list[Held]
    drafts: int


def outbox_summary(*, now: dt.datetime | None = None) -> OutboxSummary:
    """What the outbox holds now. Held messages are grouped by the rule that holds them: the
    reason's words up to its details ("Outside the customer's contact hours (08:00–20:00, …)")."""
    now = now or timezone.now()
    counts = Message.objects.aggregate(
        sent=Count("pk", filter=Q(sent_at__isnull=False)),
        failed=Count("pk", filter=Q(status=Message.Status.FAILED)),
        due=Count("pk", filter=Q(status=Message.Status.QUEUED, send_after__lte=now)),
        drafts=Count("pk", filter=Q(status=Message.Status.DRAFT)),
    )
    waiting = (
        Message.objects.filter(status=Message.Status.QUEUED, send_after__gt=now)
        .exclude(deferred_reason="")
        .values("deferred_reason")
        .annotate(count=Count("pk"), until=Min("send_after"))
    )
    groups: dict[str, Held] = {}
    for row in waiting:
        reason = row["deferred_reason"].split(" (", 1)[0].rstrip(".")
        known = groups.get(reason)
        if known is None:
            groups[reason] = Held(reason, row["count"], row["until"])
        else:
            groups[reason] = Held(reason, known.count + row["count"], min(known.until, row["until"]))
    held = sorted(groups.values(), key=lambda group: group.until)
    return OutboxSummary(counts["sent"], counts["failed"], counts["due"], held, counts["drafts"])


# Statuses in which a message will not reach the customer (its `error` says why).
NOT_GOING = (Message.Status.CANCELLED, Message.Status.FAILED, Message.Status.BOUNCED)


def message_outlook(*, message_id: int, at: dt.datetime | None = None) -> rules.Decision:
    """When a message released for `at` (now by default) may go, as the delivery job will decide
    it then (`services.message_deliver`): sent at that moment, held until a later one, or not at all,
    with the rule's reason. Nothing is written. A message the job has already handled says what
    became of it, so whoever released it is told the truth even if a worker was quicker."""
    at = at or timezone.now()
    message = Message.objects.select_related("contact_rules", "customer").get(pk=message_id)
    if message.status in NOT_GOING:
        return rules.Decision(send=False, cancel=True, reason=message.error)
    if message.status not in Message.PENDING_STATUSES:
        return rules.SEND  # handed to the provider already
    # Not before the moment it is queued for (a deferral may already have moved it on).
    due = max(at, message.send_after) if message.status == Message.Status.QUEUED else at
    decision = rules.decide(
        channel=message.channel,
        now=due,
        rules=rules.Rules.of(message.contact_rules),
        recipient=recipient_of(message.customer),
        recent=recent_contacts(customer=message.customer, now=due),
    )
    if decision.send and due > at:
        return rules.Decision(send=False, defer_until=due, reason=message.deferred_reason)
    return decision
