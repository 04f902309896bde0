"""Reads of the outbox, for operators and `make run`'s console."""

import dataclasses
import datetime as dt

from django.db.models import Count, Min, Q
from django.utils import timezone

from dunning_site.notifications.models import Message


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
