"""The dunning engine: opening cases, the tick that walks them up their ladder, reconciliation.

Every write here is atomic and leaves a CaseEvent. The tick is safe to run on any number of
workers at once: due cases are claimed with SELECT … FOR UPDATE SKIP LOCKED, and a step is
performed at most once per (case, step, attempt), a unique row written in the same transaction.
"""

import dataclasses
import datetime as dt
import logging
import uuid
import zoneinfo
from collections.abc import Iterable

import django_rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import F, Prefetch, ProtectedError, Q, Sum, prefetch_related_objects
from django.utils import dateformat, timezone
from redis.exceptions import RedisError
from rq.exceptions import DuplicateJobError

from dunning_site.accounts.models import Channel, Customer, Invoice, User
from dunning_site.accounts.services import contact_mark_unusable
from dunning_site.collections import service_hooks
from dunning_site.collections.messaging import TemplateBook, compose, step_template_key
from dunning_site.collections.models import (
    Approval,
    Case,
    CaseEvent,
    Dispute,
    PaymentRetry,
    Policy,
    ServiceHookDelivery,
    Step,
    StepExecution,
)
from dunning_site.lib import dates
from dunning_site.lib.admin import admin_history_record
from dunning_site.lib.money import format_money
from dunning_site.notifications.models import Message, MessageTemplate
from dunning_site.notifications.services import messages_cancel, messages_create

logger = logging.getLogger(__name__)

TICK_NOW_JOB_ID = "dunning-tick-now"

# A step whose day has already passed (the case was paused, or waited for approval) is not sent
# back to back with the previous one: it waits this long after it.
CATCH_UP_GAP = dt.timedelta(days=1)

NO_POLICY = "No active policy applies to segment %(segment)s, %(currency)s."
CASE_NOT_ACTIVE = "The case of %(case)s is %(status)s; only active cases can be changed."
CASE_NOT_PAUSED = "The case of %(case)s is not on hold."
ALREADY_ON_HOLD = "The case of %(case)s is already on hold (%(reason)s): resume it first to put it on another hold."
APPROVAL_NOT_PENDING = "This approval was already %(status)s."
SELF_APPROVAL = "You requested this step yourself; another manager must approve it."
PAUSE_IN_PAST = "The pause must end in the future."
# A hold with an end date is bounded like a scheduled message: otherwise a date years away would be a
# promise to pay without the policy's limit. A hold without a date stays on the worklist until resumed.
HOLD_HORIZON = dt.timedelta(days=90)
HOLD_TOO_FAR = (
    "A hold may end at most %(days)s days from now, by %(latest)s; "
    "leave the end empty to hold the case until someone resumes it."
)

# An unexpected error in one case (or one customer's opening) must not stop the engine for everyone:
# the case is set aside this long, with the error on its timeline, while the others go on. A lost
# connection or a timeout is nobody's case: it stops the tick, and the next one does the work.
FAILED_CASE_RETRY_AFTER = dt.timedelta(hours=1)
# A step's message waiting as a draft (review before send, or a collector personalizing it) holds the
# ladder: the next step is not performed before it has gone. The tick looks again this often.
DRAFT_WAIT_RECHECK = dt.timedelta(hours=1)
ENGINE_TROUBLE = (OperationalError, InterfaceError)
STEP_FAILED = "The engine could not perform this step (%(error)s); it tries again at %(retry_at)s."
RESUME_FAILED = "The hold ended but the case could not be resumed (%(error)s); it tries again at %(retry_at)s."
JOIN_FAILED = "New overdue invoices could not be added to this case (%(error)s); every tick tries again."
JOIN_FAILED_NOTED_EVERY = dt.timedelta(days=1)


@dataclasses.dataclass
class TickResult:
    opened: int = 0
    resumed: int = 0
    advanced: int = 0
    retried: int = 0
    failed: int = 0
    # One line per case or customer set aside, for the operator: "case 12: OverflowError: …".
    failures: list[str] = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Events


def _event(case: Case, type: str, *, user: User | None = None, at: dt.datetime | None = None, **data) -> CaseEvent:
    """An unsaved event; callers save one or bulk-create many."""
    return CaseEvent(
        case=case,
        type=type,
        actor=CaseEvent.Actor.USER if user else CaseEvent.Actor.SYSTEM,
        user=user,
        data=data,
        at=at or timezone.now(),
    )


def case_event_record(
    case: Case, type: str, *, user: User | None = None, at: dt.datetime | None = None, **data
) -> CaseEvent:
    event = _event(case, type, user=user, at=at, **data)
    event.save()
    return event


def _on_hold(case: Case) -> str:
    return CASE_ON_HOLD % {"case": case_name(case), "reason": case.pause_reason or "no reason given"}


def case_name(case: Case) -> str:
    """How messages to staff name a case: its customer and currency, never its id."""
    return f"{case.customer.name} ({case.currency})"


