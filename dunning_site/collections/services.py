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
from django.db import transaction
from django.db.models import F, Prefetch, prefetch_related_objects
from django.utils import timezone
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
    Policy,
    ServiceHookDelivery,
    Step,
    StepExecution,
)
from dunning_site.lib.money import format_money
from dunning_site.notifications.models import Message, MessageTemplate
from dunning_site.notifications.services import messages_cancel, messages_create

logger = logging.getLogger(__name__)

TICK_NOW_JOB_ID = "dunning-tick-now"

# A step whose day has already passed (the case was paused, or waited for approval) is not sent
# back to back with the previous one: it waits this long after it.
CATCH_UP_GAP = dt.timedelta(days=1)

NO_POLICY = "No active policy applies to segment %(segment)s, %(currency)s."
CASE_NOT_ACTIVE = "Case %(case)s is %(status)s; only active cases can be changed."
CASE_NOT_PAUSED = "Case %(case)s is not paused."
APPROVAL_NOT_PENDING = "This approval was already %(status)s."
SELF_APPROVAL = "You requested this step yourself; another manager must approve it."
PAUSE_IN_PAST = "The pause must end in the future."


@dataclasses.dataclass
class TickResult:
    opened: int = 0
    resumed: int = 0
    advanced: int = 0
    retried: int = 0


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


def cases_open_overdue(*, now: dt.datetime | None = None) -> int:
    """Open a case (or join the open one) for every customer and currency with invoices unpaid
    past their policy's grace period. Returns how many cases were opened."""
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
        with transaction.atomic():
            opened += _open_or_join(customer_id=customer_id, currency=currency, policies=policies, now=now)
    return opened


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
    return case


# ---------------------------------------------------------------------------------------------
# The tick


def tick(*, now: dt.datetime | None = None, batch_size: int | None = None) -> TickResult:
    """One pass of the engine: open new cases, end expired pauses, perform every due step."""
    now = now or timezone.now()
    batch_size = batch_size or settings.DUNNING_TICK_BATCH_SIZE
    result = TickResult(opened=cases_open_overdue(now=now), resumed=cases_resume_expired(now=now))
    while True:
        advanced = cases_advance_batch(now=now, batch_size=batch_size)
        result.advanced += advanced
        if advanced < batch_size:
            break
    from dunning_site.collections.billing import retries_perform_due  # billing builds on this module

    result.retried = retries_perform_due(now=now)
    return result


@dataclasses.dataclass
class _Pending:
    """What one due case will write, gathered so a whole batch is written in a few statements."""

    case: Case
    step: Step
    message: Message | None = None
    events: list[CaseEvent] = dataclasses.field(default_factory=list)


@transaction.atomic
def cases_advance_batch(*, now: dt.datetime, batch_size: int) -> int:
    """Claim up to `batch_size` due cases and perform each one's due step. Returns the number claimed.

    The number of queries is the same for 1 case or 200: everything is loaded and written in bulk.
    """
    cases = list(
        Case.objects.filter(status=Case.Status.OPEN, next_action_at__lte=now)
        .order_by("next_action_at")
        .select_related("customer", "next_step__template", "policy__contact_rules", "assignee")
        .select_for_update(skip_locked=True, of=("self",))[:batch_size]
    )
    if not cases:
        return 0
    _load_batch(cases)
    performed = set(
        StepExecution.objects.filter(case__in=cases).values_list("case_id", "step_id", "attempt").order_by()
    )
    approvals = {
        (approval.case_id, approval.step_id, approval.attempt): approval
        for approval in Approval.objects.filter(case__in=cases).order_by()
    }
    book = _template_book(cases)

    pendings, new_approvals, events = [], [], []
    for case in cases:
        step = case.next_step
        if step is None:  # nothing left on the ladder; an old row may still carry a date
            case.next_action_at = None
            continue
        key = (case.pk, step.pk, 1)
        if key in performed:
            # Already done (by a previous run that crashed after committing): move on, don't repeat.
            _schedule(case, _step_after(case.policy.steps.all(), step), after=step, now=now)
            continue
        if step.requires_approval:
            approval = approvals.get(key)
            if approval is None or approval.status == Approval.Status.CANCELLED:
                new_approvals.append(Approval(case=case, step=step, attempt=1, requested_at=now))
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
        pendings.append(_perform(case, step, book=book, now=now))

    messages = messages_create([pending.message for pending in pendings if pending.message is not None])
    del messages  # bulk_create sets the ids on the Message objects held by the pendings
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
    return len(cases)


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


def _perform(case: Case, step: Step, *, book: TemplateBook, now: dt.datetime) -> _Pending:
    pending = _Pending(case=case, step=step)
    if step.action in Step.MESSAGE_ACTIONS:
        pending.message = message = _message_for(case, step, book=book, now=now)
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


def _message_for(case: Case, step: Step, *, book: TemplateBook, now: dt.datetime) -> Message:
    return compose(
        case=case,
        channel=Channel.CALL if step.action == Step.Action.CALL_TASK else step.channel,
        template_key=step_template_key(step),
        book=book,
        idempotency_key=f"case:{case.pk}:step:{step.pk}:attempt:1",
        now=now,
        draft=step.review_before_send,
    )


# ---------------------------------------------------------------------------------------------
# Payment and reconciliation


@transaction.atomic
def case_reconcile(*, case: Case, user: User | None = None, now: dt.datetime | None = None) -> Case:
    """Bring the case in line with its invoices: resolve it when nothing is owed any more."""
    now = now or timezone.now()
    case = Case.objects.select_for_update().select_related("customer").get(pk=case.pk)
    if not case.is_active:
        return case
    owed = sum(
        invoice.total - invoice.amount_paid
        for invoice in case.invoices.filter(status=Invoice.Status.OPEN).only("total", "amount_paid")
    )
    if owed == 0:
        return _resolve(case, user=user, now=now)
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


