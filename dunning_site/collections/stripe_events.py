"""The billing system's news, turned into dunning: Stripe webhooks received, stored and processed.

The webhook view only verifies and stores an event (once: its id is unique) and answers at once;
a job processes it. Processing never trusts the order events arrive in: an invoice is re-read
from the billing system and its current state applied, and a settled invoice is never reopened
by an older event. A failed payment goes to the retry planner (collections.payment_retries), a
dispute to collections.disputes, a new card to the retries it unblocks.
"""

import datetime as dt
import json
import logging

import django_rq
import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Retry

from dunning_site.accounts.billing import gateway
from dunning_site.accounts.models import BillingEvent, Customer
from dunning_site.accounts.services import (
    billing_object_cleaned,
)
from dunning_site.collections import stripe_customers
from dunning_site.collections.disputes import dispute_news
from dunning_site.collections.models import Case
from dunning_site.collections.payment_problems import (
    CLEARED_BY_NEW_CARD,
)
from dunning_site.collections.payment_retries import customer_card_new, payment_failed
from dunning_site.collections.stripe_invoices import invoice_sync
from dunning_site.collections.timeline import case_event_record

logger = logging.getLogger(__name__)


INVOICE_EVENTS = {
    "invoice.finalized",
    "invoice.updated",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.marked_uncollectible",
    "invoice.voided",
    "invoice.overdue",
}


FAILURE_EVENTS = {"invoice.payment_failed", "invoice.payment_action_required"}


CUSTOMER_EVENTS = {"customer.created", "customer.updated"}


NEW_CARD_EVENTS = {"payment_method.attached", "setup_intent.succeeded", "checkout.session.completed"}


DISPUTE_EVENTS = {"charge.dispute.created", "charge.dispute.closed"}


SUBSCRIPTION_EVENTS = {"customer.subscription.updated", "customer.subscription.deleted"}


class SignatureError(ValueError):
    pass


def billing_event_receive(*, payload: bytes, signature: str) -> BillingEvent | None:
    """Verify and store one Stripe event; None when it was already stored (Stripe retries).

    Raises SignatureError for a bad signature, a wrong secret or a timestamp outside Stripe's
    default tolerance (5 minutes): nothing is stored then.
    """
    try:
        event = stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
        # PostgreSQL's jsonb refuses the NUL character; a customer can type one into a checkout form.
        data = billing_object_cleaned(json.loads(payload))
        event_id, event_type = event.id, event.type
    except (stripe.SignatureVerificationError, ValueError, AttributeError, KeyError) as error:
        raise SignatureError(f"Not a signed Stripe event: {error}") from error
    try:
        with transaction.atomic():
            stored = BillingEvent.objects.create(
                event_id=event_id,
                type=event_type,
                created=dt.datetime.fromtimestamp(data.get("created") or 0, tz=dt.UTC),
                payload=data,
            )
    except IntegrityError:
        return None
    transaction.on_commit(lambda: _enqueue(stored.pk), robust=True)
    return stored


def _enqueue(billing_event_id: int) -> None:
    job = "dunning_site.collections.jobs.billing_event_process"  # by name: jobs sit above this module

    try:
        django_rq.get_queue("default").enqueue(job, billing_event_id, retry=Retry(max=5, interval=[10, 60, 300, 900]))
    except RedisError as error:
        logger.warning(
            "Could not enqueue billing event %s (%s); `manage.py stripe_sync` recovers.", billing_event_id, error
        )


def billing_event_process(*, billing_event_id: int) -> str:
    event = BillingEvent.objects.get(pk=billing_event_id)
    if event.status == BillingEvent.Status.PROCESSED:
        return "already processed"
    obj = event.payload.get("data", {}).get("object", {})
    try:
        with transaction.atomic():
            outcome = _dispatch(event.type, obj)
    except Exception as error:
        BillingEvent.objects.filter(pk=event.pk).update(status=BillingEvent.Status.FAILED, error=repr(error))
        raise
    status = BillingEvent.Status.IGNORED if outcome == "ignored" else BillingEvent.Status.PROCESSED
    BillingEvent.objects.filter(pk=event.pk).update(status=status, processed_at=timezone.now(), error="")
    return outcome


def _dispatch(event_type: str, obj: dict) -> str:
    if event_type in CUSTOMER_EVENTS:
        return stripe_customers.customer_changed(obj)
    if event_type in stripe_customers.CARD_CHANGED_EVENTS:
        return stripe_customers.card_changed(obj)
    if event_type in INVOICE_EVENTS:
        invoice = invoice_sync(invoice_id=obj["id"], fallback=obj)
        if invoice is not None and event_type in FAILURE_EVENTS:
            payment_failed(invoice=invoice, decline=gateway().last_decline(invoice.external_id))
        return "invoice"
    if event_type in NEW_CARD_EVENTS:
        return new_card(obj)
    if event_type in DISPUTE_EVENTS:
        return dispute_news(event_type, obj)
    if event_type in SUBSCRIPTION_EVENTS:
        return subscription_changed(event_type, obj)
    if event_type == "charge.refunded":
        return refunded(obj)
    return "ignored"


def new_card(obj: dict) -> str:
    """A card attached, a SetupIntent succeeded or a setup-mode Checkout completed: make it the
    card invoices are charged to, then retry every open overdue invoice at once (one retry per
    card, although one checkout sends all three events)."""
    customer_id = obj.get("customer")
    customer = Customer.objects.filter(external_id=customer_id).first() if customer_id else None
    if customer is None:
        return "ignored"
    if obj.get("object") == "checkout.session":
        if obj.get("mode") != "setup" or obj.get("status") != "complete":
            return "ignored"
        intent = obj.get("setup_intent")
        intent_id = intent.get("id") if isinstance(intent, dict) else intent
        method = gateway().payment_method_of_setup(intent_id) if intent_id else ""
    else:
        method = obj.get("id") if obj.get("object") == "payment_method" else obj.get("payment_method")
        if isinstance(method, dict):
            method = method.get("id")
    if not method:
        return "ignored"
    if method == customer.default_payment_method:
        return "already known"
    payment_method = obj if obj.get("object") == "payment_method" else {}
    if settings.STRIPE_API_KEY:
        made_default = gateway().payment_method_make_default(customer_id=customer_id, payment_method_id=method)
        payment_method = made_default or payment_method
    customer_card_new(customer=customer, payment_method={**payment_method, "id": method}, reason=CLEARED_BY_NEW_CARD)
    return "new card"


def refunded(obj: dict) -> str:
    """A refund does not reopen a paid Stripe invoice; open cases of the customer note it, so a
    collector sees money went back while dunning goes on."""
    for case in Case.objects.filter(customer__external_id=obj.get("customer"), status__in=Case.ACTIVE_STATUSES):
        case_event_record(
            case,
            "collections.payment.refunded",
            charge=obj.get("id"),
            amount_refunded=obj.get("amount_refunded"),
            currency=(obj.get("currency") or "").upper(),
        )
    return "refund"


def subscription_changed(event_type: str, obj: dict) -> str:
    status = obj.get("status", "")
    cases = Case.objects.filter(customer__external_id=obj.get("customer"), status__in=Case.ACTIVE_STATUSES)
    for case in cases:
        case_event_record(case, "collections.subscription.changed", event=event_type, subscription_status=status)
    return "subscription"
