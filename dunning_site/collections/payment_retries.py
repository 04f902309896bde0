"""Smart retries: a failed payment read by its decline (collections.retries plans the next attempt),
the customer asked when only they can help (a new card, authentication), retries performed when
due (never during a dispute: collections.holds), a new card retrying what is open, and the
policy's "retry payment" step.
"""

import datetime as dt
import logging
import zoneinfo

import django_rq
import stripe
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from redis.exceptions import RedisError

from dunning_site.accounts.billing import ChargeOutcome, gateway
from dunning_site.accounts.models import Channel, Customer, Invoice, Payment
from dunning_site.accounts.services import (
    payment_record,
)
from dunning_site.collections import holds, stripe_customers
from dunning_site.collections.case_core import case_open_or_join
from dunning_site.collections.ladder import ASK_KEY_MARK
from dunning_site.collections.messaging import (
    AUTHENTICATION_NEEDED,
    CARD_UPDATE_NEEDED,
    PAYMENT_NOT_COLLECTED,
    TemplateBook,
    compose,
)
from dunning_site.collections.models import Case, PaymentRetry, Policy
from dunning_site.collections.payment_problems import (
    CLEARED_BY_NEW_CARD,
    case_payment_problem_set,
    customer_payment_problems_clear,
    payment_problem_of,
)
from dunning_site.collections.retries import (
    CARD_MUST_CHANGE,
    CUSTOMER_MUST_ACT,
    NEVER_RETRY,
    Plan,
    classify,
    plan_next_attempt,
)
from dunning_site.collections.stripe_invoices import invoice_apply, invoice_sync
from dunning_site.collections.timeline import case_event_record
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import messages_create

logger = logging.getLogger(__name__)


@transaction.atomic
def payment_failed(*, invoice: Invoice, decline: ChargeOutcome | None, now: dt.datetime | None = None) -> None:
    """A charge of this invoice failed: record it, make sure a case is open, remember why it failed (what
    every message will ask the customer for), plan the next try.

    One attempt is news once: the engine's own answer and Stripe's webhooks about the same attempt
    (invoice.payment_failed, invoice.payment_action_required) carry the same reference (the failed
    charge's id, see accounts.billing), and only the first is recorded, planned and asked about."""
    now = now or timezone.now()
    decline = decline or ChargeOutcome(succeeded=False, decline_code="unknown", message="No decline details given")
    if invoice.status != Invoice.Status.OPEN:
        return
    if decline.reference and Payment.objects.filter(external_id=decline.reference).exists():
        return  # this charge's failure is already recorded (our retry, then Stripe's webhook for it)
    payment_record(
        invoice=invoice,
        amount=max(invoice.owed, 1),
        status=Payment.Status.FAILED,
        method=Payment.Method.CARD,
        decline_code=decline.decline_code,
        advice_code=decline.advice_code,
        network_decline_code=decline.network_decline_code,
        network_advice_code=decline.network_advice_code,
        decline_message=decline.message[:500],
        external_id=decline.reference or None,
        at=now,
    )
    case = _case_for(invoice, now)
    if case is not None:
        reading = classify(
            decline_code=decline.decline_code,
            advice_code=decline.advice_code,
            network_decline_code=decline.network_decline_code,
            network_advice_code=decline.network_advice_code,
            card_brand=decline.card_brand,
        )
        case_payment_problem_set(case=case, problem=payment_problem_of(reading.decision), reason=reading.why, at=now)
    retry_plan(invoice=invoice, case=case, decline=decline, now=now)


def _case_for(invoice: Invoice, now: dt.datetime) -> Case | None:
    """A failed card payment opens (or joins) the case at once: the failure is the news."""
    case = Case.objects.filter(invoices=invoice, status__in=Case.ACTIVE_STATUSES).first()
    if case is not None:
        return case
    policies = list(Policy.objects.filter(is_active=True).prefetch_related("steps"))
    case_open_or_join(
        customer_id=invoice.customer_id, currency=invoice.currency, policies=policies, now=now, grace=False
    )
    return Case.objects.filter(invoices=invoice, status__in=Case.ACTIVE_STATUSES).first()


