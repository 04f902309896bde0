"""The hold rule: nothing charges or contacts a customer whose case is on hold — a dispute, a promise to
pay, a manual hold — except what the customer agreed to.

It is checked where money and messages leave (a retry's claim, a message's claim, a collector's "send
now"), not only where they are planned: a hold laid after a retry or a reminder was planned must still
stop it, and a plan made by code that forgot to ask cannot slip through.

- A dispute outranks everything and covers the whole customer (every currency, every case): the
  customer told their bank we were wrong, so no card of theirs is charged and nothing is sent to them
  until the dispute closes. Scheduled retries are cancelled, messages cancelled.
- A promise or a manual hold with an end date: charges and messages wait until the hold's end (a
  retry moves to the first business moment after it, in the customer's zone; a message is deferred
  and meets the contact rules again then).
- A manual hold without an end: retries and messages are cancelled, as pausing cancels queued
  messages; when the case resumes the retries are planned afresh (disputes.retries_plan_after_hold).
- A payment plan the customer accepted holds its case like a promise, until the last instalment's
  day plus the policy's grace (collections.plans).
- What the customer agreed to goes on: a retry of a card they have just given (decision "new_card"),
  a charge they asked for on the portal ("customer_pay_now"), a plan's instalments
  (instalment_may_charge) and the retries of a failed one (decision "plan_instalment") during a
  promise, a plan or a manual hold — never during a dispute. No message is sent at the customer's
  request today (confirmations do not exist), so no message is exempt.
"""

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Iterable

from django.db.models import Q

from dunning_site.accounts.models import Customer, Invoice
from dunning_site.collections.models import Case, Dispute, PaymentRetry
from dunning_site.collections.retries import CUSTOMER_PAY_NOW, next_business_moment
from dunning_site.collections.timeline import case_event_record, case_name
from dunning_site.lib import dates
from dunning_site.notifications.models import Message
from dunning_site.notifications.signals import SendVeto

# The reason a dispute holds a case with: Stripe's dispute and a call's outcome use it as it is; the
# case page writes "Dispute: <what the customer said>".
DISPUTE_REASON = "dispute"
# An accepted payment plan holds its case with a reason that starts so (collections.plans): like a
# promise, it ends on a date (the last instalment's day plus the policy's grace).
PLAN_REASON_PREFIX = "Payment plan:"
# A retry of a plan's failed instalment: what the customer agreed to, like the instalment itself.
PLAN_INSTALMENT_DECISION = "plan_instalment"
# Retries the customer asked for, by giving us a card or paying now on the portal, or agreed to in a
# plan: charged during a promise, a plan or a manual hold.
CUSTOMER_AGREED_DECISIONS = frozenset({"new_card", CUSTOMER_PAY_NOW, PLAN_INSTALMENT_DECISION})

RETRY_CANCELLED_FOR_DISPUTE = "The customer disputed a charge: no card of theirs is charged while the dispute is open."
RETRY_WAITS_FOR_HOLD = "The case is on hold (%(reason)s) until %(until)s: the retry waits until %(when)s."
RETRY_CANCELLED_FOR_HOLD = (
    "The case is on hold (%(reason)s) with no end: the retry is cancelled and planned afresh when the case resumes."
)
NOT_RETRIED_FOR_DISPUTE = "The customer disputed a charge: no retry is planned while the dispute is open."
MESSAGE_CANCELLED_FOR_DISPUTE = "The customer disputed a charge: nothing is sent to them while the dispute is open."
MESSAGE_CANCELLED_FOR_HOLD = (
    "The case is on hold (%(reason)s) with no end: nothing is sent; the ladder goes on when the case resumes."
)
MESSAGE_WAITS_FOR_HOLD = "The case is on hold (%(reason)s) until %(until)s."
SEND_REFUSED_ON_HOLD = (
    "The case of %(case)s is on hold (%(reason)s): nothing is sent to the customer until the hold ends. "
    "Keep it as a draft, or schedule it after the hold."
)
SEND_REFUSED_FOR_DISPUTE = (
    "The customer of %(case)s disputed a charge: nothing is sent to them while the dispute is open. Keep it as a draft."
)


