"""Four eyes: a manager's decision on a ladder step that needs approval, and collectors' requests that
need one (escalate now, skip a step, write off an amount), and payment plans outside the policy's
self-serve limits (collections.plans), decided on the case as it is when decided.
"""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from dunning_site.accounts.models import Invoice, User
from dunning_site.accounts.services import invoices_credit
from dunning_site.collections.case_core import CASE_NOT_ACTIVE, case_close, invoices_write_off
from dunning_site.collections.ladder import enqueue_tick
from dunning_site.collections.models import (
    Approval,
    Case,
    Step,
)
from dunning_site.collections.plans import plan_approval_decided
from dunning_site.collections.queued_messages import case_messages_refresh
from dunning_site.collections.schedule import case_schedule, step_after, step_due_at
from dunning_site.collections.stripe_updates import credit_notes_issue_request
from dunning_site.collections.timeline import case_event_record, case_name, step_data
from dunning_site.lib.money import format_money

APPROVAL_NOT_PENDING = "This approval was already %(status)s."


SELF_APPROVAL = "You requested this step yourself; another manager must approve it."


def _on_hold(case: Case) -> str:
    return CASE_ON_HOLD % {"case": case_name(case), "reason": case.pause_reason or "no reason given"}


@transaction.atomic
def approval_decide(
    *, approval: Approval, approve: bool, user: User, note: str = "", now: dt.datetime | None = None
) -> Approval:
    """A manager's decision. On a ladder step: approved steps are performed by the next tick, which
    is enqueued at once, so the case moves on within seconds. On a collector's request: an
    escalation performs the case's next step now, a skip passes over it, a write-off closes the
    case (or lowers what it pursues); a rejection only records the decision."""
    now = now or timezone.now()
    # The case first, then the approval: the order the engine and reconciliation lock them in.
    case_id = Approval.objects.filter(pk=approval.pk).values_list("case_id", flat=True).get()
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("customer", "policy", "current_step")
        .get(pk=case_id)
    )
    approval = (
        Approval.objects.select_for_update(of=("self",)).select_related("step", "requested_by").get(pk=approval.pk)
    )
    approval.case = case
    if approval.status != Approval.Status.PENDING:
        raise ValidationError(APPROVAL_NOT_PENDING % {"status": approval.get_status_display().lower()})
    if approval.requested_by_id is not None and approval.requested_by_id == user.pk:
        raise ValidationError(SELF_APPROVAL)
    if approve and approval.kind != Approval.Kind.STEP:
        _request_still_applies(approval, case, user=user)
    approval.status = Approval.Status.APPROVED if approve else Approval.Status.REJECTED
    approval.decided_by = user
    approval.decided_at = now
    approval.note = note
    approval.save()
    verdict = "approved" if approve else "rejected"
    case_event_record(case, f"collections.approval.{verdict}", user=user, at=now, note=note, **_approval_data(approval))
    if approval.kind == Approval.Kind.STEP:
        if case.status == Case.Status.AWAITING_APPROVAL and approval.step_id == case.next_step_id:
            case.status = Case.Status.OPEN
            case.next_action_at = now
            case.save(update_fields=["status", "next_action_at", "updated_at"])
            transaction.on_commit(enqueue_tick, robust=True)
        elif case.status == Case.Status.AWAITING_APPROVAL:
            # A stale approval (its step was passed over since): the case's own next step keeps its day.
            case.status = Case.Status.OPEN
            case.next_action_at = max(step_due_at(case=case, step=case.next_step), now) if case.next_step else None
            case.save(update_fields=["status", "next_action_at", "updated_at"])
    elif approve and approval.kind == Approval.Kind.ESCALATION:
        _escalate(case, approval, user=user, now=now)
    elif approve and approval.kind == Approval.Kind.SKIP:
        _skip(case, approval, user=user, now=now)
    elif approve and approval.kind == Approval.Kind.WRITE_OFF:
        _write_off(case, approval, user=user, now=now)
    elif approval.kind == Approval.Kind.PLAN:  # approved: offered to the customer; rejected: ends there
        plan_approval_decided(approval=approval, approve=approve, user=user, now=now)
    return approval


def _credits_oldest_first(case: Case, amount: int) -> list[tuple[Invoice, int]]:
    """How a partial write-off of `amount` is spread over the case's open invoices: the oldest first
    (by due date), each credited at most what is left on it: the debt forgiven is the oldest one."""
    credits = []
    for invoice in case.invoices.filter(status=Invoice.Status.OPEN, amount_remaining__gt=0).order_by(
        "due_on", "number"
    ):
        if amount <= 0:
            break
        credit = min(amount, invoice.owed)
        credits.append((invoice, credit))
        amount -= credit
    return credits


REASON_REQUIRED = "Say why; the manager reads it before deciding."


NO_NEXT_STEP = "The case of %(case)s has no next step left on its ladder."


CASE_ON_HOLD = "The case of %(case)s is on hold (%(reason)s); resume it before escalating."


STEP_ALREADY_WAITING = "%(step)s already waits for a manager's approval; there is nothing to escalate."