def retry_plan(*, invoice: Invoice, case: Case | None, decline: ChargeOutcome, now: dt.datetime) -> PaymentRetry | None:
    """Ask the planner when to try again and schedule it (or say why not, on the timeline)."""
    if holds.no_retry_during_dispute(case=case, invoice=invoice, now=now, decline_code=decline.decline_code):
        return None
    PaymentRetry.objects.filter(invoice=invoice, status=PaymentRetry.Status.SCHEDULED).update(
        status=PaymentRetry.Status.CANCELLED
    )
    earlier = list(PaymentRetry.objects.filter(invoice=invoice).exclude(status=PaymentRetry.Status.CANCELLED))
    first_failure = (
        Payment.objects.filter(invoice=invoice, status=Payment.Status.FAILED)
        .order_by("at")
        .values_list("at", flat=True)
        .first()
        or now
    )
    policy = case.policy if case else None
    plan = plan_next_attempt(
        decline_code=decline.decline_code,
        advice_code=decline.advice_code,
        network_decline_code=decline.network_decline_code,
        network_advice_code=decline.network_advice_code,
        card_brand=decline.card_brand,
        attempts_so_far=[retry.scheduled_for for retry in earlier if retry.status != PaymentRetry.Status.SCHEDULED],
        first_failure_at=first_failure,
        now=now,
        customer_time_zone=invoice.customer.time_zone,
        max_attempts=policy.retry_max_attempts if policy else 8,
        window_days=policy.retry_window_days if policy else 30,
    )
    retry = retry_schedule(invoice=invoice, case=case, plan=plan, now=now)
    asking = plan.needs_new_card or plan.needs_customer
    if case is not None and case.status == Case.Status.OPEN and asking and not plan.retry_at:
        _ask_the_customer(case=case, invoice=invoice, decision=plan.decision, now=now)
    if case is not None:
        case_event_record(
            case,
            "collections.payment.failed",
            at=now,
            invoice=invoice.number,
            decline_code=decline.decline_code,
            advice_code=decline.advice_code,
            decision=plan.decision,
            reason=plan.reason,
            retry_at=plan.retry_at.isoformat() if plan.retry_at else None,
        )
    return retry


# What the customer is told when no retry follows a decline, by the planner's decision: a card that
# must change, a payment their bank wants them to confirm; anything else (the retries spent on
# insufficient funds or declines without a reason) is "we could not collect", with the link that fits.
ASKS = {
    NEVER_RETRY: ("card-update-needed", CARD_UPDATE_NEEDED),
    CARD_MUST_CHANGE: ("card-update-needed", CARD_UPDATE_NEEDED),
    CUSTOMER_MUST_ACT: ("payment-authentication-needed", AUTHENTICATION_NEEDED),
}


NOT_COLLECTED = ("payment-not-collected", PAYMENT_NOT_COLLECTED)


def _ask_the_customer(*, case: Case, invoice: Invoice, decision: str, now: dt.datetime) -> None:
    """A decline no retry will fix: send the customer what would (the card-update link, the link to
    confirm the payment, or the pay link once the retries are spent); once per recorded decline,
    through the contact rules like any message. The ladder's reminders go on asking the same."""
    attempt = Payment.objects.filter(invoice=invoice, status=Payment.Status.FAILED).count()
    key = f"case:{case.pk}:invoice:{invoice.pk}{ASK_KEY_MARK}{attempt}"
    if Message.objects.filter(idempotency_key=key).exists():
        return
    template_key, words = ASKS.get(decision, NOT_COLLECTED)
    case = Case.objects.select_related("customer", "policy__contact_rules", "assignee").get(pk=case.pk)
    message = compose(
        case=case,
        channel=Channel.EMAIL,
        template_key=template_key,
        book=TemplateBook({template_key}),
        idempotency_key=key,
        now=now,
        built_in=words,
    )
    (message,) = messages_create([message])
    case.messages.add(message)
    case_event_record(
        case,
        "collections.payment.customer_asked",
        at=now,
        message_id=message.pk,
        invoice=invoice.number,
        template_key=template_key,
    )


