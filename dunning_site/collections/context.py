"""The plain values a message template may use for a case (no model instances reach templates).

The keys are exactly notifications.rendering.CONTEXT_VARIABLES; templates are validated against
that list when saved.
"""

import datetime as dt

from babel.dates import format_date
from django.conf import settings

from dunning_site.accounts.models import Customer, Invoice, User
from dunning_site.collections.customer_links import card_update_url, portal_url
from dunning_site.lib.money import format_money
from dunning_site.notifications.unsubscribe import unsubscribe_url

# All that a discreet SMS keeps (the policy's contact rules ask for it): a phone number may have
# changed hands, so the message must name no one, say no amount, and lead to no page that does.
# Only our own details are left, so the customer knows who writes and whom to call. Left out, as
# empty values: the customer's names and amounts, and every link of theirs — the pay link is the
# billing system's hosted invoice page (their name, address, every amount), the card-update link
# opens a checkout filled in with their email address (and lets whoever holds it change their
# card), a plan offer shows what they owe, and the unsubscribe link acts on their account.
DISCREET_SMS_KEYS = {"sender_company", "sender_name", "sender_phone", "sender_email", "sender_address"}

# The call to action for each reason a charge failed; anything else (no funds, unknown, none) asks to pay.
ACTIONS = {"new_card": "update_card", "authentication": "confirm_payment"}


def message_context(
    *,
    customer: Customer,
    currency: str,
    invoices: list[Invoice],
    today: dt.date,
    collector: User | None = None,
    discreet: bool = False,
    payment_problem: str = "",
) -> dict:
    """`payment_problem` is why the case's last charge failed (Case.PaymentProblem): it chooses the call
    to action every message carries — a new card, the bank's confirmation, or simply paying."""
    locale = (customer.language or "en").replace("-", "_")
    overdue = [invoice for invoice in invoices if invoice.status == Invoice.Status.OPEN]
    total = sum(invoice.owed for invoice in overdue)
    oldest_due = min((invoice.due_on for invoice in overdue), default=today)
    pay_url = next((invoice.hosted_payment_url for invoice in overdue if invoice.hosted_payment_url), "")
    collector_name = (
        (collector.get_full_name() or collector.get_username()) if collector else settings.DUNNING_SENDER_NAME
    )
    context = {
        "customer_name": customer.name,
        "company_name": customer.company or customer.name,
        "currency": currency,
        "total_overdue": format_money(total, currency, customer.language),
        "days_overdue": max((today - oldest_due).days, 0),
        "invoice_count": len(overdue),
        "invoices": [
            {
                "number": invoice.number,
                "issued_on": format_date(invoice.issued_on, format="medium", locale=locale),
                "due_on": format_date(invoice.due_on, format="medium", locale=locale),
                "total": format_money(invoice.total, currency, customer.language),
                "amount_due": format_money(invoice.owed, currency, customer.language),
                "days_overdue": max((today - invoice.due_on).days, 0),
                "pay_url": invoice.hosted_payment_url,
            }
            for invoice in overdue
        ],
        "pay_url": pay_url or settings.SITE_URL,
        # A signed, expiring, revocable link into the portal, which opens a fresh billing-system
        # session each time (a session URL put in a message would be dead within a day).
        "card_update_url": card_update_url(customer) if customer.pk else pay_url or settings.SITE_URL,
        "card_expires_on": (
            format_date(customer.card_expires_on, format="long", locale=locale) if customer.card_expires_on else ""
        ),
        "payment_problem": payment_problem,
        "portal_url": portal_url(customer) if customer.pk else settings.SITE_URL,
        # Until instalments are charged, the customer's own page (pay, promise a day, write to us) stands
        # in for a plan page, which would promise what nothing carries out yet.
        "plan_offer_url": portal_url(customer) if customer.pk else settings.SITE_URL,
        "unsubscribe_url": unsubscribe_url(customer_id=customer.pk),
        "collector_name": collector_name,
        "collector_signature": (collector.signature if collector and collector.signature else collector_name),
        "sender_name": settings.DUNNING_SENDER_NAME,
        "sender_company": settings.DUNNING_SENDER_COMPANY,
        "sender_address": settings.DUNNING_SENDER_ADDRESS,
        "sender_email": settings.DEFAULT_FROM_EMAIL,
        "sender_phone": settings.DUNNING_SENDER_PHONE,
    }
    context["confirm_payment_url"] = pay_url or settings.SITE_URL
    context["action"] = ACTIONS.get(payment_problem, "pay")
    context["action_url"] = {
        "update_card": context["card_update_url"],
        "confirm_payment": context["confirm_payment_url"],
    }.get(context["action"], context["pay_url"])
    if discreet:
        context = {key: (value if key in DISCREET_SMS_KEYS else "") for key, value in context.items()}
        context["invoices"] = []
    return context