def _step_data(step: Step) -> dict:
    return {"step_id": step.pk, "step": str(step), "action": step.action, "channel": step.channel}


# ---------------------------------------------------------------------------------------------
# Scheduling


def step_due_at(*, case: Case, step: Step) -> dt.datetime:
    """The step's day (anchor + offset) at the configured local hour in the customer's time zone."""
    day = case.anchor_due_on + dt.timedelta(days=step.offset_days)
    zone = zoneinfo.ZoneInfo(case.customer.time_zone)
    return dt.datetime.combine(day, dt.time(settings.DUNNING_SEND_HOUR), tzinfo=zone).astimezone(dt.UTC)


def _schedule(case: Case, step: Step | None, *, after: Step | None, now: dt.datetime) -> None:
    """Point the case at `step` and say when it is due; None means the ladder is finished."""
    case.next_step = step
    if step is None:
        case.next_action_at = None
        return
    due = step_due_at(case=case, step=step)
    if due <= now and after is not None and after.offset_days != step.offset_days:
        due = now + CATCH_UP_GAP
    case.next_action_at = max(due, now)


def _step_after(steps: list[Step], step: Step) -> Step | None:
    later = [candidate for candidate in steps if candidate.position > step.position]
    return later[0] if later else None


def _first_step(steps: list[Step], *, case: Case, now: dt.datetime) -> Step | None:
    """Where a new case starts: the latest step whose day has come, so a case opened late
    starts at the stage that fits its age instead of sending every earlier step at once,
    but never beyond the first step that needs a manager's approval."""
    chosen = None
    for step in steps:
        if chosen is not None and step_due_at(case=case, step=step) > now:
            break
        chosen = step
        if step.requires_approval:
            break
    return chosen


# ---------------------------------------------------------------------------------------------
# Opening cases


def policy_for(*, policies: Iterable[Policy], segment: str, currency: str, amount: int) -> Policy | None:
    for policy in policies:
        if policy.segment and policy.segment != segment:
            continue
        if policy.currency and policy.currency != currency:
            continue
        if policy.min_amount and amount < policy.min_amount:
            continue
        return policy
    return None


def cases_open_overdue(*, now: dt.datetime | None = None, failures: list[str] | None = None) -> int:
    """Open a case (or join the open one) for every customer and currency with invoices unpaid
    past their policy's grace period. Returns how many cases were opened.

    Each customer and currency is its own transaction: one that raises is logged, noted on its
    active case if it has one, and added to `failures` (when given), and the others are opened."""
    now = now or timezone.now()
    policies = list(Policy.objects.filter(is_active=True).prefetch_related("steps"))
    if not policies:
        return 0
    today = now.date()
    shortest_grace = min(policy.grace_days for policy in policies)
    candidates = (
        Invoice.objects.filter(
            status=Invoice.Status.OPEN,
            due_on__lt=today - dt.timedelta(days=shortest_grace),
            amount_remaining__gt=0,
        )
        .exclude(cases__status__in=Case.ACTIVE_STATUSES)
        .order_by("customer_id", "currency", "due_on")
        .values_list("customer_id", "currency")
        .distinct()
    )
    opened = 0
    for customer_id, currency in candidates:
        try:
            with transaction.atomic():
                opened += _open_or_join(customer_id=customer_id, currency=currency, policies=policies, now=now)
        except ENGINE_TROUBLE:
            raise
        except Exception as error:
            logger.exception("Could not open or update the %s case of customer %s", currency, customer_id)
            _opening_failed(customer_id=customer_id, currency=currency, error=error, now=now)
            if failures is not None:
                failures.append(f"customer {customer_id} ({currency}): {_describe(error)}")
    return opened


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:300]


def _opening_failed(*, customer_id: int, currency: str, error: Exception, now: dt.datetime) -> None:
    """Say on the customer's active case, if there is one, that new invoices could not join it: once a
    day per error, as every tick tries again (a customer without a case has no timeline; the log has it)."""
    case = Case.objects.filter(customer_id=customer_id, currency=currency, status__in=Case.ACTIVE_STATUSES).first()
    if case is None:
        return
    description = _describe(error)
    noted = case.events.filter(
        type="collections.case.join_failed", data__error=description, at__gt=now - JOIN_FAILED_NOTED_EVERY
    )
    if noted.exists():
        return
    case_event_record(
        case, "collections.case.join_failed", at=now, error=description, reason=JOIN_FAILED % {"error": description}
    )