def _resolve(case: Case, *, user: User | None, now: dt.datetime) -> Case:
    recovered = case.amount_overdue
    case.status = Case.Status.RESOLVED
    case.resolved_at = now
    case.amount_overdue = 0
    case.next_step = None
    case.next_action_at = None
    case.paused_until = None
    cancelled = messages_cancel(messages=case.messages.all())
    Approval.objects.filter(case=case, status=Approval.Status.PENDING).update(
        status=Approval.Status.CANCELLED, decided_at=now, note="Case resolved"
    )
    events = [_event(case, "collections.case.resolved", user=user, at=now, amount=recovered, cancelled=cancelled)]
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

            service_hooks.service_hook_request(case=case, action=ServiceHookDelivery.Action.REINSTATE, now=now)
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


@transaction.atomic
def case_pause(*, case: Case, until: dt.datetime | None, reason: str, user: User | None = None) -> Case:
    case = Case.objects.select_for_update().get(pk=case.pk)
    if not case.is_active:
        raise ValidationError(CASE_NOT_ACTIVE % {"case": case.pk, "status": case.get_status_display().lower()})
    if until is not None and until <= timezone.now():
        raise ValidationError({"paused_until": PAUSE_IN_PAST})
    case.status = Case.Status.PAUSED
    case.paused_until = until
    case.pause_reason = reason
    case.save(update_fields=["status", "paused_until", "pause_reason", "updated_at"])
    # Reminders already written (held by quiet hours or a cap) must not go out during a dispute or
    # the day after a promise; drafts stay for the collector. Resuming goes on with the ladder.
    cancelled = messages_cancel(messages=case.messages.filter(status=Message.Status.QUEUED))
    case_event_record(
        case,
        "collections.case.paused",
        user=user,
        reason=reason,
        until=until.isoformat() if until else None,
        cancelled_messages=cancelled,
    )
    return case


@transaction.atomic
def case_resume(*, case: Case, user: User | None = None, now: dt.datetime | None = None) -> Case:
    now = now or timezone.now()
    case = Case.objects.select_for_update().select_related("customer").get(pk=case.pk)
    if case.status != Case.Status.PAUSED:
        raise ValidationError(CASE_NOT_PAUSED % {"case": case.pk})
    waiting = Approval.objects.filter(case=case, status=Approval.Status.PENDING).exists()
    case.status = Case.Status.AWAITING_APPROVAL if waiting else Case.Status.OPEN
    case.paused_until = None
    case.pause_reason = ""
    if case.next_step is not None and not waiting:
        due = step_due_at(case=case, step=case.next_step)
        case.next_action_at = max(due, now)
    case.save(update_fields=["status", "paused_until", "pause_reason", "next_action_at", "updated_at"])
    case_event_record(case, "collections.case.resumed", user=user)
    return case


def cases_resume_expired(*, now: dt.datetime) -> int:
    due = Case.objects.filter(status=Case.Status.PAUSED, paused_until__lte=now).values_list("pk", flat=True)
    resumed = 0
    for case_id in due[:1000]:
        case_resume(case=Case(pk=case_id), now=now)
        resumed += 1
    return resumed


@transaction.atomic
def approval_decide(
    *, approval: Approval, approve: bool, user: User, note: str = "", now: dt.datetime | None = None
) -> Approval:
    """A manager's decision on a waiting step. Approved steps are performed by the next tick,
    which is enqueued at once, so the case moves on within seconds."""
    now = now or timezone.now()
    approval = Approval.objects.select_for_update(of=("self",)).select_related("step", "case").get(pk=approval.pk)
    if approval.status != Approval.Status.PENDING:
        raise ValidationError(APPROVAL_NOT_PENDING % {"status": approval.get_status_display().lower()})
    if approval.requested_by_id is not None and approval.requested_by_id == user.pk:
        raise ValidationError(SELF_APPROVAL)
    approval.status = Approval.Status.APPROVED if approve else Approval.Status.REJECTED
    approval.decided_by = user
    approval.decided_at = now
    approval.note = note
    approval.save()
    case = Case.objects.select_for_update().get(pk=approval.case_id)
    verdict = "approved" if approve else "rejected"
    case_event_record(
        case, f"collections.approval.{verdict}", user=user, at=now, note=note, **_step_data(approval.step)
    )
    if case.status == Case.Status.AWAITING_APPROVAL:
        case.status = Case.Status.OPEN
        case.next_action_at = now
        case.save(update_fields=["status", "next_action_at", "updated_at"])
        transaction.on_commit(enqueue_tick, robust=True)
    return approval


def enqueue_tick() -> None:
    """Ask a worker for a tick now. One waiting tick is enough (a fixed, unique job id); if Redis is
    unreachable, the cron's next tick, within a minute, does the same work."""
    from dunning_site.collections.jobs import tick as tick_job

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
        raise ValidationError(CASE_NOT_ACTIVE % {"case": case.pk, "status": case.get_status_display().lower()})
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
            until = dt.datetime.combine(promised_on + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
            reason = f"Promise to pay {format_money(promised_amount, case.currency)} by {promised_on.isoformat()}"
            case_pause(case=case, until=until, reason=reason, user=user)
        elif case.is_active and outcome == Message.CallOutcome.DISPUTE:
            case_pause(case=case, until=None, reason="dispute", user=user)
    if outcome == Message.CallOutcome.WRONG_NUMBER and message.customer.phone == message.to_address:
        contact_mark_unusable(customer=message.customer, channel=Channel.CALL, reason="Wrong number (call)", at=now)
    return message
