"""The case core: opening a case (or joining new overdue invoices to the open one), reconciling it
with its invoices, closing it (paid or written off), holds (pause, resume, the end of a hold), the
assignee and notes.

Every write is atomic and leaves a CaseEvent (collections.timeline). What happens above the core when a
hold ends (retries planned afresh, a promise to pay settled) or a case closes (a pending promise settled)
is sent as the `case_resumed` and `case_closed` signals (collections.signals); the core knows nothing of
Stripe's events, the retry planner, promises or the ladder's tick.
"""

import datetime as dt
import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import dateformat, timezone

from dunning_site.accounts.models import Customer, Invoice, User
from dunning_site.collections import holds, service_hooks
from dunning_site.collections.models import (
    Approval,
    Case,
    CaseEvent,
    Dispute,
    Instalment,
    PaymentPlan,
    PaymentRetry,
    Policy,
    ServiceHookDelivery,
)
from dunning_site.collections.queued_messages import case_messages_refresh
from dunning_site.collections.schedule import case_schedule, first_step, policy_for, step_due_at
from dunning_site.collections.signals import case_closed, case_resumed
from dunning_site.collections.stripe_updates import invoices_uncollectible_request, subscription_collection_request
from dunning_site.collections.timeline import (
    ENGINE_TROUBLE,
    FAILED_CASE_RETRY_AFTER,
    case_event,
    case_event_record,
    case_name,
    error_described,
    step_data,
)
from dunning_site.lib import dates
from dunning_site.lib.money import format_money
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import messages_cancel

logger = logging.getLogger(__name__)


CASE_NOT_ACTIVE = "The case of %(case)s is %(status)s; only active cases can be changed."


CASE_NOT_PAUSED = "The case of %(case)s is not on hold."


ALREADY_ON_HOLD = "The case of %(case)s is already on hold (%(reason)s): resume it first to put it on another hold."


PAUSE_IN_PAST = "The pause must end in the future."


# A hold with an end date is bounded like a scheduled message: otherwise a date years away would be a
# promise to pay without the policy's limit. A hold without a date stays on the worklist until resumed.
HOLD_HORIZON = dt.timedelta(days=90)


HOLD_TOO_FAR = (
    "A hold may end at most %(days)s days from now, by %(latest)s; "
    "leave the end empty to hold the case until someone resumes it."
)


RESUME_FAILED = "The hold ended but the case could not be resumed (%(error)s); it tries again at %(retry_at)s."


def case_open_or_join(
    *, customer_id: int, currency: str, policies: list[Policy], now: dt.datetime, grace: bool = True
) -> int:
    """Open the customer's case in this currency or add invoices to it. Without `grace` (a card
    payment just failed) every invoice due by now counts, not only those past the grace period."""
    # Locking the customer serializes openers on several workers: the second one sees the case.
    customer = Customer.objects.select_for_update().get(pk=customer_id)
    invoices = list(
        Invoice.objects.filter(
            customer=customer, currency=currency, status=Invoice.Status.OPEN, amount_remaining__gt=0
        ).exclude(cases__status__in=Case.ACTIVE_STATUSES)
    )
    case = Case.objects.filter(customer=customer, currency=currency, status__in=Case.ACTIVE_STATUSES).first()
    if case is not None:
        joining = [invoice for invoice in invoices if _overdue(invoice, case.policy, now, grace)]
        if joining:
            case.invoices.add(*joining)
            Case.objects.filter(pk=case.pk).update(
                entered_amount=F("entered_amount") + sum(invoice.owed for invoice in joining)
            )
            for invoice in joining:
                case_event_record(case, "collections.case.invoice_added", at=now, invoice=invoice.number)
            case_reconcile(case=case, now=now)
        return 0
    amount = sum(invoice.owed for invoice in invoices)
    policy = policy_for(policies=policies, segment=customer.segment, currency=currency, amount=amount)
    if policy is None:
        return 0
    overdue = [invoice for invoice in invoices if _overdue(invoice, policy, now, grace)]
    if not overdue:
        return 0
    case_open(customer=customer, currency=currency, policy=policy, invoices=overdue, now=now)
    return 1


def _overdue(invoice: Invoice, policy: Policy, now: dt.datetime, grace: bool) -> bool:
    if not grace:
        return invoice.due_on <= now.date()
    return invoice.due_on + dt.timedelta(days=policy.grace_days) < now.date()


