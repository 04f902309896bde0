"""The plain values a message template may use for a case (no model instances reach templates)."""

import datetime as dt

from babel.dates import format_date
from django.conf import settings

from dunning_site.accounts.models import Customer, Invoice
from dunning_site.lib.money import format_money


def message_context(*, customer: Customer, currency: str, invoices: list[Invoice], today: dt.date) -> dict:
    locale = (customer.language or "en").replace("-", "_")
    overdue = [invoice for invoice in invoices if invoice.status == Invoice.Status.OPEN]
    total = sum(invoice.total - invoice.amount_paid for invoice in overdue)
    oldest_due = min((invoice.due_on for invoice in overdue), default=today)
    pay_url = next((invoice.hosted_payment_url for invoice in overdue if invoice.hosted_payment_url), "")
    return {
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
                "amount_due": format_money(invoice.total - invoice.amount_paid, currency, customer.language),
                "days_overdue": max((today - invoice.due_on).days, 0),
                "pay_url": invoice.hosted_payment_url,
            }
            for invoice in overdue
        ],
        "pay_url": pay_url or settings.SITE_URL,
        "sender_name": settings.DUNNING_SENDER_NAME,
        "sender_company": settings.DUNNING_SENDER_COMPANY,
    }