STEP_NO_LONGER_NEXT = "%(step)s is no longer the case's next step (performed or skipped since); reject this request."


REQUEST_ALREADY_PENDING = "A request to %(what)s already waits for a manager on this case."


WRITE_OFF_NOT_POSITIVE = "A write-off must be more than zero."


WRITE_OFF_TOO_LARGE = "You can write off at most the %(overdue)s overdue."


REQUEST_WHAT = {
    Approval.Kind.ESCALATION: "escalate now",
    Approval.Kind.SKIP: "skip a step",
    Approval.Kind.WRITE_OFF: "write off an amount",
    Approval.Kind.PLAN: "agree a payment plan",
}


def _case_for_request(case: Case) -> Case:
    case = (
        Case.objects.select_for_update(of=("self",)).select_related("customer", "policy", "next_step").get(pk=case.pk)
    )
    if not case.is_active:
        raise ValidationError(CASE_NOT_ACTIVE % {"case": case_name(case), "status": case.get_status_display().lower()})
    return case


def _request(
    case: Case,
    kind: str,
    *,
    user: User,
    reason: str,
    now: dt.datetime,
    step: Step | None = None,
    amount: int | None = None,
) -> Approval:
    """Write the request and its event; the case row is locked, so two clicks cannot both pass."""
    duplicate = REQUEST_ALREADY_PENDING % {"what": REQUEST_WHAT[kind]}
    if Approval.objects.filter(case=case, kind=kind, status=Approval.Status.PENDING).exists():
        raise ValidationError(duplicate)
    approval = Approval(
        case=case, kind=kind, step=step, amount=amount, reason=reason, requested_by=user, requested_at=now
    )
    try:
        with transaction.atomic():
            approval.save()
    except IntegrityError:  # the database's own rule, should another path have slipped past the lock
        raise ValidationError(duplicate) from None
    case_event_record(case, "collections.approval.requested", user=user, at=now, **_approval_data(approval))
    return approval


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": REASON_REQUIRED})
    return reason


@transaction.atomic
def case_escalation_request(*, case: Case, user: User, reason: str, now: dt.datetime | None = None) -> Approval:
    """Ask a manager to perform the case's next step now instead of on its day."""
    now = now or timezone.now()
    reason = _reason(reason)
    case = _case_for_request(case)
    if case.status == Case.Status.PAUSED:
        raise ValidationError(_on_hold(case))
    if case.next_step is None:
        raise ValidationError(NO_NEXT_STEP % {"case": case_name(case)})
    if case.status == Case.Status.AWAITING_APPROVAL:
        raise ValidationError(STEP_ALREADY_WAITING % {"step": case.next_step})
    return _request(case, Approval.Kind.ESCALATION, user=user, reason=reason, now=now, step=case.next_step)


@transaction.atomic
def case_step_skip_request(*, case: Case, user: User, reason: str, now: dt.datetime | None = None) -> Approval:
    """Ask a manager to pass over the case's next step (the customer is known to respond to calls,
    a suspension makes no sense for this account, …)."""
    now = now or timezone.now()
    reason = _reason(reason)
    case = _case_for_request(case)
    if case.next_step is None:
        raise ValidationError(NO_NEXT_STEP % {"case": case_name(case)})
    return _request(case, Approval.Kind.SKIP, user=user, reason=reason, now=now, step=case.next_step)


@transaction.atomic
def case_write_off_request(
    *, case: Case, user: User, amount: int, reason: str, now: dt.datetime | None = None
) -> Approval:
    """Ask a manager to write off `amount` (minor units): all that is overdue closes the case, less
    lowers what dunning pursues (see _write_off)."""
    now = now or timezone.now()
    if amount <= 0:
        raise ValidationError({"amount": WRITE_OFF_NOT_POSITIVE})
    reason = _reason(reason)
    case = _case_for_request(case)
    if amount > case.amount_overdue:
        raise ValidationError(
            {"amount": WRITE_OFF_TOO_LARGE % {"overdue": format_money(case.amount_overdue, case.currency)}}
        )
    return _request(case, Approval.Kind.WRITE_OFF, user=user, reason=reason, now=now, amount=amount)


def _approval_data(approval: Approval) -> dict:
    """What the timeline says of a request or decision: its kind, its step or amount, the reason and who asked."""
    data: dict = {"approval_id": approval.pk, "kind": approval.kind}
    if approval.step is not None:
        data |= step_data(approval.step)
    if approval.amount is not None:
        data |= {"amount": approval.amount, "currency": approval.case.currency}
    if approval.plan_id is not None:
        data |= {"plan_id": approval.plan_id}
    if approval.kind != Approval.Kind.STEP:
        data["reason"] = approval.reason
        data["requested_by"] = approval.requested_by.get_username() if approval.requested_by else None
    return data