def _open_or_join(
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
                entered_amount=F("entered_amount") + sum(invoice.total - invoice.amount_paid for invoice in joining)
            )
            for invoice in joining:
                case_event_record(case, "collections.case.invoice_added", at=now, invoice=invoice.number)
            case_reconcile(case=case, now=now)
        return 0
    amount = sum(invoice.total - invoice.amount_paid for invoice in invoices)
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
        amount_overdue=sum(invoice.total - invoice.amount_paid for invoice in invoices),
        entered_amount=sum(invoice.total - invoice.amount_paid for invoice in invoices),
        anchor_due_on=min(invoice.due_on for invoice in invoices),
        opened_at=now,
    )
    steps = list(policy.steps.all())
    first = _first_step(steps, case=case, now=now)
    _schedule(case, first, after=None, now=now)
    case.save()
    case.invoices.add(*invoices)
    events = [
        _event(
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
        _event(case, "collections.step.skipped", at=now, reason="case opened after the step's day", **_step_data(s))
        for s in skipped
    ]
    CaseEvent.objects.bulk_create(events)
    if Dispute.objects.filter(customer=customer, closed_at__isnull=True).exists():
        # The customer disputes a charge with their bank: nothing is charged or sent until it closes.
        case = _pause(case=case, until=None, reason="dispute", user=None)
    return case


# In the idempotency key of a decline's ask (collections.billing): a reminder written while one waits replaces it.
ASK_KEY_MARK = ":ask-customer:"

# ---------------------------------------------------------------------------------------------
# The tick


def tick(*, now: dt.datetime | None = None, batch_size: int | None = None) -> TickResult:
    """One pass of the engine: open new cases, end expired pauses, perform every due step. A case
    that raises is set aside and counted in `failed`; the others go on."""
    now = now or timezone.now()
    batch_size = batch_size or settings.DUNNING_TICK_BATCH_SIZE
    result = TickResult()
    result.opened = cases_open_overdue(now=now, failures=result.failures)
    result.resumed = cases_resume_expired(now=now, failures=result.failures)
    while True:
        failed_before = len(result.failures)
        claimed = cases_advance_batch(now=now, batch_size=batch_size, failures=result.failures)
        result.advanced += claimed - (len(result.failures) - failed_before)
        if claimed < batch_size:
            break
    from dunning_site.collections.billing import retries_perform_due, retries_recover_stuck  # billing builds on this

    retries_recover_stuck(now=now)
    result.retried = retries_perform_due(now=now)
    result.failed = len(result.failures)
    return result


@dataclasses.dataclass
class _Pending:
    """What one due case will write, gathered so a whole batch is written in a few statements."""

    case: Case
    step: Step
    message: Message | None = None
    events: list[CaseEvent] = dataclasses.field(default_factory=list)


def cases_advance_batch(*, now: dt.datetime, batch_size: int, failures: list[str] | None = None) -> int:
    """Claim up to `batch_size` due cases and perform each one's due step. Returns the number claimed.

    The number of queries is the same for 1 case or 200: everything is loaded and written in bulk.
    If anything in the batch raises (one case's data, one step's message), the batch is rolled back
    whole and its cases are performed one at a time, each in a transaction of its own: the case at
    fault is set aside (see _case_step_failed) and added to `failures` (when given), and the others
    go on. Exactly once still holds: a rolled-back step left no StepExecution and no message.
    """
    try:
        with transaction.atomic():
            cases = _claim_due(now=now, limit=batch_size)
            if cases:
                _advance(cases, now=now)
            return len(cases)
    except ENGINE_TROUBLE:
        raise
    except Exception as error:
        logger.warning("A batch of due cases failed (%s); performing them one at a time", _describe(error))
    claimed = 0
    while claimed < batch_size:
        case_id = None
        try:
            with transaction.atomic():
                cases = _claim_due(now=now, limit=1)
                if not cases:
                    break
                case_id = cases[0].pk
                _advance(cases, now=now)
        except ENGINE_TROUBLE:
            raise
        except Exception as error:
            if case_id is None:  # the claim itself failed: not one case's fault
                raise
            logger.exception("Case %s: its next step failed; it is set aside and tried again later", case_id)
            _case_step_failed(case_id=case_id, error=error, now=now)
            if failures is not None:
                failures.append(f"case {case_id}: {_describe(error)}")
        claimed += 1
    return claimed


def _claim_due(*, now: dt.datetime, limit: int) -> list[Case]:
    """Lock up to `limit` due cases, the longest due first, passing over those another worker holds."""
    return list(
        _cases_to_advance()
        .filter(status=Case.Status.OPEN, next_action_at__lte=now)
        .order_by("next_action_at")
        .select_for_update(skip_locked=True, of=("self",))[:limit]
    )


@transaction.atomic
def _case_step_failed(*, case_id: int, error: Exception, now: dt.datetime) -> None:
    """Set aside a case whose step raised: due again in FAILED_CASE_RETRY_AFTER, so it no longer
    heads the queue, with the error on its timeline (a second failure writes a second entry)."""
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("next_step")
        .filter(pk=case_id, status=Case.Status.OPEN, next_action_at__lte=now)
        .first()
    )
    if case is None:  # moved on meanwhile (another worker, a collector): nothing to set aside
        return
    retry_at = now + FAILED_CASE_RETRY_AFTER
    case.next_action_at = retry_at
    case.save(update_fields=["next_action_at", "updated_at"])
    description = _describe(error)
    case_event_record(
        case,
        "collections.step.failed",
        at=now,
        error=description,
        retry_at=retry_at.isoformat(),
        reason=STEP_FAILED % {"error": description, "retry_at": f"{retry_at:%Y-%m-%d %H:%M} UTC"},
        **(_step_data(case.next_step) if case.next_step else {}),
    )


