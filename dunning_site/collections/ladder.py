"""The ladder: the tick's work on cases. Opening cases for overdue invoices, claiming due cases and
performing each one's next step (a message, a call task, a suspension, a retry of the card), a
collector's "now" on one case, and the ladder going on once a step's draft has gone.

The tick is safe to run on any number of workers at once: due cases are claimed with SELECT … FOR
UPDATE SKIP LOCKED, and a step is performed at most once per (case, step, attempt), a unique row
written in the same transaction. The "retry payment" step reaches the retry planner above through the
`payment_retry_step_due` signal (collections.signals), not by importing it.
"""

import dataclasses
import datetime as dt
import logging

import django_rq
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Prefetch, prefetch_related_objects
from django.utils import timezone
from redis.exceptions import RedisError
from rq.exceptions import DuplicateJobError

from dunning_site.accounts.models import Channel, Invoice, User
from dunning_site.collections import service_hooks
from dunning_site.collections.case_core import case_open_or_join
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
from dunning_site.collections.schedule import case_schedule, step_after, step_due_at
from dunning_site.collections.signals import payment_retry_step_due
from dunning_site.collections.stripe_updates import subscription_collection_request
from dunning_site.collections.timeline import (
    ENGINE_TROUBLE,
    FAILED_CASE_RETRY_AFTER,
    case_event,
    case_event_record,
    case_name,
    error_described,
    step_data,
)
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import messages_cancel, messages_create

logger = logging.getLogger(__name__)


TICK_NOW_JOB_ID = "dunning-tick-now"


# A step's message waiting as a draft (review before send, or a collector personalizing it) holds the
# ladder: the next step is not performed before it has gone. The tick looks again this often.
DRAFT_WAIT_RECHECK = dt.timedelta(hours=1)


STEP_FAILED = "The engine could not perform this step (%(error)s); it tries again at %(retry_at)s."


JOIN_FAILED = "New overdue invoices could not be added to this case (%(error)s); every tick tries again."


JOIN_FAILED_NOTED_EVERY = dt.timedelta(days=1)


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
                opened += case_open_or_join(customer_id=customer_id, currency=currency, policies=policies, now=now)
        except ENGINE_TROUBLE:
            raise
        except Exception as error:
            logger.exception("Could not open or update the %s case of customer %s", currency, customer_id)
            _opening_failed(customer_id=customer_id, currency=currency, error=error, now=now)
            if failures is not None:
                failures.append(f"customer {customer_id} ({currency}): {error_described(error)}")
    return opened


def _opening_failed(*, customer_id: int, currency: str, error: Exception, now: dt.datetime) -> None:
    """Say on the customer's active case, if there is one, that new invoices could not join it: once a
    day per error, as every tick tries again (a customer without a case has no timeline; the log has it)."""
    case = Case.objects.filter(customer_id=customer_id, currency=currency, status__in=Case.ACTIVE_STATUSES).first()
    if case is None:
        return
    description = error_described(error)
    noted = case.events.filter(
        type="collections.case.join_failed", data__error=description, at__gt=now - JOIN_FAILED_NOTED_EVERY
    )
    if noted.exists():
        return
    case_event_record(
        case, "collections.case.join_failed", at=now, error=description, reason=JOIN_FAILED % {"error": description}
    )


# In the idempotency key of a decline's ask (collections.payment_retries): a reminder written meanwhile replaces it.
ASK_KEY_MARK = ":ask-customer:"


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
                cases_advance(cases, now=now)
            return len(cases)
    except ENGINE_TROUBLE:
        raise
    except Exception as error:
        logger.warning("A batch of due cases failed (%s); performing them one at a time", error_described(error))
    claimed = 0
    while claimed < batch_size:
        case_id = None
        try:
            with transaction.atomic():
                cases = _claim_due(now=now, limit=1)
                if not cases:
                    break
                case_id = cases[0].pk
                cases_advance(cases, now=now)
        except ENGINE_TROUBLE:
            raise
        except Exception as error:
            if case_id is None:  # the claim itself failed: not one case's fault
                raise
            logger.exception("Case %s: its next step failed; it is set aside and tried again later", case_id)
            _case_step_failed(case_id=case_id, error=error, now=now)
            if failures is not None:
                failures.append(f"case {case_id}: {error_described(error)}")
        claimed += 1
    return claimed


