"""Reads for the finance UI: querysets, never writes."""

import dataclasses
import datetime as dt

from django.db.models import Count, Exists, F, Func, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from dunning_site.accounts.models import Customer, Invoice, User
from dunning_site.collections.context import message_context
from dunning_site.collections.models import (
    Approval,
    CallTask,
    Case,
    CaseEvent,
    CustomerRequest,
    Draft,
    Instalment,
    PaymentPlan,
    Policy,
    Promise,
    Step,
    StepExecution,
)
from dunning_site.notifications.models import Message, MessageTemplate
from dunning_site.notifications.rendering import render_message, template_warnings


def cases_for_list() -> QuerySet[Case]:
    return Case.objects.select_related("customer", "policy", "current_step", "next_step", "assignee")


def case_totals(cases: QuerySet[Case]) -> list[dict]:
    """What the listed cases pursue, per currency (amounts are never added across currencies): the
    amount overdue and the number of cases. One query, whatever the number of cases."""
    return list(
        cases.order_by()
        .values("currency")
        .annotate(amount=Sum("amount_overdue"), count=Count("pk"))
        .order_by("currency")
    )


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
        "requests": CustomerRequest.objects.filter(answered_at__isnull=True)
        .filter(Q(case__assignee=user) | Q(case__assignee__isnull=True))
        .select_related("customer")
        .order_by("received_at"),
        "broken_promises": promises_broken_unattended()
        .filter(Q(case__assignee=user) | Q(case__assignee__isnull=True))
        .select_related("case__customer")
        .order_by("-resolved_at"),
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


def promises_broken_unattended() -> QuerySet[Promise]:
    """Broken promises of cases still pursued that nobody has worked since: no staff action on the case
    (a note, a call logged, a hold, an assignment…) and no newer promise after the promise broke."""
    worked_since = CaseEvent.objects.filter(
        case=OuterRef("case"), actor=CaseEvent.Actor.USER, at__gt=OuterRef("resolved_at")
    )
    promised_since = Promise.objects.filter(case=OuterRef("case"), created_at__gt=OuterRef("resolved_at"))
    return Promise.objects.filter(status=Promise.Status.BROKEN, case__status__in=Case.ACTIVE_STATUSES).exclude(
        Exists(worked_since) | Exists(promised_since)
    )


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
            Prefetch("approvals", queryset=Approval.objects.select_related("step", "requested_by", "decided_by")),
            Prefetch(
                "plans",
                queryset=PaymentPlan.objects.select_related("offered_by").prefetch_related(
                    Prefetch("instalments", queryset=Instalment.objects.order_by("number"))
                ),
            ),
            Prefetch(
                "customer_requests",
                queryset=CustomerRequest.objects.select_related("answered_by").order_by("-received_at"),
            ),
            Prefetch("promises", queryset=Promise.objects.select_related("created_by").order_by("-created_at", "-pk")),
        )
        .get(pk=case_id)
    )


# ---------------------------------------------------------------------------------------------
# Policies and message templates (the managers' screens and the admin)

PREVIEW_CUSTOMERS_SHOWN = 200
NO_PREVIEW_CUSTOMER = "No customer has an open invoice to preview with."
PREVIEW_FAILED = "This template cannot be rendered: %(error)s"


def _count(queryset: QuerySet) -> Subquery:
    """A correlated COUNT(*) (two counts joined in one query would multiply each other)."""
    return Subquery(
        queryset.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n"), output_field=IntegerField()
    )


def policies_for_list() -> QuerySet[Policy]:
    return Policy.objects.annotate(
        step_count=_count(Step.objects.filter(policy=OuterRef("pk"))),
        active_case_count=_count(Case.objects.filter(policy=OuterRef("pk"), status__in=Case.ACTIVE_STATUSES)),
    ).order_by("priority", "name")


def policy_steps(*, policy: Policy) -> QuerySet[Step]:
    return policy.steps.select_related("template").order_by("position")


@dataclasses.dataclass(frozen=True)
class LadderCounts:
    """Where a policy's active cases stand. Each case counts once in `last` (the step it went
    through last, if any) and once in `next` (the step it waits for, approval included, if any),
    so each of the two adds up to at most `active`."""

    last: dict[int, int]  # step id → active cases whose last step it was
    next: dict[int, int]  # step id → active cases that wait for it
    active: int


def ladder_counts(*, policy: Policy) -> LadderCounts:
    # One row per (last step, next step) pair, counted by the database: never one row per case.
    pairs = (
        Case.objects.filter(policy=policy, status__in=Case.ACTIVE_STATUSES)
        .order_by()
        .values_list("current_step", "next_step")
        .annotate(Count("pk"))
    )
    last: dict[int, int] = {}
    waiting: dict[int, int] = {}
    active = 0
    for last_step, next_step, cases in pairs:
        if last_step is not None:
            last[last_step] = last.get(last_step, 0) + cases
        if next_step is not None:
            waiting[next_step] = waiting.get(next_step, 0) + cases
        active += cases
    return LadderCounts(last=last, next=waiting, active=active)