# How long before a retry that met no answer or an error answer (not a decline) is attempted again.
GATEWAY_DOWN_DELAY = dt.timedelta(minutes=10)


# The planner's class for a retry scheduled because Stripe answered an error instead of charging.
GATEWAY_ERROR = "gateway_error"


GATEWAY_ERROR_RETRY = (
    "Stripe answered an error instead of charging (%(error)s) and the invoice is still open: "
    "another attempt %(when)s, as a new request."
)


GATEWAY_ERROR_BUDGET_SPENT = (
    "Stripe answered an error instead of charging (%(error)s) and the invoice is still open. "
    "No retry left: %(used)s of %(cap)s retries used in %(days)s days."
)


def retries_perform_due(*, now: dt.datetime | None = None, limit: int = 200) -> int:
    """Attempt every retry due at `now` (the tick's start). Each is claimed in a short transaction
    (SKIP LOCKED, so workers share the work) and stamped with the moment of its own claim — a tick
    working through 200 retries takes minutes; the billing system is called with no transaction open,
    and the outcome is recorded in a transaction of its own: no lock is held across the network."""
    now = now or timezone.now()
    done = 0
    while done < limit:
        with transaction.atomic():
            retry = (
                PaymentRetry.objects.filter(status=PaymentRetry.Status.SCHEDULED, scheduled_for__lte=now)
                .select_for_update(skip_locked=True)
                .order_by("scheduled_for")
                .first()
            )
            if retry is None:
                return done
            if not holds.retry_may_charge(retry=retry, now=timezone.now()):  # the hold rule, as it charges
                continue
            PaymentRetry.objects.filter(pk=retry.pk).update(
                status=PaymentRetry.Status.ATTEMPTING, attempted_at=timezone.now()
            )
        # Claimed before (no answer came, or its worker died): its request may have reached Stripe.
        asked_before = retry.attempted_at is not None
        _retry_attempt(
            PaymentRetry.objects.select_related("invoice__customer", "case__policy").get(pk=retry.pk),
            asked_before=asked_before,
        )
        done += 1
    return done


# Longer than any charge takes (a request gets STRIPE_TIMEOUT_SECONDS, three times at most): past
# this, the worker has died.
RETRY_ATTEMPT_STUCK_AFTER = dt.timedelta(minutes=15)


def retries_recover_stuck(*, now: dt.datetime | None = None) -> int:
    """Put back on the schedule the retries a worker claimed and died on before recording the outcome.
    Attempting again is safe: the invoice is re-read from Stripe first (a charge that went through shows
    as paid and its payment is recorded), and the request reuses the retry's idempotency key, so Stripe
    answers what it did the first time instead of charging again."""
    now = now or timezone.now()
    stuck = PaymentRetry.objects.filter(
        status=PaymentRetry.Status.ATTEMPTING, attempted_at__lt=now - RETRY_ATTEMPT_STUCK_AFTER
    ).values_list("pk", "invoice_id")
    recovered = 0
    for retry_id, invoice_id in stuck.order_by("pk")[:100]:
        with transaction.atomic():
            # A later retry may already stand for the invoice (a new card meanwhile): it speaks for this one.
            superseded = PaymentRetry.objects.filter(invoice_id=invoice_id, status=PaymentRetry.Status.SCHEDULED)
            status = PaymentRetry.Status.CANCELLED if superseded.exists() else PaymentRetry.Status.SCHEDULED
            recovered += PaymentRetry.objects.filter(pk=retry_id, status=PaymentRetry.Status.ATTEMPTING).update(
                status=status, scheduled_for=now
            )
        logger.warning("Retry %s was left attempting by a worker that stopped; now %s", retry_id, status)
    return recovered


