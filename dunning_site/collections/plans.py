"""Payment plans: a collector's offer, a customer's own choice, a manager's decision on terms outside
the policy's self-serve limits, the customer's acceptance, a cancellation.

Terms within the limits go straight on: a collector's offer waits for the customer to accept it; a
customer's own choice is accepted as it is made. Terms outside them — more instalments, smaller ones,
a longer plan, a smaller down payment than the policy allows, or (for a customer) a total above the
policy's self-serve amount — wait as "requested" for a manager (an approval of kind PLAN, four eyes:
collections.approvals.approval_decide); approved, they become an offer the customer accepts.

An accepted plan holds the case for the ladder until the last instalment's day plus the policy's grace
(collections.holds treats the hold like a promise: reminders and retries wait), but the instalments
themselves are what the customer agreed to, so the hold rule lets them be charged.
"""

import dataclasses
import datetime as dt

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from dunning_site.accounts.models import User
from dunning_site.collections import holds
from dunning_site.collections.case_core import CASE_NOT_ACTIVE, case_hold, case_resume
from dunning_site.collections.models import PLAN_INSTALMENTS_MAX, Approval, Case, CaseEvent, Instalment, PaymentPlan
from dunning_site.collections.plan_schedule import (
    INTERVALS,
    Payment,
    plan_problems,
    plan_schedule,
)
from dunning_site.collections.timeline import case_event, case_name
from dunning_site.lib.money import format_money

PLAN_ALREADY_CURRENT = "The case of %(case)s already has a payment plan (%(status)s): cancel it first."
PLAN_ABOVE_OWED = "A plan can cover at most the %(owed)s overdue."
PLAN_TOTAL_NOT_POSITIVE = "A plan's total must be more than zero."
PLAN_NEGATIVE = "This cannot be negative."
PLAN_DOWN_PAYMENT_TOO_LARGE = "The down payment must leave at least one minor unit for each instalment."
PLAN_INSTALMENTS_OUT_OF_RANGE = f"A plan has from 1 to {PLAN_INSTALMENTS_MAX} instalments."
PLAN_UNKNOWN_INTERVAL = "Choose weekly, every two weeks or monthly."
PLAN_FIRST_DATE_IN_PAST = "The first payment must be due today or later."
PLAN_DURING_DISPUTE = "The customer of %(case)s disputes a charge: no plan is made while the dispute is open."
PLAN_NOT_OFFERED = "This plan is %(status)s: only an offered plan can be accepted."
PLAN_TERMS_CHANGED = "The terms shown are not this plan's: show the plan again and accept what it says."
PLAN_NOT_CURRENT = "This plan is %(status)s: only a plan waiting, offered or active can be cancelled."
PLAN_NOT_REQUESTED = "This plan is %(status)s: only a plan waiting for a manager can be decided."
# The hold an accepted plan puts on the case: holds.is_plan knows it by its start.
PLAN_HOLD_REASON = holds.PLAN_REASON_PREFIX + " %(count)s payments, the last on %(last)s"


@dataclasses.dataclass(frozen=True)
class PlanTerms:
    """What a plan is made of, as a collector or a customer chose it (minor units)."""

    total: int
    instalment_count: int
    interval: str
    first_date: dt.date
    down_payment: int = 0
    fee: int = 0


def plan_terms_errors(*, case: Case, terms: PlanTerms, today: dt.date) -> dict[str, str]:
    """What makes terms impossible whoever approves them, by field (the self-serve limits are
    plan_problems')."""
    errors = {}
    if terms.total <= 0:
        errors["total"] = PLAN_TOTAL_NOT_POSITIVE
    elif terms.total > case.amount_overdue:
        errors["total"] = PLAN_ABOVE_OWED % {"owed": format_money(case.amount_overdue, case.currency)}
    if not 1 <= terms.instalment_count <= PLAN_INSTALMENTS_MAX:
        errors["instalment_count"] = PLAN_INSTALMENTS_OUT_OF_RANGE
    if terms.interval not in INTERVALS:
        errors["interval"] = PLAN_UNKNOWN_INTERVAL
    if terms.first_date < today:
        errors["first_date"] = PLAN_FIRST_DATE_IN_PAST
    if terms.down_payment < 0:
        errors["down_payment"] = PLAN_NEGATIVE
    if terms.fee < 0:
        errors["fee"] = PLAN_NEGATIVE
    if not errors and terms.total + terms.fee - terms.down_payment < terms.instalment_count:
        errors["down_payment"] = PLAN_DOWN_PAYMENT_TOO_LARGE
    return errors


