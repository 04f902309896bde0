"""What the engine tells Stripe, out of band, after its own commit: pause or resume collection of a
suspended customer's subscriptions, an invoice paid elsewhere, invoices written off (whole: marked
uncollectible; in part: a credit note). Each request is
a job enqueued by name (collections.jobs sits above); each job one gateway call.
"""

import logging

import django_rq
from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError
from rq import Retry

from dunning_site.accounts.billing import gateway, invoice_collected_by_stripe
from dunning_site.accounts.models import CreditNote, Invoice
from dunning_site.collections.models import Case
from dunning_site.collections.timeline import case_event_record

logger = logging.getLogger(__name__)


def subscription_collection_request(*, case: Case, paused: bool) -> None:
    """With SUSPEND_STRIPE_SUBSCRIPTION on, suspension also pauses collection of the customer's
    Stripe subscriptions and reinstatement resumes it, in a job after the engine's commit."""
    if not (settings.SUSPEND_STRIPE_SUBSCRIPTION and settings.STRIPE_API_KEY and case.customer.external_id):
        return
    job = "dunning_site.collections.jobs.subscription_collection_set"  # by name: jobs sit above this module

    def enqueue() -> None:
        try:
            django_rq.get_queue("default").enqueue(job, case.pk, paused, retry=Retry(max=5, interval=[30, 120, 600]))
        except RedisError as error:
            logger.warning("Could not enqueue the subscription change for case %s (%s)", case.pk, error)

    transaction.on_commit(enqueue, robust=True)


def subscription_collection_set(*, case_id: int, paused: bool) -> list[str]:
    case = Case.objects.select_related("customer").get(pk=case_id)
    changed = gateway().subscriptions_pause_collection(customer_id=case.customer.external_id, paused=paused)
    case_event_record(
        case,
        "collections.subscription.collection_paused" if paused else "collections.subscription.collection_resumed",
        subscriptions=changed,
    )
    return changed


def invoice_paid_elsewhere_request(*, invoice: Invoice) -> None:
    """A bank transfer or cheque settled a Stripe invoice: tell Stripe (paid out of band), or its
    own retries would charge the card a second time. In a job after the commit."""
    if not invoice_collected_by_stripe(invoice):
        return
    job = "dunning_site.collections.jobs.invoice_paid_elsewhere"  # by name: jobs sit above this module

    def enqueue() -> None:
        try:
            django_rq.get_queue("default").enqueue(job, invoice.pk, retry=Retry(max=5, interval=[30, 120, 600]))
        except RedisError as error:
            logger.warning("Could not tell Stripe invoice %s was paid elsewhere (%s)", invoice.external_id, error)

    transaction.on_commit(enqueue, robust=True)


def invoice_paid_elsewhere(*, invoice_id: int) -> str:
    invoice = Invoice.objects.get(pk=invoice_id)
    return gateway().invoice_mark_paid_out_of_band(invoice.external_id)


def invoices_uncollectible_request(*, invoices: list[Invoice]) -> None:
    """A manager wrote these invoices off: tell Stripe (marked uncollectible), or its own retries
    would charge the card and its reminders go on. In a job per invoice, after the commit."""
    if not settings.STRIPE_API_KEY:
        return
    job = "dunning_site.collections.jobs.invoice_mark_uncollectible"  # by name: jobs sit above this module

    for invoice in invoices:
        if not invoice.external_id:
            continue

        def enqueue(invoice: Invoice = invoice) -> None:
            try:
                django_rq.get_queue("default").enqueue(job, invoice.pk, retry=Retry(max=5, interval=[30, 120, 600]))
            except RedisError as error:
                logger.warning("Could not tell Stripe invoice %s was written off (%s)", invoice.external_id, error)

        transaction.on_commit(enqueue, robust=True)


def invoice_mark_uncollectible(*, invoice_id: int) -> str:
    invoice = Invoice.objects.get(pk=invoice_id)
    return gateway().invoice_mark_uncollectible(invoice.external_id)


def credit_notes_issue_request(*, credit_notes: list[CreditNote]) -> None:
    """Part of these invoices was written off here: issue the same credit notes at Stripe, or it would
    go on charging and asking for the whole amount. In a job per credit note, after the commit."""
    job = "dunning_site.collections.jobs.credit_note_issue"  # by name: jobs sit above this module

    for credit_note in credit_notes:
        if not invoice_collected_by_stripe(credit_note.invoice):
            continue

        def enqueue(credit_note: CreditNote = credit_note) -> None:
            try:
                django_rq.get_queue("default").enqueue(job, credit_note.pk, retry=Retry(max=5, interval=[30, 120, 600]))
            except RedisError as error:
                logger.warning("Could not issue credit note %s at Stripe (%s)", credit_note.pk, error)

        transaction.on_commit(enqueue, robust=True)


def credit_note_issue(*, credit_note_id: int) -> str:
    """One credit note at Stripe, once: the idempotency key is the credit note's own, so a retried job
    (its answer lost) gets Stripe's first answer back; once Stripe's id is recorded nothing is sent."""
    credit_note = CreditNote.objects.select_related("invoice").get(pk=credit_note_id)
    if credit_note.external_id:
        return credit_note.external_id
    external_id = gateway().credit_note_create(
        invoice_id=credit_note.invoice.external_id,
        amount=credit_note.amount,
        memo=credit_note.reason,
        idempotency_key=f"dunning-credit-note-{credit_note.pk}",
    )
    CreditNote.objects.filter(pk=credit_note.pk, external_id__isnull=True).update(external_id=external_id or None)
    return external_id
