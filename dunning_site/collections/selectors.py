"""Reads for the finance UI: querysets, never writes."""

import datetime as dt

from django.db.models import F, Func, IntegerField, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from dunning_site.accounts.models import User
from dunning_site.collections.models import Approval, CallTask, Case, CaseEvent, Draft
from dunning_site.notifications.models import Message


def cases_for_list() -> QuerySet[Case]:
    return Case.objects.select_related("customer", "policy", "current_step", "next_step", "assignee")


def worklist(*, user: User, now: dt.datetime | None = None) -> dict[str, QuerySet]:
    """What needs this collector's (or manager's) attention now, section by section."""
    now = now or timezone.now()
    mine_or_nobody = Q(assigned_to=user) | Q(assigned_to__isnull=True)
    sections = {
        "drafts": Draft.objects.filter(mine_or_nobody)
        .select_related("customer")
        .prefetch_related(Prefetch("cases", queryset=Case.objects.only("pk")))
        .order_by("created_at"),
        "calls": CallTask.objects.filter(mine_or_nobody, call_outcome="", status="sent")
        .select_related("customer")
        .prefetch_related(Prefetch("cases", queryset=Case.objects.only("pk")))
        .order_by("send_after"),
        "promises": Case.objects.filter(
            status=Case.Status.PAUSED, pause_reason__startswith="Promise", paused_until__lte=now + dt.timedelta(days=1)
        )
        .filter(Q(assignee=user) | Q(assignee__isnull=True))
        .select_related("customer")
        .order_by("paused_until"),
        "bounced": Case.objects.filter(status__in=Case.ACTIVE_STATUSES)
        .filter(Q(customer__email_unusable_since__isnull=False) | Q(customer__phone_unusable_since__isnull=False))
        .filter(Q(assignee=user) | Q(assignee__isnull=True))
        .select_related("customer"),
        "unassigned": Case.objects.filter(status__in=Case.ACTIVE_STATUSES, assignee__isnull=True)
        .select_related("customer")
        .order_by("-opened_at"),
    }
    if user.has_perm("collections.decide_approval"):
        sections["approvals"] = (
            Approval.objects.filter(status=Approval.Status.PENDING)
            .exclude(requested_by=user)
            .select_related("case__customer", "step")
            .order_by("requested_at")
        )
    return sections


def worklist_counts(*, user: User) -> dict[str, int]:
    """How many items each worklist section holds, in one query (the navigation shows them on every page)."""
    counts = {
        name: Subquery(
            queryset.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n"), output_field=IntegerField()
        )
        for name, queryset in worklist(user=user).items()
    }
    found = User.objects.filter(pk=user.pk).values(**counts).get()
    found["to_work"] = sum(count for name, count in found.items() if name != "approvals")
    return found


def case_detail(*, case_id: int) -> Case:
    return (
        Case.objects.select_related("customer", "policy", "current_step", "next_step", "assignee")
        .prefetch_related(
            "customer__consents",
            "invoices",
            Prefetch("events", queryset=CaseEvent.objects.select_related("user").order_by("-at", "-pk")),
            Prefetch("messages", queryset=Message.objects.order_by("-created_at")),
            Prefetch("approvals", queryset=Approval.objects.select_related("step", "decided_by")),
        )
        .get(pk=case_id)
    )
