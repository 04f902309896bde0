"""Bad input typed into the admin gets a clear message and writes nothing."""

import datetime as dt
import re

import pytest
import time_machine

from dunning_site.accounts.models import Customer, Invoice, Payment
from dunning_site.accounts.services import PAID_BEFORE_ISSUED, PAID_IN_FUTURE
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.lib.validators import INVALID_PHONE, UNKNOWN_TIME_ZONE

pytestmark = pytest.mark.django_db

INVOICE_ADD = "/admin/accounts/invoice/add/"
CUSTOMER_ADD = "/admin/accounts/customer/add/"


@pytest.fixture
def customer():
    return CustomerFactory()


def invoice_form(customer, **overrides) -> dict:
    return {
        "customer": customer.pk,
        "number": "INV-2026-0001",
        "currency": "EUR",
        "total": "120.50",
        "amount_paid": "0",
        "issued_on": "2026-01-01",
        "due_on": "2026-01-31",
        "status": "open",
        "external_id": "",
        "hosted_payment_url": "",
    } | overrides


def form_errors(response) -> dict:
    assert response.status_code == 200, "the form is shown again, with its errors"
    return response.context["adminform"].form.errors


def test_an_invoice_typed_in_major_units_is_stored_in_minor_units(admin_client, customer):
    response = admin_client.post(INVOICE_ADD, invoice_form(customer))
    assert response.status_code == 302
    assert Invoice.objects.get().total == 12_050


def test_a_yen_invoice_has_no_decimals(admin_client, customer):
    admin_client.post(INVOICE_ADD, invoice_form(customer, currency="jpy", total="15000"))
    assert Invoice.objects.values_list("currency", "total").get() == ("JPY", 15_000)
    errors = form_errors(
        admin_client.post(INVOICE_ADD, invoice_form(customer, number="INV-2", currency="JPY", total="1.5"))
    )
    assert errors["total"] == ["JPY amounts have at most 0 decimal places."]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"total": "-10"}, "total", "Ensure this value is greater than or equal to 0."),
        ({"currency": "XYZ"}, "currency", "“XYZ” is not an ISO 4217 currency code."),
        ({"due_on": "2025-12-01"}, "__all__", "The due date cannot be before the issue date."),
        ({"amount_paid": "500"}, "__all__", "The amount paid must be between zero and the invoice total."),
        ({"total": "12.345"}, "total", "EUR amounts have at most 2 decimal places."),
    ],
)
def test_bad_invoices_are_refused_with_a_clear_message(admin_client, customer, overrides, field, message):
    errors = form_errors(admin_client.post(INVOICE_ADD, invoice_form(customer, **overrides)))
    assert message in errors[field]
    assert not Invoice.objects.exists()


def customer_form(**overrides) -> dict:
    return {
        "name": "Ada Lovelace",
        "company": "Analytical Engines Ltd",
        "email": "ada@engines.example",
        "phone": "",
        "time_zone": "Europe/London",
        "language": "en",
        "segment": "smb",
        "external_id": "",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
    } | overrides


def test_a_phone_number_is_stored_in_e164_however_it_is_typed(admin_client):
    response = admin_client.post(CUSTOMER_ADD, customer_form(phone="+44 20 7946 0958"))
    assert response.status_code == 302
    assert Customer.objects.get().phone == "+442079460958"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone", UNKNOWN_TIME_ZONE % {"value": "Mars/Olympus"}),
        ({"phone": "12345"}, "phone", INVALID_PHONE % {"value": "12345"}),
        ({"phone": "+33 1"}, "phone", INVALID_PHONE % {"value": "+33 1"}),
    ],
)
def test_bad_customers_are_refused_with_a_clear_message(admin_client, overrides, field, message):
    errors = form_errors(admin_client.post(CUSTOMER_ADD, customer_form(**overrides)))
    assert errors[field] == [message]
    assert not Customer.objects.exists()


def test_revoking_portal_links_from_the_customer_list(admin_client):
    customer = CustomerFactory()
    admin_client.post("/admin/accounts/customer/", {"action": "revoke_portal_links", "_selected_action": [customer.pk]})
    customer.refresh_from_db()
    assert customer.portal_link_version == 2