def retry_idempotency_key(retry: PaymentRetry) -> str:
    return f"dunning-retry-{retry.pk}"


def _retry_attempt(retry: PaymentRetry, *, asked_before: bool) -> None:
    """One attempt to charge the invoice, and what its answer means for the next one.

    Stripe keeps the answer to an idempotency key for 24 hours and replays it to every request with
    that key, a 500 included. So a retry's key (`dunning-retry-<pk>`) is kept only while the outcome
    is unknown:

    - No answer (a timeout, a lost connection; or the worker died, see retries_recover_stuck): the
      request may have charged. The row goes back on the schedule as it is, and the next attempt
      re-reads the invoice and asks again with the same key: Stripe answers what it did the first time,
      never charging twice. It spends no budget: nothing new was asked of the card.
    - An error answer (a 500, a 429…): the invoice is re-read. Paid after all, the payment is recorded.
      Still open, nothing was charged and the attempt counts against the invoice's budget: the row is
      marked failed with the error and, while the budget lasts, a new row — a new pk, hence a new key —
      is scheduled after GATEWAY_DOWN_DELAY. A new row rather than a key counter on this one, so every
      request that reached Stripe is one row, counted by retry_budget_left, shown in the admin.
    - A charge or a decline: recorded (a decline asks the planner for the next attempt).
    """
    invoice = retry.invoice
    on_stripe = bool(invoice.external_id and settings.STRIPE_API_KEY)
    if on_stripe:
        try:
            invoice = invoice_sync(invoice_id=invoice.external_id) or invoice  # never race Stripe's own retries
        except stripe.StripeError as error:
            _retry_later(retry, error)  # nothing was asked of the card this time
            return
    if not _payable(invoice):
        _retry_settled(retry, invoice, ours=asked_before and on_stripe and _replay_charged(retry, invoice))
        return
    try:
        outcome = gateway().invoice_pay(
            invoice.external_id or invoice.number, idempotency_key=retry_idempotency_key(retry)
        )
    except stripe.APIConnectionError as error:
        _retry_later(retry, error)
        return
    except stripe.StripeError as error:
        _retry_answered_error(retry, invoice, error, on_stripe=on_stripe)
        return
    _retry_record(retry, invoice, outcome)


def _payable(invoice: Invoice) -> bool:
    return invoice.status == Invoice.Status.OPEN and invoice.owed > 0


def _replay_charged(retry: PaymentRetry, invoice: Invoice) -> bool:
    """Whether this retry's own earlier request paid the invoice, as Stripe's replay of its key says
    (an invoice already paid is never charged again: a key Stripe never saw gets "already paid")."""
    if invoice.status != Invoice.Status.PAID:
        return False
    try:
        return gateway().invoice_pay(invoice.external_id, idempotency_key=retry_idempotency_key(retry)).succeeded
    except stripe.StripeError:
        return True  # the stored answer is an error, or none comes: the charge that paid it was most likely ours


def _retry_settled(retry: PaymentRetry, invoice: Invoice, *, ours: bool) -> None:
    """The invoice is no longer payable: paid (by this retry's request, whose answer was lost, or another
    way), written off or void. The payment itself was recorded by the re-read (invoice_apply)."""
    payment = None
    if ours:
        payment = (
            Payment.objects.filter(invoice=invoice, status=Payment.Status.SUCCEEDED, method=Payment.Method.CARD)
            .order_by("-at", "-pk")
            .first()
        )
    with transaction.atomic():
        if payment is None:
            PaymentRetry.objects.filter(pk=retry.pk).update(status=PaymentRetry.Status.SKIPPED)
            return
        PaymentRetry.objects.filter(pk=retry.pk).update(status=PaymentRetry.Status.SUCCEEDED, payment=payment, error="")
        if retry.case:
            case_event_record(
                retry.case, "collections.payment.retry_succeeded", at=timezone.now(), invoice=invoice.number
            )