def _cases_to_advance():
    return Case.objects.select_related("customer", "next_step__template", "policy__contact_rules", "assignee")


def _advance(cases: list[Case], *, now: dt.datetime, requested_by: User | None = None, draft: bool = False) -> None:
    """Perform each (locked) case's next step: the tick's work, and a collector's "now" on one case,
    so both go through the same idempotency record and the same approval gate. `draft` holds the
    message for the collector to personalize, as review_before_send does."""
    _load_batch(cases)
    executions = StepExecution.objects.filter(case__in=cases).values_list(
        "case_id", "step_id", "attempt", "message__status"
    )
    performed, drafts_waiting = set(), set()
    for case_id, step_id, attempt, message_status in executions.order_by():
        performed.add((case_id, step_id, attempt))
        if message_status == Message.Status.DRAFT:
            drafts_waiting.add((case_id, step_id))
    # Only the ladder's own approvals hold a step; a collector's request naming the same step (escalate
    # it, skip it) is decided apart, and an approved escalation writes the step's approval itself.
    approvals = {
        (approval.case_id, approval.step_id, approval.attempt): approval
        for approval in Approval.objects.filter(case__in=cases, kind=Approval.Kind.STEP).order_by()
    }
    book = _template_book(cases)

    pendings, new_approvals, events = [], [], []
    for case in cases:
        step = case.next_step
        if step is None:  # nothing left on the ladder; an old row may still carry a date
            case.next_action_at = None
            continue
        if (case.pk, case.current_step_id) in drafts_waiting:
            # The step before waits as a draft: the ladder goes on once it has gone (case_draft_released).
            case.next_action_at = now + DRAFT_WAIT_RECHECK
            continue
        key = (case.pk, step.pk, 1)
        if key in performed:
            # Already done (by a previous run that crashed after committing): move on, don't repeat.
            _schedule(case, _step_after(case.policy.steps.all(), step), after=step, now=now)
            continue
        if step.requires_approval:
            approval = approvals.get(key)
            if approval is None or approval.status == Approval.Status.CANCELLED:
                new_approvals.append(
                    Approval(case=case, step=step, attempt=1, requested_at=now, requested_by=requested_by)
                )
                events.append(_event(case, "collections.approval.requested", at=now, **_step_data(step)))
                case.status = Case.Status.AWAITING_APPROVAL
                case.next_action_at = None
                continue
            if approval.status == Approval.Status.PENDING:
                case.status = Case.Status.AWAITING_APPROVAL
                case.next_action_at = None
                continue
            if approval.status == Approval.Status.REJECTED:
                events.append(_event(case, "collections.step.skipped", at=now, reason="rejected", **_step_data(step)))
                _schedule(case, _step_after(case.policy.steps.all(), step), after=step, now=now)
                continue
        pendings.append(_perform(case, step, book=book, now=now, draft=draft))

    messages = messages_create([pending.message for pending in pendings if pending.message is not None])
    del messages  # bulk_create sets the ids on the Message objects held by the pendings
    # A reminder carries the call to action a decline's ask carries (collections.billing): an ask still
    # waiting to go (held by contact hours) would reach the customer with it, the same words twice.
    reminded = [p.case.pk for p in pendings if p.message is not None and p.message.channel == Channel.EMAIL]
    if reminded:
        messages_cancel(
            messages=Message.objects.filter(
                pk__in=Case.messages.through.objects.filter(case_id__in=reminded).values("message_id"),
                status=Message.Status.QUEUED,
                idempotency_key__contains=ASK_KEY_MARK,
            )
        )
    StepExecution.objects.bulk_create(
        [StepExecution(case=p.case, step=p.step, attempt=1, message=p.message, at=now) for p in pendings]
    )
    Case.messages.through.objects.bulk_create(
        [Case.messages.through(case_id=p.case.pk, message_id=p.message.pk) for p in pendings if p.message]
    )
    for pending in pendings:
        for event in pending.events:
            if pending.message is not None:
                event.data["message_id"] = pending.message.pk
        events += pending.events
    Approval.objects.bulk_create(new_approvals)
    CaseEvent.objects.bulk_create(events)
    Case.objects.bulk_update(
        cases, ["status", "current_step", "next_step", "next_action_at", "service_suspended", "updated_at"]
    )


