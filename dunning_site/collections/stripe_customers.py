"""What Stripe tells of a customer — where they live, their language, their phone, the card on file —
learned from customer.* and payment_method.* events (and by `stripe_sync`, through the same service).

The card on file matters beyond charging: its expiry is what pre-dunning warns about, and its
billing address and issuing country are hints of the customer's time zone."""

import logging

import stripe
from django.conf import settings

from dunning_site.accounts.billing import gateway
from dunning_site.accounts.models import Customer
from dunning_site.accounts.services import customer_card_learn, customer_upsert_from_billing

logger = logging.getLogger(__name__)

CARD_CHANGED_EVENTS = {"payment_method.updated", "payment_method.automatically_updated"}


def customer_changed(obj: dict) -> str:
    """customer.created / customer.updated. Stripe sends events in any order, so the customer is re-read
    from Stripe (as invoices are) and what it says now is applied: an older event arriving late never
    brings back an old address or zone. The default card comes with it, to learn its expiry, country
    and address. Without Stripe (or for a customer Stripe no longer has) the event's object is used."""
    data = obj
    if settings.STRIPE_API_KEY and obj.get("id"):
        try:
            data = gateway().customer_fetch(obj["id"])
        except LookupError:
            data = obj
    card = None
    method = (data.get("invoice_settings") or {}).get("default_payment_method")
    if isinstance(method, dict):
        card = method
    elif isinstance(method, str) and method and settings.STRIPE_API_KEY:
        try:
            card = gateway().payment_method_fetch(method)
        except stripe.StripeError as error:
            # The customer's own fields are still worth having; the card comes with the next event or sync.
            logger.warning("Could not read payment method %s of %s (%s)", method, data.get("id"), error)
    customer_upsert_from_billing(data=data, card=card or None)
    return "customer"


def card_changed(obj: dict) -> str:
    """payment_method.updated / .automatically_updated (the card network sent a new expiry)."""
    customer_id = obj.get("customer")
    customer = Customer.objects.filter(external_id=customer_id).first() if customer_id else None
    if customer is None:
        return "ignored"
    return "card" if card_learn(customer=customer, payment_method=obj) else "ignored"


def card_learn(*, customer: Customer, payment_method: dict) -> bool:
    """The card on file (a new one, or one the network updated): its expiry for pre-dunning, its
    address and country for the time zone."""
    return customer_card_learn(customer=customer, payment_method=payment_method)