def _retry_later(retry: PaymentRetry, error: Exception) -> None:
    """No answer (or nothing asked): the same row — the same key — is attempted again later."""
    logger.warning("Retry %s got no answer from the billing system (%s); asking again later", retry.pk, error)
    with transaction.atomic():
        # A later retry may stand for the invoice already (a new card meanwhile): it re-reads the invoice
        # first, so a charge this request made is found and recorded all the same.
        superseded = (
            PaymentRetry.objects.filter(invoice_id=retry.invoice_id, status=PaymentRetry.Status.SCHEDULED)
            .exclude(pk=retry.pk)
            .exists()
        )
        PaymentRetry.objects.filter(pk=retry.pk).update(
            status=PaymentRetry.Status.CANCELLED if superseded else PaymentRetry.Status.SCHEDULED,
            scheduled_for=timezone.now() + GATEWAY_DOWN_DELAY,
            error=_describe(error),
        )


def _retry_answered_error(retry: PaymentRetry, invoice: Invoice, error: stripe.StripeError, *, on_stripe: bool) -> None:
    """Stripe answered an error instead of charging or declining; its key would replay that error for a
    day. Re-read the invoice to learn whether the card was charged all the same."""
    logger.warning("Retry %s: the billing system answered an error (%s)", retry.pk, error)
    if on_stripe:
        try:
            invoice = invoice_sync(invoice_id=invoice.external_id) or invoice
        except stripe.StripeError:
            _retry_later(retry, error)  # it may have charged, and we cannot tell: keep the key
            return
    if not _payable(invoice):
        _retry_settled(retry, invoice, ours=True)
        return
    now = timezone.now()
    described = _describe(error)
    case = retry.case
    policy = case.policy if case else None
    with transaction.atomic():
        PaymentRetry.objects.filter(pk=retry.pk).update(status=PaymentRetry.Status.FAILED, error=described)
        standing = PaymentRetry.objects.filter(invoice=invoice, status=PaymentRetry.Status.SCHEDULED).first()
        words = {"error": described[:200]}
        if standing is None and retry_budget_left(invoice=invoice, policy=policy, now=now):
            retry_at = now + GATEWAY_DOWN_DELAY
            reason = GATEWAY_ERROR_RETRY % {**words, "when": _at_local(retry_at, invoice.customer)}
            PaymentRetry.objects.create(
                invoice=invoice,
                case=case,
                scheduled_for=retry_at,
                decision=GATEWAY_ERROR,
                reason=reason[:255],
                attempt=_next_attempt_number(invoice),
                created_at=now,
            )
        elif standing is not None:  # a retry scheduled meanwhile (a new card) goes ahead
            retry_at = standing.scheduled_for
            reason = GATEWAY_ERROR_RETRY % {**words, "when": _at_local(retry_at, invoice.customer)}
        else:
            retry_at = None
            reason = GATEWAY_ERROR_BUDGET_SPENT % {
                **words,
                "used": _retries_counted(invoice=invoice, policy=policy, now=now),
                "cap": policy.retry_max_attempts if policy else 8,
                "days": policy.retry_window_days if policy else 30,
            }
        if case is not None:
            event_type = "collections.payment.retry_error" if retry_at else "collections.payment.budget_spent"
            case_event_record(
                case,
                event_type,
                at=now,
                invoice=invoice.number,
                error=described,
                reason=reason,
                retry_at=retry_at.isoformat() if retry_at else None,
            )