@dataclasses.dataclass(frozen=True)
class PlanPreview:
    """Terms as the case page and the portal show them before anything is stored."""

    schedule: list[Payment]
    errors: dict[str, str]  # nobody can approve these
    problems: dict[str, str]  # outside the self-serve limits: a manager decides

    @property
    def needs_approval(self) -> bool:
        return not self.errors and bool(self.problems)


def plan_preview(*, case: Case, terms: PlanTerms, by_customer: bool, today: dt.date | None = None) -> PlanPreview:
    """The schedule of `terms` on `case`, and what stands in their way (nothing is written)."""
    today = today or timezone.localdate()
    errors = plan_terms_errors(case=case, terms=terms, today=today)
    if errors:
        return PlanPreview([], errors, {})
    schedule = plan_schedule(currency=case.currency, **dataclasses.asdict(terms))
    problems = plan_problems(
        limits=case.policy,
        currency=case.currency,
        today=today,
        check_amount=by_customer,
        **dataclasses.asdict(terms),
    )
    return PlanPreview(schedule, {}, problems)


def schedule_terms(plan: PaymentPlan, schedule: list[Payment]) -> dict:
    """The terms and schedule as plain values: what the customer is shown and what they accept."""
    return {
        "currency": plan.currency,
        "total": plan.total,
        "fee": plan.fee,
        "down_payment": plan.down_payment,
        "interval": plan.interval,
        "instalment_count": plan.instalment_count,
        "schedule": [{"number": p.number, "due_on": p.due_on.isoformat(), "amount": p.amount} for p in schedule],
    }


def plan_terms_of(plan: PaymentPlan) -> dict:
    """The terms of a stored plan, its instalments as stored."""
    instalments = plan.instalments.order_by("number")
    return schedule_terms(plan, [Payment(i.number, i.due_on, i.amount) for i in instalments])


def _record(case: Case, type: str, *, plan: PaymentPlan, user: User | None, customer: bool, now: dt.datetime, **data):
    event = case_event(case, type, user=user, at=now, plan_id=plan.pk, plan_status=plan.status, **data)
    if customer:
        event.actor = CaseEvent.Actor.CUSTOMER
    event.save()
    return event


def _case_for_plan(case: Case) -> Case:
    case = Case.objects.select_for_update(of=("self",)).select_related("customer", "policy").get(pk=case.pk)
    if not case.is_active:
        raise ValidationError(CASE_NOT_ACTIVE % {"case": case_name(case), "status": case.get_status_display().lower()})
    if holds.customer_is_disputing(customer_id=case.customer_id):
        raise ValidationError(PLAN_DURING_DISPUTE % {"case": case_name(case)})
    current = PaymentPlan.objects.filter(case=case, status__in=PaymentPlan.CURRENT_STATUSES).first()
    if current is not None:
        raise ValidationError(
            PLAN_ALREADY_CURRENT % {"case": case_name(case), "status": current.get_status_display().lower()}
        )
    return case


def _plan_create(
    *,
    case: Case,
    terms: PlanTerms,
    source: str,
    user: User | None,
    reason: str,
    now: dt.datetime,
) -> tuple[PaymentPlan, PlanPreview]:
    """Write a plan and its instalments: offered within the limits, requested (with its approval) outside."""
    case = _case_for_plan(case)
    by_customer = source == PaymentPlan.Source.CUSTOMER
    preview = plan_preview(case=case, terms=terms, by_customer=by_customer, today=timezone.localdate(now))
    if preview.errors:
        raise ValidationError(preview.errors)
    status = PaymentPlan.Status.REQUESTED if preview.needs_approval else PaymentPlan.Status.OFFERED
    plan = PaymentPlan(
        case=case,
        customer=case.customer,
        currency=case.currency,
        status=status,
        source=source,
        offered_by=user,
        reason=reason.strip(),
        created_at=now,
        **dataclasses.asdict(terms),
    )
    try:
        with transaction.atomic():
            plan.save()
    except IntegrityError:  # another path made a plan since the check: the database's rule holds
        raise ValidationError(PLAN_ALREADY_CURRENT % {"case": case_name(case), "status": "new"}) from None
    Instalment.objects.bulk_create(
        Instalment(plan=plan, number=p.number, due_on=p.due_on, amount=p.amount) for p in preview.schedule
    )
    terms_data = schedule_terms(plan, preview.schedule)
    if status == PaymentPlan.Status.REQUESTED:
        approval = Approval.objects.create(
            case=case,
            kind=Approval.Kind.PLAN,
            plan=plan,
            reason=plan.reason,
            requested_by=user,
            requested_at=now,
        )
        _record(
            case,
            "collections.plan.requested",
            plan=plan,
            user=user,
            customer=by_customer,
            now=now,
            approval_id=approval.pk,
            outside_limits=preview.problems,
            reason=plan.reason,
            terms=terms_data,
        )
    else:
        _record(case, "collections.plan.offered", plan=plan, user=user, customer=by_customer, now=now, terms=terms_data)
    return plan, preview


