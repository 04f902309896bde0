"""No Stripe key in production (DEBUG off, PAYMENTS_SANDBOX unset): payments are "not configured", and a
due retry charges nothing, whatever card is on file — the sandbox's test cards included. (The card pages'
side of the same rule is in portal/tests/test_card_update.py.)"""

import datetime as dt

import pytest
import time_machine

from dunning_site.accounts.models import Invoice, Payment
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections import jobs
from dunning_site.collections.ladder import cases_open_overdue
from dunning_site.collections.models import Case, PaymentRetry
from dunning_site.collections.payment_retries import retry_all_open_invoices, retry_budget_left
from dunning_site.collections.tests.factories import standard_policy

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)


@pytest.fixture
def case_with_a_test_card(settings):
    """A customer whose card on file is a sandbox test card (left from a demo, or typed in by someone)."""
    settings.STRIPE_API_KEY = ""
    settings.PAYMENTS_SANDBOX = False
    with time_machine.travel(NOW, tick=False):
        standard_policy()
        customer = CustomerFactory(external_id=None, default_payment_method="pm_card_visa")
        InvoiceFactory(customer=customer, number="INV-OFF", due_on=NOW.date() - dt.timedelta(days=10))
        cases_open_overdue(now=NOW)
        yield Case.objects.get(customer=customer)


def test_without_stripe_or_the_sandbox_a_due_retry_charges_nothing_and_keeps_its_budget(
    case_with_a_test_card, django_capture_on_commit_callbacks
):
    invoice = Invoice.objects.get(number="INV-OFF")
    with django_capture_on_commit_callbacks(execute=True):
        assert retry_all_open_invoices(customer=case_with_a_test_card.customer, reason="A new card", now=NOW) == 1
    budget = retry_budget_left(invoice=invoice, policy=case_with_a_test_card.policy, now=NOW)

    jobs.tick()  # the tick performs due retries: the gateway refuses, nothing is simulated

    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == (Invoice.Status.OPEN, 0)
    assert Payment.objects.count() == 0
    case_with_a_test_card.refresh_from_db()
    assert case_with_a_test_card.status in Case.ACTIVE_STATUSES
    retry = PaymentRetry.objects.get()
    assert retry.status == PaymentRetry.Status.SCHEDULED, "tried again once payments are configured"
    assert retry.scheduled_for > NOW
    assert retry_budget_left(invoice=invoice, policy=case_with_a_test_card.policy, now=NOW) == budget