def _load_batch(cases: list[Case]) -> None:
    prefetch_related_objects(
        cases,
        Prefetch("invoices", queryset=Invoice.objects.filter(status=Invoice.Status.OPEN).order_by("due_on")),
        Prefetch("policy__steps", queryset=Step.objects.order_by("position")),
        "customer__consents",
    )
    for case in cases:
        case.updated_at = timezone.now()


def _template_book(cases: list[Case]) -> TemplateBook:
    """Every template the batch might need, in one query."""
    return TemplateBook({case.next_step.template.key for case in cases if case.next_step and case.next_step.template})


def _perform(case: Case, step: Step, *, book: TemplateBook, now: dt.datetime, draft: bool = False) -> _Pending:
    pending = _Pending(case=case, step=step)
    if step.action in Step.MESSAGE_ACTIONS:
        pending.message = message = _message_for(case, step, book=book, now=now, draft=draft)
        performed = (
            "collections.step.drafted" if message.status == Message.Status.DRAFT else "collections.step.performed"
        )
        data = _step_data(step) | {"sent_on": message.channel}
        pending.events.append(_event(case, performed, at=now, **data))
    elif step.action == Step.Action.SUSPEND_SERVICE:
        case.service_suspended = True
        pending.events.append(_event(case, "collections.case.suspended", at=now, **_step_data(step)))
        service_hooks.service_hook_request(case=case, action=ServiceHookDelivery.Action.SUSPEND, now=now)
        from dunning_site.collections.billing import subscription_collection_request  # billing builds on this

        subscription_collection_request(case=case, paused=True)
    elif step.action == Step.Action.RETRY_PAYMENT:
        from dunning_site.collections.billing import retry_for_policy_step  # billing builds on this module

        decided = retry_for_policy_step(case=case, now=now)
        pending.events.append(_event(case, "collections.step.performed", at=now, retries=decided, **_step_data(step)))
    case.current_step = step
    _schedule(case, _step_after(case.policy.steps.all(), step), after=step, now=now)
    return pending


def _message_for(case: Case, step: Step, *, book: TemplateBook, now: dt.datetime, draft: bool = False) -> Message:
    return compose(
        case=case,
        channel=Channel.CALL if step.action == Step.Action.CALL_TASK else step.channel,
        template_key=step_template_key(step),
        book=book,
        idempotency_key=f"case:{case.pk}:step:{step.pk}:attempt:1",
        now=now,
        draft=draft or step.review_before_send,
    )


# ---------------------------------------------------------------------------------------------
# Payment and reconciliation


# Why pending approvals were cancelled, and what the service system is told, by how a case closes.
CLOSING_NOTES = {Case.Status.RESOLVED: "Case resolved", Case.Status.WRITTEN_OFF: "Case written off"}
REINSTATE_REASONS = {Case.Status.RESOLVED: "case_resolved", Case.Status.WRITTEN_OFF: "case_written_off"}
REST_WRITTEN_OFF = "Everything else was paid; the %(amount)s written off will not be collected."


@transaction.atomic
def case_reconcile(*, case: Case, user: User | None = None, now: dt.datetime | None = None) -> Case:
    """Bring the case in line with its invoices: resolve it when nothing is owed any more, close it
    as written off when all that is left is what managers wrote off."""
    now = now or timezone.now()
    case = Case.objects.select_for_update().select_related("customer").get(pk=case.pk)
    if not case.is_active:
        return case
    owed = sum(
        invoice.total - invoice.amount_paid
        for invoice in case.invoices.filter(status=Invoice.Status.OPEN).only("total", "amount_paid")
    )
    # Amounts managers agreed to write off stay on the invoices but are no longer pursued.
    forgiven = case_written_off_amount(case=case) if owed else 0
    if owed <= 0:
        return _close(
            case, Case.Status.RESOLVED, "collections.case.resolved", user=user, now=now, amount=case.amount_overdue
        )
    if owed <= forgiven:
        # All paid but what was written off: the rest will not be collected, and the case is not
        # "recovered" (paid in full), so it closes as written off, as the dashboard counts it.
        invoices = list(case.invoices.filter(status=Invoice.Status.OPEN))
        _invoices_write_off(invoices, now=now)
        return _close(
            case,
            Case.Status.WRITTEN_OFF,
            "collections.case.written_off",
            user=user,
            now=now,
            written_off=owed,
            currency=case.currency,
            invoices=[invoice.number for invoice in invoices],
            reason=REST_WRITTEN_OFF % {"amount": format_money(owed, case.currency)},
        )
    owed -= forgiven
    if owed != case.amount_overdue:
        _event(
            case,
            "collections.case.amount_changed",
            user=user,
            at=now,
            previous=case.amount_overdue,
            amount_overdue=owed,
        ).save()
        case.amount_overdue = owed
        case.save(update_fields=["amount_overdue", "updated_at"])
    return case


