"""Taking a new card from the customer who opened their card-update link: a fresh billing-system
session each time the link is opened, or, without Stripe, the sandbox's test cards.

The link itself (its signature, lifetime, revocation and path) is collections.customer_links: the
messages that carry it are written below this app.
"""

import datetime as dt
import logging

import stripe
from django.conf import settings
from django.db import transaction
from django.db.models import Min, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy, gettext_noop

from dunning_site.accounts.billing import PaymentsMode, SandboxGateway, gateway, payments_mode
from dunning_site.accounts.models import Customer, Invoice
from dunning_site.collections.models import Case
from dunning_site.collections.payment_retries import customer_card_new

logger = logging.getLogger(__name__)

# Stripe lets a Checkout session live up to 24 hours: a customer who opened the link on its last
# day still lands on the thank-you page, not on "this link has expired", when they finish.
CHECKOUT_SESSION_LIFETIME = dt.timedelta(hours=24)

# Why each of the sandbox's declining cards declines, in the words of the page's language.
SANDBOX_DECLINE_REASONS = {
    "insufficient_funds": gettext_lazy("insufficient funds"),
    "stolen_card": gettext_lazy("stolen card"),
    "lost_card": gettext_lazy("lost card"),
    "expired_card": gettext_lazy("expired card"),
    "processing_error": gettext_lazy("processing error"),
    "authentication_required": gettext_lazy("authentication required"),
    "generic_decline": gettext_lazy("declined without a reason"),
}
# The sandbox's test cards, named like Stripe's test payment methods (SandboxGateway decides by them).
SANDBOX_CARDS = {
    "pm_card_visa": gettext_lazy("Visa ending 4242 — payments succeed"),
    **{
        method: format_lazy(
            gettext_lazy("Declines: {reason}"),
            reason=SANDBOX_DECLINE_REASONS.get(decline_code, decline_code.replace("_", " ")),
        )
        for method, (decline_code, _advice) in SandboxGateway.DECLINES.items()
    },
}
# Marked for translation, kept a plain string: the page translates it as it renders it.
CHOOSE_A_CARD = gettext_noop("Choose one of the test cards.")
# A sandbox card is "valid" this long, so pre-dunning does not warn about the card just chosen.
SANDBOX_CARD_LIFETIME_YEARS = 3


def card_update_done_url(token: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("portal:card_done", args=[token])


def gateway_is_sandbox() -> bool:
    """Decided by configuration, never by a query parameter: with a Stripe key, or in production
    without PAYMENTS_SANDBOX, the sandbox's pages do not exist, whatever a URL says."""
    return payments_mode() is PaymentsMode.SANDBOX


SANDBOX_OFF = "The sandbox is off: a Stripe key is configured, or PAYMENTS_SANDBOX is not set."


class CardUpdateUnavailable(Exception):
    """No online way to take a new card for this customer: none at all (no billing-system id), or
    not right now (`temporary`: the billing system failed, trying again later may work)."""

    def __init__(self, reason: str, *, temporary: bool) -> None:
        super().__init__(reason)
        self.temporary = temporary


def card_update_possible(*, customer: Customer) -> None:
    """Raise CardUpdateUnavailable when this customer cannot give a card online at all: the card page
    says so instead of opening a session, and the page the customer comes back to after it says so
    too, whatever its URL claims (no card can have been saved)."""
    mode = payments_mode()
    if mode is PaymentsMode.NOT_CONFIGURED:
        raise CardUpdateUnavailable("Payments are not configured", temporary=False)
    if mode is PaymentsMode.STRIPE and not customer.external_id:
        raise CardUpdateUnavailable("The customer has no billing-system id", temporary=False)


def card_update_session_url(*, customer: Customer, token: str) -> str:
    """Where to send the customer to give a new card: a fresh session each time the link is
    opened (a Checkout session dies within a day, the link lives two weeks)."""
    card_update_possible(customer=customer)
    try:
        return gateway().card_update_url(
            customer_id=customer.external_id or "",
            return_url=card_update_done_url(token),
            currency=card_currency(customer=customer),
        )
    except stripe.StripeError as error:
        logger.exception("Could not create a card-update session for customer %s", customer.pk)
        raise CardUpdateUnavailable(str(error), temporary=True) from error


def amounts_due(*, customer: Customer) -> list[tuple[str, int, dt.date]]:
    """What a new card is charged for at once (the open invoices of the customer's active cases, as
    customer_card_new retries them): per currency, the amount left to pay and the day the oldest of
    those invoices fell due."""
    active = Case.objects.filter(customer=customer, status__in=Case.ACTIVE_STATUSES).values("invoices")
    due = (
        Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN, amount_remaining__gt=0, pk__in=active)
        .values("currency")
        .annotate(left=Sum("amount_remaining"), since=Min("due_on"))
        .order_by("since", "currency")
    )
    return [(row["currency"], row["left"], row["since"]) for row in due]


def card_currency(*, customer: Customer) -> str:
    """The currency the new card will be charged in: that of the customer's oldest open invoice, else
    of their latest one ("" with none: the gateway's default)."""
    invoices = Invoice.objects.filter(customer=customer)
    oldest_open = invoices.filter(status=Invoice.Status.OPEN).order_by("due_on", "pk").first()
    latest = oldest_open or invoices.order_by("-issued_on", "-pk").first()
    return latest.currency if latest else ""


@transaction.atomic
def sandbox_card_change(*, customer: Customer, payment_method: str, now: dt.datetime | None = None) -> int:
    """The sandbox's stand-in for Checkout: the customer "gives" a test card, and every open
    overdue invoice is retried at once, as a real new card would through Stripe's webhook.
    Returns the number of retries scheduled."""
    if not gateway_is_sandbox():
        raise PermissionError(SANDBOX_OFF)
    if payment_method not in SANDBOX_CARDS:
        raise ValueError(f"Not a sandbox test card: {payment_method}")
    now = now or timezone.now()
    card = {"brand": "visa", "exp_month": now.month, "exp_year": now.year + SANDBOX_CARD_LIFETIME_YEARS}
    return customer_card_new(
        customer=customer,
        payment_method={"id": payment_method, "type": "card", "card": card},
        reason=f"The customer chose a new card in the portal (sandbox: {payment_method})",
        now=now,
    )