def _retry_record(retry: PaymentRetry, invoice: Invoice, outcome: ChargeOutcome) -> None:
    now = timezone.now()
    with transaction.atomic():
        if outcome.succeeded:
            if outcome.invoice is not None:  # Stripe's invoice after the charge: recorded once, by its id
                invoice_apply(data=outcome.invoice)
                payment = Payment.objects.filter(external_id=outcome.reference).first()
            else:
                payment = payment_record(
                    invoice=invoice,
                    amount=invoice.owed,
                    method=Payment.Method.CARD,
                    external_id=outcome.reference or None,
                    at=now,
                )
            PaymentRetry.objects.filter(pk=retry.pk).update(
                status=PaymentRetry.Status.SUCCEEDED, payment=payment, error=""
            )
            if retry.case:
                case_event_record(retry.case, "collections.payment.retry_succeeded", at=now, invoice=invoice.number)
        else:
            PaymentRetry.objects.filter(pk=retry.pk).update(status=PaymentRetry.Status.FAILED, error="")
            payment_failed(invoice=invoice, decline=outcome, now=now)


def _describe(error: Exception) -> str:
    """The error in a line for the row and the timeline: its HTTP status when an answer came."""
    status = getattr(error, "http_status", None)
    message = getattr(error, "user_message", None) or str(error) or type(error).__name__
    words = f"{type(error).__name__}, HTTP {status}: {message}" if status else f"{type(error).__name__}: {message}"
    return " ".join(words.split())[:500]


