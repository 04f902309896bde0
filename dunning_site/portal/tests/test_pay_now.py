"""Pay now, from the portal, with the card on file (the sandbox gateway: Stripe's test card names), and a
status page that tells the truth: paid, being charged, or declined with what to do next."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from dunning_site.accounts.models import Invoice, Payment
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections import customer_links
from dunning_site.collections.case_core import case_open, case_pause
from dunning_site.collections.models import Case, CaseEvent, Dispute, PaymentRetry
from dunning_site.collections.tests.factories import standard_policy

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def sandbox(settings):
    settings.STRIPE_API_KEY, settings.PAYMENTS_SANDBOX = "", True


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def customer_with(card: str):
    customer = CustomerFactory(default_payment_method=card, card_brand="visa", card_last4="4242")
    invoices = [InvoiceFactory(customer=customer, total=10_000, due_on=dt.date(2026, 3, 1)) for _ in range(2)]
    case = case_open(customer=customer, currency="EUR", policy=standard_policy(), invoices=invoices, now=NOW)
    return customer, case


def home(client, customer) -> str:
    return client.get(reverse("portal:home", args=[customer_links.portal_token(customer)])).content.decode()


@pytest.fixture
def pay(client, django_capture_on_commit_callbacks):
    """POST "pay now", with what the request's commit enqueues (the retries job) enqueued."""

    def post(customer):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("portal:pay", args=[customer_links.portal_token(customer)]))

    return post


def test_paying_now_charges_each_open_invoice_once_and_the_page_says_paid(client, run_jobs, pay):
    customer, case = customer_with("pm_card_visa")
    assert "Pay €200.00 now with Visa •••• 4242" in home(client, customer)

    response = pay(customer)

    assert response.status_code == 302
    status = response["Location"]
    assert "Being charged" in client.get(status).content.decode(), "before a worker has charged it"
    assert 'http-equiv="refresh"' in client.get(status).content.decode()
    run_jobs()
    page = client.get(status).content.decode()
    assert page.count("Paid. Thank you.") == 2 and 'http-equiv="refresh"' not in page
    assert Payment.objects.filter(status="succeeded", method="card").count() == 2
    assert set(Invoice.objects.values_list("status", flat=True)) == {"paid"}
    case.refresh_from_db()
    assert case.status == Case.Status.RESOLVED
    assert CaseEvent.objects.filter(case=case, type="collections.payment.customer_pay_now").count() == 2
    pay(customer)
    run_jobs()
    assert Payment.objects.filter(status="succeeded").count() == 2, "nothing left to charge: no second charge"


@pytest.mark.parametrize(
    ("card", "advice"),
    [
        ("pm_card_chargeDeclinedStolenCard", "This card cannot be used again."),
        ("pm_card_chargeDeclinedInsufficientFunds", "Nothing was taken. You can try again later"),
    ],
)
def test_a_declined_card_is_told_with_what_to_do_next(client, run_jobs, pay, card, advice):
    customer, _ = customer_with(card)
    status = pay(customer)["Location"]
    run_jobs()
    page = client.get(status).content.decode()
    assert page.count("Your bank declined the payment.") == 2 and advice in page
    assert "Paid" not in page
    assert Payment.objects.filter(status="succeeded").count() == 0
    assert Payment.objects.filter(status="failed").count() == 2


def test_a_promise_does_not_stop_a_payment_the_customer_asks_for_but_a_dispute_does(client, run_jobs, pay):
    promised, case = customer_with("pm_card_visa")
    case_pause(case=case, until=NOW + dt.timedelta(days=5), reason="Promise to pay €200.00 by 2026-03-14")
    pay(promised)
    run_jobs()
    assert Payment.objects.filter(invoice__customer=promised, status="succeeded").count() == 2

    disputing, _ = customer_with("pm_card_visa")
    Dispute.objects.create(customer=disputing, external_id="dp_1", opened_at=NOW)
    assert "now with Visa" not in home(client, disputing)
    assert pay(disputing).status_code == 302
    run_jobs()
    assert PaymentRetry.objects.filter(invoice__customer=disputing).count() == 0
    assert Payment.objects.filter(invoice__customer=disputing).count() == 0


def test_without_a_card_on_file_or_with_payments_not_configured_nothing_is_offered(client, settings, pay):
    without_card, _ = customer_with("")
    assert "now with" not in home(client, without_card)
    settings.PAYMENTS_SANDBOX = False
    with_card, _ = customer_with("pm_card_visa")
    assert "now with" not in home(client, with_card)
    assert pay(with_card).status_code == 302
    assert PaymentRetry.objects.count() == 0


def test_the_status_page_shows_only_the_customers_own_charges(client, pay):
    customer, _ = customer_with("pm_card_visa")
    other, _ = customer_with("pm_card_visa")
    status = pay(other)["Location"]
    ids = status.split("?r=")[1]
    page = client.get(reverse("portal:pay_status", args=[customer_links.portal_token(customer)]) + f"?r={ids}")
    assert "INV-" not in page.content.decode() and "There was nothing to charge." in page.content.decode()