@transaction.atomic
def case_open(
    *, customer: Customer, currency: str, policy: Policy, invoices: list[Invoice], now: dt.datetime | None = None
) -> Case:
    now = now or timezone.now()
    case = Case(
        customer=customer,
        currency=currency,
        policy=policy,
        amount_overdue=sum(invoice.owed for invoice in invoices),
        entered_amount=sum(invoice.owed for invoice in invoices),
        anchor_due_on=min(invoice.due_on for invoice in invoices),
        opened_at=now,
    )
    steps = list(policy.steps.all())
    first = first_step(steps, case=case, now=now)
    case_schedule(case, first, after=None, now=now)
    case.save()
    case.invoices.add(*invoices)
    events = [
        case_event(
            case,
            "collections.case.opened",
            at=now,
            policy=policy.name,
            amount_overdue=case.amount_overdue,
            invoices=[invoice.number for invoice in invoices],
        )
    ]
    skipped = [step for step in steps if first is not None and step.position < first.position]
    events += [
        case_event(case, "collections.step.skipped", at=now, reason="case opened after the step's day", **step_data(s))
        for s in skipped
    ]
    CaseEvent.objects.bulk_create(events)
    if Dispute.objects.filter(customer=customer, closed_at__isnull=True).exists():
        # The customer disputes a charge with their bank: nothing is charged or sent until it closes.
        case = case_hold(case=case, until=None, reason="dispute", user=None)
    return case


# Why pending approvals were cancelled, and what the service system is told, by how a case closes.
CLOSING_NOTES = {Case.Status.RESOLVED: "Case resolved", Case.Status.WRITTEN_OFF: "Case written off"}


REINSTATE_REASONS = {Case.Status.RESOLVED: "case_resolved", Case.Status.WRITTEN_OFF: "case_written_off"}


REST_WRITTEN_OFF = "Everything else was paid; the %(amount)s written off will not be collected."


@transaction.atomic
def case_reconcile(*, case: Case, user: User | None = None, now: dt.datetime | None = None) -> Case:
    """Bring the case in line with its invoices, the one source of what is owed (a write-off is a
    credit note on them): resolve it when nothing is owed any more, or close it as written off when
    what was not paid was written off. When the amount changes, the messages not yet sent are
    written again with it (collections.queued_messages)."""
    now = now or timezone.now()
    case = Case.objects.select_for_update().select_related("customer").get(pk=case.pk)
    if not case.is_active:
        return case
    owed = sum(
        invoice.owed
        for invoice in case.invoices.filter(status=Invoice.Status.OPEN).only(
            "total", "amount_paid", "amount_written_off"
        )
    )
    if owed <= 0:
        written_off = case_written_off_amount(case=case)
        if not written_off:
            return case_close(
                case, Case.Status.RESOLVED, "collections.case.resolved", user=user, now=now, amount=case.amount_overdue
            )
        # All paid but what managers wrote off: the case is not "recovered" (paid in full), so it
        # closes as written off, as the dashboard counts it.
        credited = case.invoices.filter(amount_written_off__gt=0).order_by("due_on", "number")
        return case_close(
            case,
            Case.Status.WRITTEN_OFF,
            "collections.case.written_off",
            user=user,
            now=now,
            written_off=written_off,
            currency=case.currency,
            invoices=list(credited.values_list("number", flat=True)),
            reason=REST_WRITTEN_OFF % {"amount": format_money(written_off, case.currency)},
        )
    if owed != case.amount_overdue:
        previous = case.amount_overdue
        case_event(
            case,
            "collections.case.amount_changed",
            user=user,
            at=now,
            previous=previous,
            amount_overdue=owed,
        ).save()
        case.amount_overdue = owed
        case.save(update_fields=["amount_overdue", "updated_at"])
        case_messages_refresh(case=case, previous=previous, now=now)
    return case