def is_dispute(reason: str) -> bool:
    reason = (reason or "").strip().lower()
    return reason == DISPUTE_REASON or reason.startswith(f"{DISPUTE_REASON}:")


def is_plan(reason: str) -> bool:
    return (reason or "").strip().lower().startswith(PLAN_REASON_PREFIX.lower())


@dataclasses.dataclass(frozen=True)
class Hold:
    """The hold that applies to a charge or a message at a moment: the case holding it, and whether
    it is a dispute (which cancels) or ends at `until` (which makes things wait; None: no end)."""

    case: Case
    dispute: bool
    until: dt.datetime | None

    @property
    def reason(self) -> str:
        return dates.days_in_words(self.case.pause_reason) or "no reason given"

    def words(self, customer: Customer) -> dict:
        until = _local(self.until, customer) if self.until else ""
        return {"case": case_name(self.case), "reason": self.reason, "until": until}


def hold_at(*, customer_id: int, case_ids: Iterable[int], at: dt.datetime) -> Hold | None:
    """The hold that applies at `at`: a dispute on any active case of the customer; else the hold of
    one of `case_ids` (the cases a retry or a message belongs to) — one without an end before one that
    ends, the later end first. A hold whose end has passed no longer holds (the tick resumes it soon)."""
    case_ids = list(case_ids)
    held = (
        Case.objects.filter(customer_id=customer_id, status=Case.Status.PAUSED)
        .filter(Q(paused_until__isnull=True) | Q(paused_until__gt=at))
        .select_related("customer")
    )
    held = list(held)
    disputed = [case for case in held if is_dispute(case.pause_reason)]
    if disputed:
        return Hold(disputed[0], True, None)
    mine = [case for case in held if case.pk in case_ids]
    if not mine:
        return None
    case = max(mine, key=lambda case: (case.paused_until is None, case.paused_until or at))
    return Hold(case, False, case.paused_until)


def customer_is_disputing(*, customer_id: int) -> bool:
    """Whether the customer disputes a charge: with Stripe (open, whether or not a case is active) or as
    a collector recorded on a case."""
    open_at_stripe = Dispute.objects.filter(customer_id=customer_id, closed_at__isnull=True).exists()
    return open_at_stripe or customer_disputes(customer_id=customer_id) is not None


def customer_disputes(*, customer_id: int) -> Case | None:
    """The case of the customer held for a dispute, if any."""
    held = Case.objects.filter(customer_id=customer_id, status=Case.Status.PAUSED).select_related("customer")
    return next((case for case in held if is_dispute(case.pause_reason)), None)


# ---------------------------------------------------------------------------------------------
# Money: a retry at its claim


def retry_may_charge(*, retry: PaymentRetry, now: dt.datetime) -> bool:
    """Whether a retry just claimed (its row locked, still scheduled) may charge the card now. When it
    may not, the row is cancelled or moved to the hold's end, on the case's timeline."""
    invoice = Invoice.objects.select_related("customer").get(pk=retry.invoice_id)
    case_ids = set(Case.objects.filter(invoices=invoice, status__in=Case.ACTIVE_STATUSES).values_list("pk", flat=True))
    if retry.case_id:
        case_ids.add(retry.case_id)
    hold = hold_at(customer_id=invoice.customer_id, case_ids=case_ids, at=now)
    if hold is None or (not hold.dispute and retry.decision in CUSTOMER_AGREED_DECISIONS):
        return True
    words = hold.words(invoice.customer)
    if hold.dispute:
        reason, when = RETRY_CANCELLED_FOR_DISPUTE, None
    elif hold.until is None:
        reason, when = RETRY_CANCELLED_FOR_HOLD % words, None
    else:
        when = next_business_moment(max(hold.until, now), _zone(invoice.customer))
        reason = RETRY_WAITS_FOR_HOLD % {**words, "when": _local(when, invoice.customer)}
    if when is None:
        PaymentRetry.objects.filter(pk=retry.pk).update(status=PaymentRetry.Status.CANCELLED)
    else:
        PaymentRetry.objects.filter(pk=retry.pk).update(scheduled_for=when)
    case_event_record(
        retry.case or hold.case,
        "collections.payment.retry_cancelled" if when is None else "collections.payment.retry_held",
        at=now,
        invoice=invoice.number,
        attempt=retry.attempt,
        reason=reason,
        retry_at=when.isoformat() if when else None,
    )
    return False