@pytest.mark.parametrize(
    ("day", "time", "problem"),
    [
        ("1900-01-01", "12:00:00", PAID_BEFORE_ISSUED % {"number": "INV-9", "issued_on": "2026-03-01"}),
        ("2026-03-16", "18:00:00", PAID_IN_FUTURE),
        ("9999-12-31", "12:00:00", PAID_IN_FUTURE),
    ],
)
def test_a_manual_payment_dated_before_the_invoice_or_in_the_future_is_refused(
    admin_client, customer, day, time, problem
):
    invoice = InvoiceFactory(
        customer=customer, number="INV-9", total=5_000, issued_on=dt.date(2026, 3, 1), due_on=dt.date(2026, 3, 15)
    )
    form = {"invoice": invoice.pk, "amount": "50.00", "method": "bank_transfer", "status": "succeeded"}
    with time_machine.travel(dt.datetime(2026, 3, 16, 10, 0, tzinfo=dt.UTC), tick=False):
        response = admin_client.post("/admin/accounts/payment/add/", form | {"at_0": day, "at_1": time})
    assert form_errors(response)["at"] == [problem]
    invoice.refresh_from_db()
    assert not Payment.objects.exists() and invoice.amount_paid == 0


PAYMENT_ADD = "/admin/accounts/payment/add/"


def test_the_payment_form_offers_only_money_received_outside_the_billing_system_and_chooses_none(admin_client):
    page = admin_client.get(PAYMENT_ADD).content.decode()
    select = re.search(r'<select name="method".*?</select>', page, re.DOTALL)
    assert select is not None
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select.group(0))
    assert options == [
        ("", " selected", "---------"),
        ("bank_transfer", "", "Bank transfer"),
        ("cheque", "", "Cheque"),
        ("other", "", "Other"),
    ]


@pytest.mark.parametrize(
    ("method", "problem"),
    [
        ("", "This field is required."),
        ("card", "Select a valid choice. card is not one of the available choices."),
    ],
)
def test_a_payment_without_a_method_or_by_card_is_refused_in_the_admin(admin_client, customer, method, problem):
    invoice = InvoiceFactory(customer=customer, total=5_000, issued_on=dt.date(2026, 3, 1), due_on=dt.date(2026, 3, 15))
    form = {"invoice": invoice.pk, "amount": "50.00", "method": method, "status": "succeeded"}
    with time_machine.travel(dt.datetime(2026, 3, 16, 10, 0, tzinfo=dt.UTC), tick=False):
        response = admin_client.post(PAYMENT_ADD, form | {"at_0": "2026-03-16", "at_1": "09:00:00"})
    assert form_errors(response)["method"] == [problem]
    invoice.refresh_from_db()
    assert not Payment.objects.exists() and (invoice.amount_paid, invoice.status) == (0, "open")


@pytest.mark.parametrize(
    ("stripe_key", "external_id"),
    [
        pytest.param("sk_test_configured", None, id="an-invoice-stripe-does-not-hold"),
        pytest.param("", "in_from_an_earlier_account", id="no-stripe-configured"),
    ],
)
def test_a_part_payment_of_an_invoice_stripe_does_not_collect_is_recorded(
    admin_client, customer, settings, stripe_key, external_id
):
    """Where Stripe does not charge the invoice by itself, the book is the only truth: a part payment
    lowers what is owed."""
    settings.STRIPE_API_KEY = stripe_key
    invoice = InvoiceFactory(
        customer=customer,
        total=5_000,
        external_id=external_id,
        issued_on=dt.date(2026, 3, 1),
        due_on=dt.date(2026, 3, 15),
    )
    form = {"invoice": invoice.pk, "amount": "20.00", "method": "other", "status": "succeeded", "reference": "Cash"}
    with time_machine.travel(dt.datetime(2026, 3, 16, 10, 0, tzinfo=dt.UTC), tick=False):
        response = admin_client.post(PAYMENT_ADD, form | {"at_0": "2026-03-16", "at_1": "09:00:00"})
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.status) == (2_000, "open")
    assert list(Payment.objects.values_list("amount", "method", "reference")) == [(2_000, "other", "Cash")]
