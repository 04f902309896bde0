import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from dunning_site.accounts.models import Invoice, Payment
from dunning_site.accounts.services import OVERPAYMENT, invoice_create, payment_record
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.lib.money import format_money, to_minor_units

pytestmark = pytest.mark.django_db


def test_payment_in_full_marks_the_invoice_paid():
    invoice = InvoiceFactory(total=5_000)
    payment_record(invoice=invoice, amount=2_000)
    payment_record(invoice=invoice, amount=3_000, method=Payment.Method.CHEQUE)
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.amount_remaining, invoice.status) == (5_000, 0, Invoice.Status.PAID)


def test_an_overpayment_is_refused_and_nothing_is_written():
    invoice = InvoiceFactory(total=5_000)
    with pytest.raises(ValidationError) as error:
        payment_record(invoice=invoice, amount=5_001)
    assert error.value.message_dict["amount"] == [
        OVERPAYMENT % {"amount": "€50.01", "remaining": "€50.00", "number": invoice.number}
    ]
    assert not Payment.objects.exists()


def test_a_failed_payment_is_recorded_with_its_decline_and_changes_nothing_owed():
    invoice = InvoiceFactory(total=5_000)
    payment_record(invoice=invoice, amount=5_000, status=Payment.Status.FAILED, decline_code="insufficient_funds")
    invoice.refresh_from_db()
    assert invoice.amount_paid == 0
    assert Payment.objects.get().decline_code == "insufficient_funds"


@pytest.mark.parametrize(
    ("currency", "typed", "minor", "shown"),
    [("JPY", "1200", 1200, "¥1,200"), ("KWD", "12.345", 12_345, "KWD12.345"), ("EUR", "12.3", 1_230, "€12.30")],
)
def test_zero_and_three_decimal_currencies(currency, typed, minor, shown):
    assert to_minor_units(typed, currency) == minor
    invoice = invoice_create(
        customer=CustomerFactory(),
        number=f"INV-{currency}",
        currency=currency,
        total=minor,
        issued_on=dt.date(2026, 1, 1),
        due_on=dt.date(2026, 1, 31),
    )
    assert format_money(invoice.total, currency) == shown
    with pytest.raises(ValueError, match="decimal places"):
        to_minor_units("1.2345", currency)


def test_an_unknown_currency_is_refused_by_the_service():
    with pytest.raises(ValidationError) as error:
        invoice_create(
            customer=CustomerFactory(),
            number="INV-X",
            currency="XYZ",
            total=100,
            issued_on=dt.date(2026, 1, 1),
            due_on=dt.date(2026, 1, 31),
        )
    assert "ISO 4217" in error.value.message_dict["currency"][0]
    assert not Invoice.objects.exists()


def test_currencies_where_cldr_and_stripe_disagree_keep_their_minor_unit():
    # Stripe sends 1,200,000 for 12,000.00 RSD; CLDR alone would read it as 1,200,000 RSD.
    assert to_minor_units("12000.50", "RSD") == 1_200_050
    assert format_money(1_200_050, "RSD", "en") == "RSD12,000.50"