def _close(case: Case, status: str, event_type: str, *, user: User | None, now: dt.datetime, **data) -> Case:
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
    events = [
        _event(
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
        events.append(_event(case, "collections.case.reinstated", user=user, at=now))
        # Service comes back once no other case of the customer (another currency) keeps it suspended.
        still_suspended = (
            Case.objects.filter(customer_id=case.customer_id, status__in=Case.ACTIVE_STATUSES, service_suspended=True)
            .exclude(pk=case.pk)
            .exists()
        )
        if not still_suspended:
            from dunning_site.collections.billing import subscription_collection_request  # billing builds on this

            service_hooks.service_hook_request(
                case=case, action=ServiceHookDelivery.Action.REINSTATE, reason=REINSTATE_REASONS[status], now=now
            )
            subscription_collection_request(case=case, paused=False)
    case.save()
    CaseEvent.objects.bulk_create(events)
    return case


def cases_reconcile_for_invoice(*, invoice: Invoice, user: User | None = None, now: dt.datetime | None = None) -> None:
    for case in Case.objects.filter(invoices=invoice, status__in=Case.ACTIVE_STATUSES):
        case_reconcile(case=case, user=user, now=now)


# ---------------------------------------------------------------------------------------------
# People in charge: pause, resume, approvals


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
    promise to pay holds it as far as the policy's max_promise_days: case_promise_record.)

    A case already on hold keeps its hold unless `replace_hold` (a dispute, which outranks a promise
    or a manual hold): a manual hold laid over a promise would silently lose the promise's date."""
    if until is not None and (problem := hold_problem(until=until, now=timezone.now())):
        raise ValidationError({"paused_until": problem})
    held_for = Case.objects.filter(pk=case.pk, status=Case.Status.PAUSED).values_list("pause_reason", flat=True).first()
    if held_for is not None and not replace_hold:
        reason_shown = dates.days_in_words(held_for) or "no reason given"
        raise ValidationError(ALREADY_ON_HOLD % {"case": case_name(case), "reason": reason_shown})
    return _pause(case=case, until=until, reason=reason, user=user)


def _pause(*, case: Case, until: dt.datetime | None, reason: str, user: User | None) -> Case:
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
    from dunning_site.collections import holds  # the hold rule builds on this module

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
    from dunning_site.collections.disputes import retries_plan_after_hold  # builds on billing, which builds on this

    retries_plan_after_hold(case=case, now=now)
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
                failures.append(f"case {case_id}: {_describe(error)}")
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
    description = _describe(error)
    case_event_record(
        case,
        "collections.case.resume_failed",
        at=now,
        error=description,
        retry_at=retry_at.isoformat(),
        reason=RESUME_FAILED % {"error": description, "retry_at": f"{retry_at:%Y-%m-%d %H:%M} UTC"},
    )


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
    return approval


def enqueue_tick() -> None:
    """Ask a worker for a tick now. One waiting tick is enough (a fixed, unique job id); if Redis is
    unreachable, the cron's next tick, within a minute, does the same work."""
    tick_job = "dunning_site.collections.jobs.tick"  # by name: jobs sit above this module

    try:
        django_rq.get_queue("default").enqueue(
            tick_job, job_id=TICK_NOW_JOB_ID, unique=True, result_ttl=0, failure_ttl=300
        )
    except DuplicateJobError:
        pass
    except RedisError as error:
        logger.warning("Could not enqueue a tick (%s); the next cron tick will do its work.", error)


# ---------------------------------------------------------------------------------------------
# Collectors at work: personalized messages, ad-hoc messages, call outcomes

NOT_A_CALL = "Only call tasks have an outcome."
PROMISE_NEEDS_DATE_AND_AMOUNT = "A promise to pay needs a date and an amount."
PROMISE_DATE_IN_PAST = "The promised date must be today or later."
PROMISE_TOO_FAR = "The policy takes promises up to %(days)s days ahead: by %(latest)s at the latest."
PROMISE_ABOVE_OWED = "The promise of %(amount)s is more than the %(owed)s overdue on this case."


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


def promise_problems(*, case: Case, promised_on: dt.date, amount: int, today: dt.date | None = None) -> dict[str, str]:
    """What is wrong with a promise to pay on this case, by field: a day already gone or beyond the
    policy's limit (a promise holds the ladder until then), an amount above what is overdue."""
    today = today or timezone.localdate()
    problems = {}
    latest = today + dt.timedelta(days=case.policy.max_promise_days)
    if promised_on < today:
        problems["promised_on"] = PROMISE_DATE_IN_PAST
    elif promised_on > latest:
        problems["promised_on"] = PROMISE_TOO_FAR % {
            "days": case.policy.max_promise_days,
            "latest": dateformat.format(latest, "D j M Y"),
        }
    if amount > case.amount_overdue:
        problems["promised_amount"] = PROMISE_ABOVE_OWED % {
            "amount": format_money(amount, case.currency),
            "owed": format_money(case.amount_overdue, case.currency),
        }
    return problems


@transaction.atomic
def case_promise_record(*, case: Case, promised_on: dt.date, amount: int, user: User | None = None) -> Case:
    """A promise to pay taken on the case page: the case is held until the day after the promised day."""
    case = Case.objects.select_for_update(of=("self",)).select_related("policy").get(pk=case.pk)
    if problems := promise_problems(case=case, promised_on=promised_on, amount=amount):
        raise ValidationError(problems)
    until, reason = promise_terms(promised_on=promised_on, amount=amount, currency=case.currency)
    return _pause(case=case, until=until, reason=reason, user=user)


def promise_terms(*, promised_on: dt.date, amount: int, currency: str) -> tuple[dt.datetime, str]:
    """A promise to pay holds the case until the day after the promised day, with a reason staff read
    (a call's outcome and the case page's hold make the same promise)."""
    until = dt.datetime.combine(promised_on + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return until, f"Promise to pay {format_money(amount, currency)} by {promised_on.isoformat()}"


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
    """What came of a call. A promise pauses the case until the promised day; a dispute pauses it
    with reason "dispute"; a wrong number makes the phone unusable."""
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
            until, reason = promise_terms(promised_on=promised_on, amount=promised_amount, currency=case.currency)
            _pause(case=case, until=until, reason=reason, user=user)
        elif case.is_active and outcome == Message.CallOutcome.DISPUTE:
            case_pause(case=case, until=None, reason="dispute", user=user, replace_hold=True)
    if outcome == Message.CallOutcome.WRONG_NUMBER and message.customer.phone == message.to_address:
        contact_mark_unusable(customer=message.customer, channel=Channel.CALL, reason="Wrong number (call)", at=now)
    return message


# ---------------------------------------------------------------------------------------------
# Collectors at work on the case page: a step brought forward, notes

STEP_NOT_DUE_NOW = "The case of %(case)s is %(status)s, so its next step cannot be performed now."
STEP_ALREADY_PERFORMED = "That step was already performed (the page showed an older state of the case)."
DRAFT_WAITS = "The message of the step before (%(step)s) waits as a draft: send it first, then the ladder goes on."
NOTHING_TO_PERSONALIZE = "The next step (%(step)s) writes no message to personalize."
NOTE_EMPTY = "Write the note first."


def _draft_waits(case: Case) -> bool:
    """Whether the message of the case's last step still waits as a draft."""
    return StepExecution.objects.filter(
        case=case, step_id=case.current_step_id, message__status=Message.Status.DRAFT
    ).exists()


@transaction.atomic
def case_draft_released(*, message: Message, now: dt.datetime | None = None) -> None:
    """A step's draft was sent (or scheduled): the ladder, held while it waited, goes on, keeping the
    ladder's spacing from the moment the message goes, so a reminder reviewed late is not followed
    at once by the next one."""
    now = now or timezone.now()
    executions = StepExecution.objects.filter(message=message).select_related("step")
    for execution in executions:
        case = (
            Case.objects.select_for_update(of=("self",))
            .select_related("customer", "next_step")
            .filter(pk=execution.case_id, status=Case.Status.OPEN, current_step=execution.step)
            .first()
        )
        if case is None or case.next_step is None:
            continue
        goes = max(message.send_after, now)
        gap = dt.timedelta(days=case.next_step.offset_days - execution.step.offset_days)
        case.next_action_at = max(step_due_at(case=case, step=case.next_step), goes + gap)
        case.save(update_fields=["next_action_at", "updated_at"])


@transaction.atomic
def case_step_perform_now(
    *, case: Case, step: Step, user: User, draft: bool = False, now: dt.datetime | None = None
) -> Message | None:
    """A collector's "send it now": the case's next step, performed at once by the tick's own code,
    so it happens once (the same idempotency record) and a step needing approval goes to a manager.
    `step` is the step the collector saw; if the case has moved on since (the tick, a second click),
    nothing is done. With `draft`, the message waits for the collector to personalize it.
    Returns the message written, or None (approval requested, or a step that sends nothing)."""
    now = now or timezone.now()
    case = _cases_to_advance().select_for_update(of=("self",)).get(pk=case.pk)
    if case.status != Case.Status.OPEN:
        raise ValidationError(STEP_NOT_DUE_NOW % {"case": case_name(case), "status": case.get_status_display().lower()})
    if case.next_step_id is None or case.next_step_id != step.pk:
        raise ValidationError(STEP_ALREADY_PERFORMED)
    if draft and case.next_step.action not in (Step.Action.REMINDER, Step.Action.FINAL_NOTICE):
        raise ValidationError(NOTHING_TO_PERSONALIZE % {"step": case.next_step})
    if _draft_waits(case):
        raise ValidationError(DRAFT_WAITS % {"step": case.current_step})
    case_event_record(
        case, "collections.step.brought_forward", user=user, at=now, for_review=draft, **_step_data(case.next_step)
    )
    _advance([case], now=now, requested_by=user, draft=draft)
    execution = StepExecution.objects.filter(case=case, step=step, attempt=1).select_related("message").first()
    return execution.message if execution else None


@transaction.atomic
def case_note_add(*, case: Case, text: str, user: User) -> CaseEvent:
    """A collector's note on the timeline (what was said on the phone, what to check next)."""
    text = text.strip()
    if not text:
        raise ValidationError({"text": NOTE_EMPTY})
    return case_event_record(case, "collections.case.note_added", user=user, note=text)


# ---------------------------------------------------------------------------------------------
# Policies (the managers' screen; the admin saves through its own inline)

STEP_REACHED_MEANWHILE = "A case reached a step you deleted while you were editing the ladder: nothing was saved."
LADDER_CHANGED_MEANWHILE = "Someone else changed this policy at the same time: nothing was saved. Reload and try again."
# Steps whose position changes are parked out of the way first, so that two steps can swap places
# without tripping the one-step-per-position constraint halfway through.
PARKED_POSITION = 10_000


@transaction.atomic
def policy_save(*, form, steps, user: User) -> Policy:
    """Save a validated PolicyForm and its StepFormSet together, or nothing; the admin's history
    records who changed what. (The forms are passed because they know what changed.)"""
    added = form.instance.pk is None
    try:
        with transaction.atomic():
            policy = form.save()
            steps.instance = policy
            steps.save(commit=False)
            for step in steps.deleted_objects:
                step.delete()
            moved = [step.pk for step, fields in steps.changed_objects if "position" in fields]
            Step.objects.filter(pk__in=moved).update(position=F("position") + PARKED_POSITION)
            for step, _ in steps.changed_objects:
                step.save()
            for step in steps.new_objects:
                step.save()
    except ProtectedError:
        raise ValidationError(STEP_REACHED_MEANWHILE) from None
    except IntegrityError:
        raise ValidationError(LADDER_CHANGED_MEANWHILE) from None
    admin_history_record(user=user, obj=policy, form=form, formsets=[steps], added=added)
    return policy


# ---------------------------------------------------------------------------------------------
# Collectors' requests that need a manager (four eyes): escalate now, skip a step, write off

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
        data |= _step_data(approval.step)
    if approval.amount is not None:
        data |= {"amount": approval.amount, "currency": approval.case.currency}
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
    _schedule(case, _step_after(steps, step), after=case.current_step, now=now)
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
        **_step_data(step),
    )


def _write_off(case: Case, approval: Approval, *, user: User, now: dt.datetime) -> None:
    """All that is overdue (or more: payments may have come in since the request) closes the case as
    written off. Less is a partial write-off: the case goes on for the rest, so its amount overdue
    drops by the amount, and reconciliation keeps deducting approved write-offs from what the
    invoices say is owed; when the rest is paid, the case closes as written off, not as recovered
    (see case_reconcile)."""
    if approval.amount < case.amount_overdue:
        previous = case.amount_overdue
        case.amount_overdue -= approval.amount
        case.save(update_fields=["amount_overdue", "updated_at"])
        case_event_record(
            case,
            "collections.case.partly_written_off",
            user=user,
            at=now,
            previous=previous,
            amount_overdue=case.amount_overdue,
            **_approval_data(approval),
        )
        return
    invoices = list(case.invoices.filter(status=Invoice.Status.OPEN))
    _invoices_write_off(invoices, now=now)
    _close(
        case,
        Case.Status.WRITTEN_OFF,
        "collections.case.written_off",
        user=user,
        now=now,
        written_off=case.amount_overdue,
        invoices=[invoice.number for invoice in invoices],
        **_approval_data(approval),
    )


def _invoices_write_off(invoices: list[Invoice], *, now: dt.datetime) -> None:
    """What is left on these invoices will not be collected: uncollectible here, so the engine does
    not open a new case on them, and at Stripe, so its own retries and reminders stop too."""
    if not invoices:
        return
    Invoice.objects.filter(pk__in=[invoice.pk for invoice in invoices], status=Invoice.Status.OPEN).update(
        status=Invoice.Status.UNCOLLECTIBLE, updated_at=now
    )
    from dunning_site.collections.billing import invoices_uncollectible_request  # billing builds on this module

    invoices_uncollectible_request(invoices=invoices)


def case_written_off_amount(*, case: Case) -> int:
    """What managers agreed to write off on this case so far (minor units)."""
    approved = Approval.objects.filter(case=case, kind=Approval.Kind.WRITE_OFF, status=Approval.Status.APPROVED)
    return approved.aggregate(total=Sum("amount"))["total"] or 0
