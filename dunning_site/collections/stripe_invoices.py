"""An invoice as the billing system has it, applied to the book: re-read from Stripe, each card payment it
collected recorded once (under its Stripe id), and its customer found or created. Used by webhooks, by
the retries (a re-read after a charge) and by stripe_sync."""

import datetime as dt

from django.db import transaction

from dunning_site.accounts.billing import gateway, invoice_card_payments
from dunning_site.accounts.models import Customer, Invoice, Payment
from dunning_site.accounts.services import (
    customer_upsert_from_billing,
    invoice_upsert_from_billing,
    payment_record,
)


def invoice_sync(*, invoice_id: str, fallback: dict | None = None) -> Invoice | None:
    """Re-read the invoice from the billing system and apply its current state."""
    try:
        data = gateway().invoice_fetch(invoice_id)
    except LookupError:
        data = fallback or {}
    if not data:
        return None
    return invoice_apply(data=data)


def invoice_apply(*, data: dict) -> Invoice | None:
    """Apply the billing system's invoice to the book, recording first each card payment it collected
    that the book does not have yet.

    The news of a charge comes by several roads — our retry's own answer, a re-read after its worker
    died or its answer was lost, the invoice.paid webhook — in any order, once or more. All of them come
    here, and a payment is recorded once, under its Stripe id (Payment.external_id is unique)."""
    customer = customer_for_invoice(data)
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().filter(external_id=data["id"]).first()
        if invoice is not None and invoice.status == Invoice.Status.OPEN:
            _record_collected_payments(invoice, data)
        return invoice_upsert_from_billing(data=data, customer=customer)


def _record_collected_payments(invoice: Invoice, data: dict) -> None:
    # Only what Stripe counts as paid beyond what the book already counts is new money: a re-read that
    # did not carry the payments (stripe_sync's listing) may already have raised amount_paid, and the
    # same money must not be added twice.
    new_money = min((data.get("amount_paid") or 0) - invoice.amount_paid, invoice.owed)
    for collected in invoice_card_payments(data):
        if new_money <= 0:
            return
        if Payment.objects.filter(external_id=collected["id"]).exists():
            continue
        amount = min(collected.get("amount_paid") or 0, new_money)
        if amount <= 0:
            continue
        paid_at = (collected.get("status_transitions") or {}).get("paid_at")
        payment_record(
            invoice=invoice,
            amount=amount,
            method=Payment.Method.CARD,
            external_id=collected["id"],
            at=dt.datetime.fromtimestamp(paid_at, tz=dt.UTC) if paid_at else None,
        )
        new_money -= amount


def customer_for_invoice(invoice: dict) -> Customer:
    customer_id = invoice["customer"] if isinstance(invoice["customer"], str) else invoice["customer"]["id"]
    customer = Customer.objects.filter(external_id=customer_id).first()
    if customer is not None:
        return customer
    return customer_upsert_from_billing(
        data={"id": customer_id, "name": invoice.get("customer_name"), "email": invoice.get("customer_email")}
    )