def instalment_may_charge(*, customer_id: int, at: dt.datetime) -> bool:
    """Whether a plan's instalment may be charged at `at`: it is what the customer agreed to, so the
    plan's own hold, a promise or a manual hold do not stop it; only a dispute does."""
    hold = hold_at(customer_id=customer_id, case_ids=(), at=at)
    return hold is None or not hold.dispute


def retries_cancel_for_dispute(*, customer_id: int) -> int:
    """A dispute opened: every scheduled retry of the customer is cancelled (whatever case or currency)."""
    return PaymentRetry.objects.filter(invoice__customer_id=customer_id, status=PaymentRetry.Status.SCHEDULED).update(
        status=PaymentRetry.Status.CANCELLED
    )


def no_retry_during_dispute(*, case: Case | None, invoice: Invoice, now: dt.datetime, **data) -> bool:
    """Whether the customer of a failed payment is disputing; if so the timeline says no retry is
    planned and why (with `data`, what the failure was)."""
    if customer_disputes(customer_id=invoice.customer_id) is None:
        return False
    if case is not None:
        case_event_record(
            case,
            "collections.payment.failed",
            at=now,
            invoice=invoice.number,
            decision="dispute",
            reason=NOT_RETRIED_FOR_DISPUTE,
            retry_at=None,
            **data,
        )
    return True


def no_new_card_retry_during_dispute(*, customer: Customer, reason: str, now: dt.datetime) -> bool:
    """A card given during a dispute is kept, but charges nothing while the dispute is open."""
    if customer_disputes(customer_id=customer.pk) is None:
        return False
    for case in Case.objects.filter(customer=customer, status__in=Case.ACTIVE_STATUSES):
        case_event_record(
            case, "collections.payment.new_card", at=now, reason=reason, retries=0, not_retried=NOT_RETRIED_FOR_DISPUTE
        )
    return True


# ---------------------------------------------------------------------------------------------
# Messages: at their claim, and a collector's send


def message_veto(*, message: Message, at: dt.datetime) -> SendVeto | None:
    """The hold rule's answer to notifications' message_send_check."""
    case_ids = Case.objects.filter(messages=message).values_list("pk", flat=True)
    hold = hold_at(customer_id=message.customer_id, case_ids=case_ids, at=at)
    if hold is None:
        return None
    words = hold.words(hold.case.customer)
    if hold.dispute:
        return SendVeto(reason=MESSAGE_CANCELLED_FOR_DISPUTE, refusal=SEND_REFUSED_FOR_DISPUTE % words)
    refusal = SEND_REFUSED_ON_HOLD % words
    if hold.until is None:
        return SendVeto(reason=MESSAGE_CANCELLED_FOR_HOLD % words, refusal=refusal)
    return SendVeto(reason=MESSAGE_WAITS_FOR_HOLD % words, refusal=refusal, until=hold.until)


def _zone(customer: Customer) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(customer.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _local(moment: dt.datetime, customer: Customer) -> str:
    local = moment.astimezone(_zone(customer))
    return f"{local:%H:%M} on {local:%A} {local.day} {local:%B %Y} ({local.tzinfo})"
