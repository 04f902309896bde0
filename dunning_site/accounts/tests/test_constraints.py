"""The database refuses bad rows whichever door they come through (not only the forms)."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from dunning_site.accounts.models import Customer, Invoice, Payment
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory

pytestmark = pytest.mark.django_db

ISSUED = dt.date(2026, 1, 1)


def refused(create, constraint: str) -> None:
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        create()


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"total": -100}, "invoice_total_not_negative|invoice_paid_between_zero_and_total"),
        ({"total": 100, "amount_paid": 150}, "invoice_paid_between_zero_and_total"),
        ({"amount_paid": -1}, "invoice_paid_between_zero_and_total"),
        ({"due_on": ISSUED - dt.timedelta(days=1)}, "invoice_due_not_before_issue"),
        ({"currency": "eur"}, "invoice_currency_iso_shape"),
        ({"status": "lost"}, "invoice_status_valid"),
        ({"amount_paid": 60, "amount_written_off": 41}, "invoice_written_off_within_unpaid"),
        ({"amount_written_off": -1}, "invoice_written_off_within_unpaid"),
    ],
)
def test_invoice_constraints(fields, constraint):
    customer = CustomerFactory()
    values = {"customer": customer, "number": "INV-1", "currency": "EUR", "total": 100, "issued_on": ISSUED}
    values |= {"due_on": ISSUED + dt.timedelta(days=14)} | fields
    refused(lambda: Invoice.objects.create(**values), constraint)
    assert not Invoice.objects.exists()


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"phone": "06 12 34 56 78"}, "customer_phone_e164"),
        ({"phone": "+0612"}, "customer_phone_e164"),
        ({"time_zone": "Paris time"}, "customer_time_zone_shape"),
        ({"name": ""}, "customer_name_not_empty"),
    ],
)
def test_customer_constraints(fields, constraint):
    refused(lambda: Customer.objects.create(**({"name": "Ada"} | fields)), constraint)


def test_payment_must_be_positive():
    invoice = InvoiceFactory()
    refused(lambda: Payment.objects.create(invoice=invoice, amount=0, status="succeeded"), "payment_amount_positive")


def test_amount_remaining_is_computed_by_the_database():
    invoice = InvoiceFactory(total=12_345, amount_paid=2_345)
    invoice.refresh_from_db()
    assert invoice.amount_remaining == 10_000


def test_what_is_written_off_is_not_owed():
    invoice = InvoiceFactory(total=12_345, amount_paid=2_345, amount_written_off=4_000)
    invoice.refresh_from_db()
    assert (invoice.amount_remaining, invoice.owed) == (6_000, 6_000)
