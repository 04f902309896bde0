import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.core.exceptions import ValidationError

from dunning_site.accounts.models import Invoice, Payment
from dunning_site.accounts.services import (
    CREDIT_ABOVE_OWED,
    CREDIT_NOT_POSITIVE,
    INVOICE_NOT_OPEN,
    OVERPAYMENT,
    PAID_BEFORE_ISSUED,
    PAID_IN_FUTURE,
    invoice_create,
    invoices_credit,
    payment_record,
)
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.lib.money import (
    AMOUNT_TOO_LARGE,
    NOT_A_NUMBER,
    TOO_MANY_DECIMALS,
    format_money,
    from_minor_units,
    to_minor_units,
)

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


LARGEST_MINOR_AMOUNT = 2**63 - 1  # PostgreSQL's bigint, where amounts are stored


@pytest.mark.parametrize(
    ("typed", "currency", "error"),
    [
        ("1e999999", "EUR", AMOUNT_TOO_LARGE % {"currency": "EUR", "largest": "€92,233,720,368,547,758.07"}),
        ("-1e999999", "EUR", AMOUNT_TOO_LARGE % {"currency": "EUR", "largest": "€92,233,720,368,547,758.07"}),
        ("1e250", "JPY", AMOUNT_TOO_LARGE % {"currency": "JPY", "largest": "¥9,223,372,036,854,775,807"}),
        (
            "92233720368547758.08",
            "EUR",
            AMOUNT_TOO_LARGE % {"currency": "EUR", "largest": "€92,233,720,368,547,758.07"},
        ),
        (
            "123456789012345678901234567890",
            "KWD",
            AMOUNT_TOO_LARGE % {"currency": "KWD", "largest": "KWD9,223,372,036,854,775.807"},
        ),
        ("1e-999999", "EUR", TOO_MANY_DECIMALS % {"currency": "EUR", "decimals": 2}),
        ("1.00000000000000000000000000001", "EUR", TOO_MANY_DECIMALS % {"currency": "EUR", "decimals": 2}),
        ("Infinity", "EUR", NOT_A_NUMBER),
        ("NaN", "EUR", NOT_A_NUMBER),
        ("1e", "EUR", NOT_A_NUMBER),
    ],
)
def test_an_amount_that_does_not_fit_is_refused_with_a_clear_message(typed, currency, error):
    with pytest.raises(ValueError) as refused:
        to_minor_units(typed, currency)
    assert str(refused.value) == error


def test_the_largest_amount_a_bigint_holds_is_taken_exactly_and_shown():
    assert to_minor_units("92233720368547758.07", "EUR") == LARGEST_MINOR_AMOUNT
    assert to_minor_units("-92233720368547758.07", "EUR") == -LARGEST_MINOR_AMOUNT
    assert to_minor_units("9223372036854775807", "JPY") == LARGEST_MINOR_AMOUNT
    assert to_minor_units("0E+999999", "EUR") == 0
    assert to_minor_units("12.3000000000000000000000000000000000", "EUR") == 1_230
    assert format_money(LARGEST_MINOR_AMOUNT, "EUR") == "€92,233,720,368,547,758.07"
    # Sums of many amounts (a dashboard total) may pass a bigint; they are still shown exactly.
    assert from_minor_units(10**40 + 1, "EUR") == Decimal("100000000000000000000000000000000000000.01")
    assert format_money(10**40 + 1, "JPY") == "¥10,000,000,000,000,000,000,000,000,000,000,000,000,001"