def case_close(case: Case, status: str, event_type: str, *, user: User | None, now: dt.datetime, **data) -> Case:
    """Close a (locked) case, paid (RESOLVED) or written off (WRITTEN_OFF), and record `event_type`
    with `data`. Either way the customer is no longer pursued, so everything that pursues them stops:
    queued messages and drafts, pending approvals, scheduled card retries; and a suspended service
    comes back, as does collection of their Stripe subscriptions."""
    case.status = status
    case.resolved_at = now
    case.amount_overdue = 0
    case.next_step = None
    case.next_action_at = None
    case.paused_until = None
    case.payment_problem = ""  # nothing is asked of a closed case
    cancelled_messages = messages_cancel(messages=case.messages.all())
    cancelled_retries = PaymentRetry.objects.filter(
        Q(case=case) | Q(invoice__in=case.invoices.all()), status=PaymentRetry.Status.SCHEDULED
    ).update(status=PaymentRetry.Status.CANCELLED)
    Approval.objects.filter(case=case, status=Approval.Status.PENDING).update(
        status=Approval.Status.CANCELLED, decided_at=now, note=CLOSING_NOTES[status]
    )
    # A plan ends with its case: paid in full, an active plan is complete; anything else about it stops.
    plans = PaymentPlan.objects.filter(case=case, status__in=PaymentPlan.CURRENT_STATUSES)
    ended_plans = plans.filter(status=PaymentPlan.Status.ACTIVE).update(
        status=PaymentPlan.Status.COMPLETED if status == Case.Status.RESOLVED else PaymentPlan.Status.CANCELLED,
        decided_at=now,
    )
    ended_plans += plans.update(status=PaymentPlan.Status.CANCELLED, decided_at=now)
    if ended_plans:
        Instalment.objects.filter(plan__case=case, status=Instalment.Status.SCHEDULED).update(
            status=Instalment.Status.CANCELLED
        )
        data["ended_plans"] = ended_plans
    events = [
        case_event(
            case,
            event_type,
            user=user,
            at=now,
            cancelled_messages=cancelled_messages,
            cancelled_retries=cancelled_retries,
            **data,
        )
    ]
    if case.service_suspended:
        case.service_suspended = False
        events.append(case_event(case, "collections.case.reinstated", user=user, at=now))
        # Service comes back once no other case of the customer (another currency) keeps it suspended.
        still_suspended = (
            Case.objects.filter(customer_id=case.customer_id, status__in=Case.ACTIVE_STATUSES, service_suspended=True)
            .exclude(pk=case.pk)
            .exists()
        )
        if not still_suspended:
            service_hooks.service_hook_request(
                case=case, action=ServiceHookDelivery.Action.REINSTATE, reason=REINSTATE_REASONS[status], now=now
            )
            subscription_collection_request(case=case, paused=False)
    case.save()
    CaseEvent.objects.bulk_create(events)
    case_closed.send(sender=Case, case=case, now=now)
    return case


def cases_reconcile_for_invoice(*, invoice: Invoice, user: User | None = None, now: dt.datetime | None = None) -> None:
    for case in Case.objects.filter(invoices=invoice, status__in=Case.ACTIVE_STATUSES):
        case_reconcile(case=case, user=user, now=now)


@transaction.atomic
def case_assign(*, case: Case, assignee: User | None, user: User | None = None) -> Case:
    case = Case.objects.select_for_update().get(pk=case.pk)
    case.assignee = assignee
    case.save(update_fields=["assignee", "updated_at"])
    case_event_record(
        case, "collections.case.assigned", user=user, assignee=assignee.get_username() if assignee else None
    )
    return case


def hold_problem(*, until: dt.datetime, now: dt.datetime) -> str | None:
    """Why a hold (a dispute, a manual hold) cannot end at `until`, or None."""
    if until <= now:
        return PAUSE_IN_PAST
    latest = now + HOLD_HORIZON
    if until > latest:
        return HOLD_TOO_FAR % {
            "days": HOLD_HORIZON.days,
            "latest": dateformat.format(timezone.localtime(latest), "D j M Y"),
        }
    return None


@transaction.atomic
def case_pause(
    *, case: Case, until: dt.datetime | None, reason: str, user: User | None = None, replace_hold: bool = False
) -> Case:
    """Hold the case until someone resumes it, or until `until`, at most HOLD_HORIZON ahead. (A
    promise to pay holds it as far as the policy's max_promise_days: promises.promise_record.)

    A case already on hold keeps its hold unless `replace_hold` (a dispute, which outranks a promise
    or a manual hold): a manual hold laid over a promise would silently lose the promise's date."""
    if until is not None and (problem := hold_problem(until=until, now=timezone.now())):
        raise ValidationError({"paused_until": problem})
    held_for = Case.objects.filter(pk=case.pk, status=Case.Status.PAUSED).values_list("pause_reason", flat=True).first()
    if held_for is not None and not replace_hold:
        reason_shown = dates.days_in_words(held_for) or "no reason given"
        raise ValidationError(ALREADY_ON_HOLD % {"case": case_name(case), "reason": reason_shown})
    return case_hold(case=case, until=until, reason=reason, user=user)


def case_hold(*, case: Case, until: dt.datetime | None, reason: str, user: User | None) -> Case:
    case = Case.objects.select_for_update().get(pk=case.pk)
    if not case.is_active:
        raise ValidationError(CASE_NOT_ACTIVE % {"case": case_name(case), "status": case.get_status_display().lower()})
    if until is not None and until <= timezone.now():
        raise ValidationError({"paused_until": PAUSE_IN_PAST})
    case.status = Case.Status.PAUSED
    case.paused_until = until
    case.pause_reason = reason
    case.save(update_fields=["status", "paused_until", "pause_reason", "updated_at"])
    # Reminders already written (held by quiet hours or a cap) must not go out during a dispute or
    # the day after a promise; drafts stay for the collector. Resuming goes on with the ladder.
    cancelled = messages_cancel(messages=case.messages.filter(status=Message.Status.QUEUED))
    data = {}
    if holds.is_dispute(reason):  # a dispute stops every charge to the customer; other holds make them wait
        data["cancelled_retries"] = holds.retries_cancel_for_dispute(customer_id=case.customer_id)
    case_event_record(
        case,
        "collections.case.paused",
        user=user,
        reason=reason,
        until=until.isoformat() if until else None,
        cancelled_messages=cancelled,
        **data,
    )
    return case