def _claim_due(*, now: dt.datetime, limit: int) -> list[Case]:
    """Lock up to `limit` due cases, the longest due first, passing over those another worker holds."""
    return list(
        cases_to_advance()
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
    description = error_described(error)
    case_event_record(
        case,
        "collections.step.failed",
        at=now,
        error=description,
        retry_at=retry_at.isoformat(),
        reason=STEP_FAILED % {"error": description, "retry_at": f"{retry_at:%Y-%m-%d %H:%M} UTC"},
        **(step_data(case.next_step) if case.next_step else {}),
    )


def cases_to_advance():
    return Case.objects.select_related("customer", "next_step__template", "policy__contact_rules", "assignee")


def cases_advance(
    cases: list[Case], *, now: dt.datetime, requested_by: User | None = None, draft: bool = False
) -> None:
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
            case_schedule(case, step_after(case.policy.steps.all(), step), after=step, now=now)
            continue
        if step.requires_approval:
            approval = approvals.get(key)
            if approval is None or approval.status == Approval.Status.CANCELLED:
                new_approvals.append(
                    Approval(case=case, step=step, attempt=1, requested_at=now, requested_by=requested_by)
                )
                events.append(case_event(case, "collections.approval.requested", at=now, **step_data(step)))
                case.status = Case.Status.AWAITING_APPROVAL
                case.next_action_at = None
                continue
            if approval.status == Approval.Status.PENDING:
                case.status = Case.Status.AWAITING_APPROVAL
                case.next_action_at = None
                continue
            if approval.status == Approval.Status.REJECTED:
                events.append(
                    case_event(case, "collections.step.skipped", at=now, reason="rejected", **step_data(step))
                )
                case_schedule(case, step_after(case.policy.steps.all(), step), after=step, now=now)
                continue
        pendings.append(_perform(case, step, book=book, now=now, draft=draft))

    messages = messages_create([pending.message for pending in pendings if pending.message is not None])
    del messages  # bulk_create sets the ids on the Message objects held by the pendings
    # A reminder carries the call to action a decline's ask carries (collections.payment_retries): an ask still
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
        data = step_data(step) | {"sent_on": message.channel}
        pending.events.append(case_event(case, performed, at=now, **data))
    elif step.action == Step.Action.SUSPEND_SERVICE:
        case.service_suspended = True
        pending.events.append(case_event(case, "collections.case.suspended", at=now, **step_data(step)))
        service_hooks.service_hook_request(case=case, action=ServiceHookDelivery.Action.SUSPEND, now=now)
        subscription_collection_request(case=case, paused=True)
    elif step.action == Step.Action.RETRY_PAYMENT:
        decided = [
            line for _receiver, lines in payment_retry_step_due.send(sender=Case, case=case, now=now) for line in lines
        ]
        pending.events.append(
            case_event(case, "collections.step.performed", at=now, retries=decided, **step_data(step))
        )
    case.current_step = step
    case_schedule(case, step_after(case.policy.steps.all(), step), after=step, now=now)
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


STEP_NOT_DUE_NOW = "The case of %(case)s is %(status)s, so its next step cannot be performed now."


STEP_ALREADY_PERFORMED = "That step was already performed (the page showed an older state of the case)."


DRAFT_WAITS = "The message of the step before (%(step)s) waits as a draft: send it first, then the ladder goes on."


NOTHING_TO_PERSONALIZE = "The next step (%(step)s) writes no message to personalize."


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
    case = cases_to_advance().select_for_update(of=("self",)).get(pk=case.pk)
    if case.status != Case.Status.OPEN:
        raise ValidationError(STEP_NOT_DUE_NOW % {"case": case_name(case), "status": case.get_status_display().lower()})
    if case.next_step_id is None or case.next_step_id != step.pk:
        raise ValidationError(STEP_ALREADY_PERFORMED)
    if draft and case.next_step.action not in (Step.Action.REMINDER, Step.Action.FINAL_NOTICE):
        raise ValidationError(NOTHING_TO_PERSONALIZE % {"step": case.next_step})
    if _draft_waits(case):
        raise ValidationError(DRAFT_WAITS % {"step": case.current_step})
    case_event_record(
        case, "collections.step.brought_forward", user=user, at=now, for_review=draft, **step_data(case.next_step)
    )
    cases_advance([case], now=now, requested_by=user, draft=draft)
    execution = StepExecution.objects.filter(case=case, step=step, attempt=1).select_related("message").first()
    return execution.message if execution else None