# A Monday morning; the invoice was issued on 1 March 2026.
PAYMENT_NOW = dt.datetime(2026, 3, 16, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("at", "status", "problem"),
    [
        (dt.datetime(1900, 1, 1, 12, tzinfo=dt.UTC), Payment.Status.SUCCEEDED, PAID_BEFORE_ISSUED),
        (dt.datetime(1900, 1, 1, 12, tzinfo=dt.UTC), Payment.Status.FAILED, PAID_BEFORE_ISSUED),
        # 1 March began at 10:00 UTC on 28 February in Kiritimati (UTC+14), the first place on earth.
        (dt.datetime(2026, 2, 28, 9, 59, tzinfo=dt.UTC), Payment.Status.SUCCEEDED, PAID_BEFORE_ISSUED),
        (PAYMENT_NOW + dt.timedelta(minutes=6), Payment.Status.SUCCEEDED, PAID_IN_FUTURE),
        (dt.datetime(9999, 12, 31, tzinfo=dt.UTC), Payment.Status.FAILED, PAID_IN_FUTURE),
    ],
)
def test_a_payment_dated_before_its_invoice_was_issued_or_in_the_future_is_refused(at, status, problem):
    invoice = InvoiceFactory(number="INV-7", total=5_000, issued_on=dt.date(2026, 3, 1), due_on=dt.date(2026, 3, 15))
    with time_machine.travel(PAYMENT_NOW, tick=False), pytest.raises(ValidationError) as error:
        payment_record(invoice=invoice, amount=5_000, status=status, at=at)
    assert error.value.message_dict == {"at": [problem % {"number": "INV-7", "issued_on": "2026-03-01"}]}
    invoice.refresh_from_db()
    assert not Payment.objects.exists() and (invoice.amount_paid, invoice.status) == (0, Invoice.Status.OPEN)


@pytest.mark.parametrize(
    "at",
    [
        dt.datetime(2026, 2, 28, 10, 0, tzinfo=dt.UTC),  # the issue day, in Kiritimati
        PAYMENT_NOW + dt.timedelta(minutes=5),  # a billing system's clock a little ahead of ours
        None,  # now
    ],
)
def test_a_payment_between_the_issue_day_and_now_is_recorded(at):
    invoice = InvoiceFactory(total=5_000, issued_on=dt.date(2026, 3, 1), due_on=dt.date(2026, 3, 15))
    with time_machine.travel(PAYMENT_NOW, tick=False):
        payment = payment_record(invoice=invoice, amount=5_000, at=at)
    assert payment.at == (at or PAYMENT_NOW)


# ---------------------------------------------------------------------------------------------
# Credit notes: what is written off is no longer owed


def test_a_credit_note_lowers_what_the_invoice_shows_as_owed_and_what_can_be_paid():
    invoice = InvoiceFactory(total=10_000)
    (note,) = invoices_credit(credits=[(invoice, 2_500)], reason="Goodwill")
    invoice.refresh_from_db()
    assert (note.amount, invoice.amount_written_off, invoice.amount_remaining, invoice.remaining_display) == (
        2_500,
        2_500,
        7_500,
        "€75.00",
    )
    with pytest.raises(ValidationError) as error:
        payment_record(invoice=invoice, amount=7_501)
    assert error.value.message_dict["amount"] == [
        OVERPAYMENT % {"amount": "€75.01", "remaining": "€75.00", "number": invoice.number}
    ]
    payment_record(invoice=invoice, amount=7_500)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_remaining) == (Invoice.Status.PAID, 0)


def test_a_credit_note_covering_what_is_left_settles_the_invoice():
    invoice = InvoiceFactory(total=10_000, amount_paid=4_000)
    invoices_credit(credits=[(invoice, 6_000)], reason="The rest, forgiven")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_remaining) == (Invoice.Status.PAID, 0)


@pytest.mark.parametrize(
    ("amount", "status", "message"),
    [
        (0, "open", CREDIT_NOT_POSITIVE),
        (6_001, "open", CREDIT_ABOVE_OWED % {"amount": "€60.01", "remaining": "€60.00", "number": "INV-C"}),
        (100, "void", INVOICE_NOT_OPEN % {"number": "INV-C", "status": "void"}),
    ],
)
def test_a_credit_note_is_refused_beyond_what_is_owed_and_nothing_is_written(amount, status, message):
    invoice = InvoiceFactory(number="INV-C", total=10_000, amount_paid=4_000, status=status)
    with pytest.raises(ValidationError) as error:
        invoices_credit(credits=[(invoice, amount)], reason="x")
    assert message in error.value.messages
    invoice.refresh_from_db()
    assert (invoice.amount_written_off, invoice.credit_notes.count()) == (0, 0)