@transaction.atomic
def case_resume(*, case: Case, user: User | None = None, now: dt.datetime | None = None) -> Case:
    now = now or timezone.now()
    case = Case.objects.select_for_update().select_related("customer").get(pk=case.pk)
    if case.status != Case.Status.PAUSED:
        raise ValidationError(CASE_NOT_PAUSED % {"case": case_name(case)})
    # A collector's pending request (escalate, skip, write off) does not hold the ladder; a step's approval does.
    waiting = Approval.objects.filter(case=case, kind=Approval.Kind.STEP, status=Approval.Status.PENDING).exists()
    case.status = Case.Status.AWAITING_APPROVAL if waiting else Case.Status.OPEN
    case.paused_until = None
    case.pause_reason = ""
    if case.next_step is not None and not waiting:
        due = step_due_at(case=case, step=case.next_step)
        case.next_action_at = max(due, now)
    case.save(update_fields=["status", "paused_until", "pause_reason", "next_action_at", "updated_at"])
    case_event_record(case, "collections.case.resumed", user=user)
    case_resumed.send(sender=Case, case=case, now=now)
    return case


def cases_resume_expired(*, now: dt.datetime, failures: list[str] | None = None) -> int:
    """Resume the cases whose hold has ended. One that raises is set aside (see _case_resume_failed)
    and added to `failures` (when given); the others are resumed."""
    due = Case.objects.filter(status=Case.Status.PAUSED, paused_until__lte=now).values_list("pk", flat=True)
    resumed = 0
    for case_id in due[:1000]:
        try:
            case_resume(case=Case(pk=case_id), now=now)
        except ENGINE_TROUBLE:
            raise
        except ValidationError:  # resumed by someone else since the query
            continue
        except Exception as error:
            logger.exception("Case %s: could not be resumed; it is set aside and tried again later", case_id)
            _case_resume_failed(case_id=case_id, error=error, now=now)
            if failures is not None:
                failures.append(f"case {case_id}: {error_described(error)}")
            continue
        resumed += 1
    return resumed


@transaction.atomic
def _case_resume_failed(*, case_id: int, error: Exception, now: dt.datetime) -> None:
    """Keep a case that could not be resumed on hold for FAILED_CASE_RETRY_AFTER more, with the error on
    its timeline, so the next ticks do not fail on it again at once."""
    case = Case.objects.select_for_update().filter(pk=case_id, status=Case.Status.PAUSED, paused_until__lte=now).first()
    if case is None:
        return
    retry_at = now + FAILED_CASE_RETRY_AFTER
    case.paused_until = retry_at
    case.save(update_fields=["paused_until", "updated_at"])
    description = error_described(error)
    case_event_record(
        case,
        "collections.case.resume_failed",
        at=now,
        error=description,
        retry_at=retry_at.isoformat(),
        reason=RESUME_FAILED % {"error": description, "retry_at": f"{retry_at:%Y-%m-%d %H:%M} UTC"},
    )


NOTE_EMPTY = "Write the note first."


@transaction.atomic
def case_note_add(*, case: Case, text: str, user: User) -> CaseEvent:
    """A collector's note on the timeline (what was said on the phone, what to check next)."""
    text = text.strip()
    if not text:
        raise ValidationError({"text": NOTE_EMPTY})
    return case_event_record(case, "collections.case.note_added", user=user, note=text)


def invoices_write_off(invoices: list[Invoice], *, now: dt.datetime) -> None:
    """What is left on these invoices will not be collected: uncollectible here, so the engine does
    not open a new case on them, and at Stripe, so its own retries and reminders stop too."""
    if not invoices:
        return
    Invoice.objects.filter(pk__in=[invoice.pk for invoice in invoices], status=Invoice.Status.OPEN).update(
        status=Invoice.Status.UNCOLLECTIBLE, updated_at=now
    )
    invoices_uncollectible_request(invoices=invoices)


def case_written_off_amount(*, case: Case) -> int:
    """What managers agreed to write off on this case so far (minor units): whether the case, once
    nothing is left to pay, was paid in full or closes as written off."""
    approved = Approval.objects.filter(case=case, kind=Approval.Kind.WRITE_OFF, status=Approval.Status.APPROVED)
    return approved.aggregate(total=Sum("amount"))["total"] or 0
