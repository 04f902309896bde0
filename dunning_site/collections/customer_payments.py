"""The customer's "pay now" on the portal: the card on file charged at once for every open invoice,
through the retry machinery (an idempotency key per attempt, the hold rule at the charge, each outcome
recorded once, a decline read by the planner), and what became of each charge, told plainly.

A payment the customer asks for is one they agreed to: a promise or a manual hold does not stop it
(holds.CUSTOMER_AGREED_DECISIONS); a dispute does, as it stops every charge.
"""

import dataclasses
import datetime as dt

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from dunning_site.accounts.models import Customer, Invoice, Payment
from dunning_site.collections.models import Case, PaymentRetry
from dunning_site.collections.payment_retries import decline_reading, retries_enqueue
from dunning_site.collections.retries import (
    CARD_MUST_CHANGE,
    CUSTOMER_MUST_ACT,
    CUSTOMER_PAY_NOW,
    NEVER_RETRY,
)
from dunning_site.collections.timeline import case_event_record

PAY_NOW_REASON = "The customer asked to pay now, on the portal."


@dataclasses.dataclass(frozen=True)
class ChargeNews:
    """What became of one charge the customer asked for: paid, pending (still being charged), declined
    (with what to do next: a new card, the bank's confirmation, or later), or not charged (held, or
    settled meanwhile)."""

    invoice: Invoice
    state: str
    next_step: str = ""
    why: str = ""


@transaction.atomic
def customer_pay_now(*, customer: Customer, now: dt.datetime | None = None) -> list[int]:
    """Charge every open invoice of the customer now; returns the retries doing it (one per invoice: a
    retry already planned is brought forward rather than doubled)."""
    now = now or timezone.now()
    retry_ids = []
    invoices = Invoice.objects.select_for_update().filter(
        customer=customer, status=Invoice.Status.OPEN, amount_remaining__gt=0
    )
    for invoice in invoices.order_by("due_on", "pk"):
        case = Case.objects.filter(invoices=invoice, status__in=Case.ACTIVE_STATUSES).first()
        waiting = PaymentRetry.objects.filter(
            invoice=invoice, status__in=[PaymentRetry.Status.SCHEDULED, PaymentRetry.Status.ATTEMPTING]
        ).first()
        if waiting is not None:
            if waiting.status == PaymentRetry.Status.SCHEDULED:
                PaymentRetry.objects.filter(pk=waiting.pk).update(
                    scheduled_for=now, decision=CUSTOMER_PAY_NOW, reason=PAY_NOW_REASON
                )
            retry_ids.append(waiting.pk)
            continue
        last = PaymentRetry.objects.filter(invoice=invoice).aggregate(last=Max("attempt"))["last"] or 0
        retry = PaymentRetry.objects.create(
            invoice=invoice,
            case=case,
            scheduled_for=now,
            decision=CUSTOMER_PAY_NOW,
            reason=PAY_NOW_REASON,
            attempt=last + 1,
            created_at=now,
        )
        retry_ids.append(retry.pk)
        if case is not None:
            case_event_record(case, "collections.payment.customer_pay_now", at=now, invoice=invoice.number)
    transaction.on_commit(retries_enqueue, robust=True)
    return retry_ids


def customer_pay_now_news(*, customer: Customer, retry_ids: list[int]) -> list[ChargeNews]:
    retries = PaymentRetry.objects.filter(pk__in=retry_ids, invoice__customer=customer).select_related("invoice")
    return [_news(retry) for retry in retries.order_by("invoice__due_on", "pk")]


def _news(retry: PaymentRetry) -> ChargeNews:
    invoice = retry.invoice
    if retry.status == PaymentRetry.Status.SUCCEEDED or invoice.status == Invoice.Status.PAID:
        return ChargeNews(invoice, "paid")
    if retry.status in (PaymentRetry.Status.SCHEDULED, PaymentRetry.Status.ATTEMPTING):
        return ChargeNews(invoice, "pending")
    if retry.status == PaymentRetry.Status.FAILED:
        declined = Payment.objects.filter(invoice=invoice, status=Payment.Status.FAILED).order_by("-at", "-pk").first()
        if declined is None:
            return ChargeNews(invoice, "declined", "later")
        reading = decline_reading(declined)
        if reading.decision in (NEVER_RETRY, CARD_MUST_CHANGE):
            return ChargeNews(invoice, "declined", "new_card", declined.decline_message)
        if reading.decision == CUSTOMER_MUST_ACT:
            return ChargeNews(invoice, "declined", "confirm", declined.decline_message)
        return ChargeNews(invoice, "declined", "later", declined.decline_message)
    return ChargeNews(invoice, "not_charged")