def _request_still_applies(approval: Approval, case: Case, *, user: User) -> None:
    """A request is decided on the case as it is now, not as it was when the collector asked."""
    if not case.is_active:
        raise ValidationError(CASE_NOT_ACTIVE % {"case": case_name(case), "status": case.get_status_display().lower()})
    if approval.kind in (Approval.Kind.ESCALATION, Approval.Kind.SKIP) and case.next_step_id != approval.step_id:
        raise ValidationError(STEP_NO_LONGER_NEXT % {"step": approval.step})
    if approval.kind == Approval.Kind.ESCALATION:
        if case.status == Case.Status.PAUSED:
            raise ValidationError(_on_hold(case))
        waiting = Approval.objects.filter(
            case=case, kind=Approval.Kind.STEP, step=approval.step, attempt=1, requested_by=user
        )
        if waiting.exists():  # the step's own approval would then be this manager's own request
            raise ValidationError(SELF_APPROVAL)


def _escalate(case: Case, approval: Approval, *, user: User, now: dt.datetime) -> None:
    """The next step is due now. A step that needs approval counts as approved by this decision: its
    ladder approval is written (or the waiting one decided) so the engine performs it without asking."""
    step = approval.step
    if step.requires_approval:
        note = f"Approved with the request to escalate now ({approval.reason})"
        step_approval, created = Approval.objects.get_or_create(
            case=case,
            kind=Approval.Kind.STEP,
            step=step,
            attempt=1,
            defaults={
                "status": Approval.Status.APPROVED,
                "requested_at": now,
                "requested_by": approval.requested_by,
                "decided_by": user,
                "decided_at": now,
                "note": note,
            },
        )
        if not created and step_approval.status != Approval.Status.APPROVED:
            step_approval.status, step_approval.decided_by, step_approval.decided_at = (
                Approval.Status.APPROVED,
                user,
                now,
            )
            step_approval.note = note
            step_approval.save(update_fields=["status", "decided_by", "decided_at", "note"])
    case.status = Case.Status.OPEN
    case.next_action_at = now
    case.save(update_fields=["status", "next_action_at", "updated_at"])
    case_event_record(case, "collections.case.escalated", user=user, at=now, **_approval_data(approval))
    transaction.on_commit(enqueue_tick, robust=True)


def _skip(case: Case, approval: Approval, *, user: User, now: dt.datetime) -> None:
    """Pass over the next step: the case is scheduled for the step after it on that step's day (a
    day after the last step performed, if that day has passed), or its ladder ends."""
    step = approval.step
    # The skipped step's own approval, if it waits for one, goes too, even on a case on hold:
    # otherwise resuming would wait for it, and deciding it would make the following step due at once.
    Approval.objects.filter(case=case, kind=Approval.Kind.STEP, step=step, status=Approval.Status.PENDING).update(
        status=Approval.Status.CANCELLED, decided_at=now, note="Skipped at a collector's request"
    )
    if case.status == Case.Status.AWAITING_APPROVAL:
        case.status = Case.Status.OPEN
    steps = list(case.policy.steps.order_by("position"))
    case_schedule(case, step_after(steps, step), after=case.current_step, now=now)
    if case.status == Case.Status.PAUSED:
        case.next_action_at = None  # resuming schedules it
    case.save(update_fields=["status", "next_step", "next_action_at", "updated_at"])
    case_event_record(
        case,
        "collections.step.skipped",
        user=user,
        at=now,
        reason=approval.reason,
        requested_by=approval.requested_by.get_username() if approval.requested_by else None,
        approval_id=approval.pk,
        **step_data(step),
    )


def _write_off(case: Case, approval: Approval, *, user: User, now: dt.datetime) -> None:
    """All that is overdue (or more: payments may have come in since the request) closes the case as
    written off. Less is a partial write-off: the case goes on for the rest. The amount is credited on
    the case's invoices, oldest first (a credit note each, issued at Stripe too for its invoices), so
    the invoices show that much less as owed and reconciliation reads what is owed from them alone;
    the messages not yet sent are written again with the new amount. When the rest is paid, the case
    closes as written off, not as recovered (see case_reconcile)."""
    if approval.amount < case.amount_overdue:
        previous = case.amount_overdue
        credits = _credits_oldest_first(case, approval.amount)
        # Lowered first, so reconciliation, hearing of the credits, finds the case already right.
        case.amount_overdue = previous - sum(amount for _invoice, amount in credits)
        case.save(update_fields=["amount_overdue", "updated_at"])
        credit_notes = invoices_credit(credits=credits, reason=approval.reason, at=now, recorded_by=user)
        credit_notes_issue_request(credit_notes=credit_notes)
        case_event_record(
            case,
            "collections.case.partly_written_off",
            user=user,
            at=now,
            previous=previous,
            amount_overdue=case.amount_overdue,
            credited=[{"invoice": note.invoice.number, "amount": note.amount} for note in credit_notes],
            **_approval_data(approval),
        )
        case_messages_refresh(case=case, previous=previous, now=now)
        return
    invoices = list(case.invoices.filter(status=Invoice.Status.OPEN))
    invoices_write_off(invoices, now=now)
    case_close(
        case,
        Case.Status.WRITTEN_OFF,
        "collections.case.written_off",
        user=user,
        now=now,
        written_off=case.amount_overdue,
        invoices=[invoice.number for invoice in invoices],
        **_approval_data(approval),
    )