def _at_local(moment: dt.datetime, customer: Customer) -> str:
    """ "at 11:10 on Tuesday 10 March 2026 (America/New_York)": the customer's time, as the planner says it."""
    try:
        zone = zoneinfo.ZoneInfo(customer.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    local = moment.astimezone(zone)
    return f"at {local:%H:%M} on {local:%A} {local.day} {local:%B %Y} ({zone.key})"


def retry_budget_left(*, invoice: Invoice, policy: Policy | None, now: dt.datetime) -> int:
    """Retries still allowed for the invoice in the policy's window (defaults: 8 in 30 days). Every
    retry that asked Stripe counts, declined or answered with an error; a cancelled or skipped one never
    asked."""
    cap = policy.retry_max_attempts if policy else 8
    return max(cap - _retries_counted(invoice=invoice, policy=policy, now=now), 0)


def _retries_counted(*, invoice: Invoice, policy: Policy | None, now: dt.datetime) -> int:
    window = policy.retry_window_days if policy else 30
    return (
        PaymentRetry.objects.filter(invoice=invoice, scheduled_for__gte=now - dt.timedelta(days=window))
        .exclude(status__in=[PaymentRetry.Status.CANCELLED, PaymentRetry.Status.SKIPPED])
        .count()
    )


def retry_schedule(*, invoice: Invoice, case: Case | None, plan: Plan, now: dt.datetime) -> PaymentRetry | None:
    """The retry the planner decided on, as a row the tick will claim (None when it decided none)."""
    if plan.retry_at is None:
        return None
    return PaymentRetry.objects.create(
        invoice=invoice,
        case=case,
        scheduled_for=plan.retry_at,
        decision=plan.decision,
        reason=plan.reason[:255],
        attempt=_next_attempt_number(invoice),
        created_at=now,
    )


def _next_attempt_number(invoice: Invoice) -> int:
    return (PaymentRetry.objects.filter(invoice=invoice).aggregate(last=Max("attempt"))["last"] or 0) + 1


@transaction.atomic
def retry_all_open_invoices(*, customer: Customer, reason: str, now: dt.datetime | None = None) -> int:
    """A new card: every open overdue invoice of the customer is tried again at once (the customer
    agreed to that charge by giving the card, so a promise or a manual hold lets it go; a dispute does not)."""
    now = now or timezone.now()
    if holds.no_new_card_retry_during_dispute(customer=customer, reason=reason, now=now):
        return 0
    scheduled = 0
    for case in Case.objects.filter(customer=customer, status__in=Case.ACTIVE_STATUSES):
        for invoice in case.invoices.filter(status=Invoice.Status.OPEN):
            PaymentRetry.objects.filter(invoice=invoice, status=PaymentRetry.Status.SCHEDULED).update(
                status=PaymentRetry.Status.CANCELLED
            )
            if not retry_budget_left(invoice=invoice, policy=case.policy, now=now):
                case_event_record(case, "collections.payment.budget_spent", at=now, invoice=invoice.number)
                continue
            PaymentRetry.objects.create(
                invoice=invoice,
                case=case,
                scheduled_for=now,
                decision="new_card",
                reason=reason,
                attempt=_next_attempt_number(invoice),
                created_at=now,
            )
            scheduled += 1
        case_event_record(case, "collections.payment.new_card", at=now, reason=reason, retries=scheduled)
    return scheduled


def customer_card_new(*, customer: Customer, payment_method: dict, reason: str, now: dt.datetime | None = None) -> int:
    """The customer gave a new card (through Stripe, or the sandbox's card page): it becomes the card
    invoices are charged to, its expiry, brand and address replace the old card's (pre-dunning, time
    zone), nothing is asked of the old card any more, and every open overdue invoice is retried at once
    (unless a dispute is open). Returns the number of retries scheduled."""
    Customer.objects.filter(pk=customer.pk).update(default_payment_method=payment_method["id"])
    customer.default_payment_method = payment_method["id"]
    stripe_customers.card_learn(customer=customer, payment_method=payment_method)
    customer_payment_problems_clear(customer_id=customer.pk, reason=CLEARED_BY_NEW_CARD, at=now)
    scheduled = retry_all_open_invoices(customer=customer, reason=reason, now=now)
    transaction.on_commit(retries_enqueue, robust=True)
    return scheduled


def retries_enqueue() -> None:
    """Ask a worker to perform the retries due now (the next tick would, within a minute)."""
    retries_perform = "dunning_site.collections.jobs.retries_perform"  # by name: jobs sit above this module

    try:
        django_rq.get_queue("default").enqueue(retries_perform)
    except RedisError as error:
        logger.warning("Could not enqueue retries (%s); the next tick performs them.", error)


NO_RETRY_AFTER = {NEVER_RETRY, CARD_MUST_CHANGE, CUSTOMER_MUST_ACT}


def decline_reading(payment: Payment):
    """What the retry planner reads in a recorded failed payment (collections.retries.classify)."""
    return classify(
        decline_code=payment.decline_code,
        advice_code=payment.advice_code,
        network_decline_code=payment.network_decline_code,
        network_advice_code=payment.network_advice_code,
    )


def retry_for_policy_step(*, case: Case, now: dt.datetime) -> list[str]:
    """The policy's "retry payment" step: try each open invoice of the case now, unless the planner
    already has a retry scheduled, the last decline rules retries out, or the budget is spent.
    Returns what was decided per invoice, for the timeline."""
    policy = case.policy
    decided = []
    for invoice in case.invoices.filter(status=Invoice.Status.OPEN):
        if PaymentRetry.objects.filter(invoice=invoice, status=PaymentRetry.Status.SCHEDULED).exists():
            decided.append(f"{invoice.number}: a retry is already scheduled")
            continue
        last = Payment.objects.filter(invoice=invoice, status=Payment.Status.FAILED).order_by("-at", "-pk").first()
        if last is not None:
            reading = decline_reading(last)
            if reading.decision in NO_RETRY_AFTER:
                decided.append(f"{invoice.number}: not retried ({reading.why})")
                continue
        if not retry_budget_left(invoice=invoice, policy=policy, now=now):
            decided.append(f"{invoice.number}: retry budget spent ({policy.retry_max_attempts} retries)")
            continue
        PaymentRetry.objects.create(
            invoice=invoice,
            case=case,
            scheduled_for=now,
            decision="policy_step",
            reason="The policy's retry step",
            attempt=_next_attempt_number(invoice),
            created_at=now,
        )
        decided.append(f"{invoice.number}: retried now")
    return decided