@transaction.atomic
def plan_offer(
    *,
    case: Case,
    user: User,
    total: int,
    instalment_count: int,
    interval: str,
    first_date: dt.date,
    down_payment: int = 0,
    fee: int = 0,
    reason: str = "",
    now: dt.datetime | None = None,
) -> PaymentPlan:
    """A collector offers terms on a case: offered (the customer accepts them in the portal), or, outside
    the policy's self-serve limits (the amount limit aside), requested from a manager first."""
    now = now or timezone.now()
    terms = PlanTerms(total, instalment_count, interval, first_date, down_payment, fee)
    plan, _ = _plan_create(
        case=case, terms=terms, source=PaymentPlan.Source.COLLECTOR, user=user, reason=reason, now=now
    )
    return plan


@transaction.atomic
def plan_request_by_customer(
    *,
    case: Case,
    total: int,
    instalment_count: int,
    interval: str,
    first_date: dt.date,
    down_payment: int = 0,
    ip: str | None,
    user_agent: str,
    terms_shown: dict | None = None,
    reason: str = "",
    now: dt.datetime | None = None,
) -> PaymentPlan:
    """A customer chooses a plan in the portal. Within every self-serve limit it is accepted as chosen
    (active at once, the case held); outside them, or above the policy's self-serve amount, it waits
    for a manager, and once approved it is an offer the customer accepts (plan_accept). A customer's
    plan has no fee."""
    now = now or timezone.now()
    terms = PlanTerms(total, instalment_count, interval, first_date, down_payment)
    plan, _ = _plan_create(
        case=case, terms=terms, source=PaymentPlan.Source.CUSTOMER, user=None, reason=reason, now=now
    )
    if plan.status == PaymentPlan.Status.OFFERED:
        plan = _accept(plan, ip=ip, user_agent=user_agent, terms_shown=terms_shown, now=now)
    return plan


@transaction.atomic
def plan_accept(
    *,
    plan: PaymentPlan,
    ip: str | None,
    user_agent: str,
    terms_shown: dict | None = None,
    now: dt.datetime | None = None,
) -> PaymentPlan:
    """The customer accepts an offered plan: recorded with the moment, their IP address and browser, and
    the terms they were shown (which must be this plan's; None: the plan's own, as the portal shows
    them). The case goes on hold for the ladder until the last payment's day plus the policy's grace."""
    now = now or timezone.now()
    case = Case.objects.select_for_update(of=("self",)).get(pk=plan.case_id)
    plan = PaymentPlan.objects.select_for_update().get(pk=plan.pk)
    if plan.status != PaymentPlan.Status.OFFERED:
        raise ValidationError(PLAN_NOT_OFFERED % {"status": plan.get_status_display().lower()})
    if not case.is_active:
        raise ValidationError(CASE_NOT_ACTIVE % {"case": case_name(case), "status": case.get_status_display().lower()})
    if holds.customer_is_disputing(customer_id=case.customer_id):
        raise ValidationError(PLAN_DURING_DISPUTE % {"case": case_name(case)})
    return _accept(plan, ip=ip, user_agent=user_agent, terms_shown=terms_shown, now=now)