def steps_in_use(*, policy: Policy) -> dict[int, int]:
    """Step id → how many active cases stand on it (their last step or their next one) or wait
    for its approval: changing such a step would change what those cases are doing."""
    cases: dict[int, set[int]] = {}
    rows = Case.objects.filter(policy=policy, status__in=Case.ACTIVE_STATUSES).values_list(
        "pk", "current_step_id", "next_step_id"
    )
    for case_id, current_step_id, next_step_id in rows:
        for step_id in (current_step_id, next_step_id):
            if step_id is not None:
                cases.setdefault(step_id, set()).add(case_id)
    pending = Approval.objects.filter(
        step__policy=policy, status=Approval.Status.PENDING, case__status__in=Case.ACTIVE_STATUSES
    ).values_list("step_id", "case_id")
    for step_id, case_id in pending:
        cases.setdefault(step_id, set()).add(case_id)
    return {step_id: len(case_ids) for step_id, case_ids in cases.items()}


def steps_with_history(*, policy: Policy) -> set[int]:
    """Steps that cases (closed ones too) performed or point at: the database keeps them for the record."""
    performed = StepExecution.objects.filter(step__policy=policy).order_by().values("step_id")
    requested = Approval.objects.filter(step__policy=policy).order_by().values("step_id")
    # No ORDER BY inside a UNION (SQLite refuses it; cases are ordered by default).
    current = Case.objects.filter(policy=policy, current_step__isnull=False).order_by().values("current_step_id")
    upcoming = Case.objects.filter(policy=policy, next_step__isnull=False).order_by().values("next_step_id")
    # One query, one row per step: never every case of the policy.
    return set(performed.union(requested, current, upcoming).values_list("step_id", flat=True)) - {None}


def message_templates_for_list(*, key: str = "", language: str = "") -> QuerySet[MessageTemplate]:
    templates = MessageTemplate.objects.order_by("key", "language", "segment")
    if key:
        templates = templates.filter(key__icontains=key)
    if language:
        templates = templates.filter(language=language)
    return templates


def preview_customers() -> QuerySet[Customer]:
    """Customers a template can be previewed with: those owing something, so every variable has a value."""
    return Customer.objects.filter(invoices__status=Invoice.Status.OPEN).distinct().order_by("name")


def preview_customer_default() -> Customer | None:
    """The customer a preview starts with: one a case is dunning for overdue invoices, so that
    what a reminder says ("now past due", days overdue) is true of them; anyone owing otherwise."""
    dunned = Customer.objects.filter(
        cases__status__in=Case.ACTIVE_STATUSES,
        invoices__status=Invoice.Status.OPEN,
        invoices__due_on__lt=timezone.localdate(),
    )
    return dunned.distinct().order_by("name", "pk").first() or preview_customers().first()


def template_preview(template: MessageTemplate, customer_id: str | int | None) -> dict:
    """The template (saved or not) rendered with a real customer's open invoices, the overdue ones
    when there are any, as reminders speak of them (the customer chosen, or by default one being
    dunned); nothing is written."""
    customers = preview_customers()
    customer_id = str(customer_id or "")
    customer = customers.filter(pk=customer_id).first() if customer_id.isdigit() else None
    customer = customer or preview_customer_default()
    if customer is None:
        return {"preview_missing": NO_PREVIEW_CUSTOMER}
    today = timezone.localdate()
    # Each with its case's payment problem, so the preview carries the call to action the case's
    # messages carry (in the same query: the editor's query count is pinned).
    problem_of_case = Case.objects.filter(invoices=OuterRef("pk"), status__in=Case.ACTIVE_STATUSES)
    invoices = list(
        customer.invoices.filter(status=Invoice.Status.OPEN)
        .annotate(case_payment_problem=Subquery(problem_of_case.values("payment_problem")[:1]))
        .order_by("due_on")
    )
    invoices = [invoice for invoice in invoices if invoice.due_on < today] or invoices
    currency = invoices[0].currency
    invoices = [invoice for invoice in invoices if invoice.currency == currency]
    problem = next((invoice.case_payment_problem for invoice in invoices if invoice.case_payment_problem), "")
    context = message_context(
        customer=customer, currency=currency, invoices=invoices, today=today, payment_problem=problem
    )
    choices = list(customers[:PREVIEW_CUSTOMERS_SHOWN])
    if customer not in choices:
        choices.insert(0, customer)  # the one shown is always the one selected
    found = {
        "preview_customer": customer,
        "preview_customers": choices,
        "warnings": template_warnings(subject=template.subject, body=template.body, html_body=template.html_body),
    }
    try:
        subject, body, html = render_message(template, context)
    except Exception as error:  # a template saved before validation existed must not break the page
        return found | {"preview_missing": PREVIEW_FAILED % {"error": error}}
    return found | {"preview_subject": subject, "preview_body": body, "preview_html": html}