def _accept(
    plan: PaymentPlan, *, ip: str | None, user_agent: str, terms_shown: dict | None, now: dt.datetime
) -> PaymentPlan:
    terms = plan_terms_of(plan)
    if terms_shown is not None and _schedule_of(terms_shown) != _schedule_of(terms):
        raise ValidationError(PLAN_TERMS_CHANGED)
    plan.status = PaymentPlan.Status.ACTIVE
    plan.accepted_at = plan.decided_at = now
    plan.accepted_ip = ip or None
    plan.accepted_user_agent = (user_agent or "")[:500]
    plan.terms_shown = terms_shown if terms_shown is not None else terms
    plan.save(
        update_fields=["status", "accepted_at", "decided_at", "accepted_ip", "accepted_user_agent", "terms_shown"]
    )
    schedule = terms["schedule"]
    last = dt.date.fromisoformat(schedule[-1]["due_on"])
    grace = plan.case.policy.plan_grace_days
    until = dt.datetime.combine(last + dt.timedelta(days=grace + 1), dt.time(), tzinfo=dt.UTC)
    reason = PLAN_HOLD_REASON % {"count": len(schedule), "last": last.isoformat()}
    _record(plan.case, "collections.plan.accepted", plan=plan, user=None, customer=True, now=now, ip=plan.accepted_ip)
    case_hold(case=plan.case, until=until, reason=reason, user=None)
    return plan


def _schedule_of(terms: dict) -> list[tuple]:
    """What must match between the terms shown and the plan: the currency and every payment."""
    try:
        payments = [(str(p["due_on"]), int(p["amount"])) for p in terms.get("schedule", [])]
    except (TypeError, KeyError, ValueError, AttributeError):
        return []
    return [terms.get("currency"), *payments]


@transaction.atomic
def plan_cancel(
    *, plan: PaymentPlan, user: User | None = None, reason: str = "", now: dt.datetime | None = None
) -> PaymentPlan:
    """End a plan before its term (the customer changed their mind, a collector withdraws an offer):
    its unpaid instalments are cancelled, a request waiting for a manager is withdrawn, and a case
    held by the plan resumes its ladder."""
    now = now or timezone.now()
    case = Case.objects.select_for_update(of=("self",)).select_related("customer").get(pk=plan.case_id)
    plan = PaymentPlan.objects.select_for_update().get(pk=plan.pk)
    if not plan.is_current:
        raise ValidationError(PLAN_NOT_CURRENT % {"status": plan.get_status_display().lower()})
    was_active = plan.status == PaymentPlan.Status.ACTIVE
    plan.status, plan.decided_at = PaymentPlan.Status.CANCELLED, now
    plan.save(update_fields=["status", "decided_at"])
    cancelled = plan.instalments.filter(status=Instalment.Status.SCHEDULED).update(status=Instalment.Status.CANCELLED)
    Approval.objects.filter(plan=plan, status=Approval.Status.PENDING).update(
        status=Approval.Status.CANCELLED, decided_at=now, note="The plan was cancelled"
    )
    _record(
        case,
        "collections.plan.cancelled",
        plan=plan,
        user=user,
        customer=False,
        now=now,
        reason=reason.strip(),
        cancelled_instalments=cancelled,
    )
    if was_active and case.status == Case.Status.PAUSED and holds.is_plan(case.pause_reason):
        case_resume(case=case, user=user, now=now)
    return plan


def plan_approval_decided(*, approval: Approval, approve: bool, user: User, now: dt.datetime) -> PaymentPlan:
    """A manager's decision on a plan's terms (from approvals.approval_decide, which locked the case and
    the approval): approved, the plan is offered to the customer; rejected, it ends there."""
    plan = PaymentPlan.objects.select_for_update().get(pk=approval.plan_id)
    if plan.status != PaymentPlan.Status.REQUESTED:
        raise ValidationError(PLAN_NOT_REQUESTED % {"status": plan.get_status_display().lower()})
    if approve:
        plan.status = PaymentPlan.Status.OFFERED
    else:
        plan.status, plan.decided_at = PaymentPlan.Status.REJECTED, now
        plan.instalments.update(status=Instalment.Status.CANCELLED)
    plan.save(update_fields=["status", "decided_at"])
    event = "collections.plan.offered" if approve else "collections.plan.rejected"
    _record(approval.case, event, plan=plan, user=user, customer=False, now=now, approval_id=approval.pk)
    return plan
