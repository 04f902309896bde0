"""What the engine tells Stripe after its commit, here a partial write-off: a credit note at Stripe
(through the local fake, in Stripe's wire format), issued once, and never deducted twice when Stripe's
own view of the invoice comes back."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.test import Client

from dunning_site.accounts.models import CreditNote, Invoice
from dunning_site.accounts.tests.factories import InvoiceFactory, UserFactory
from dunning_site.collections import jobs
from dunning_site.collections.models import Approval, Case
from dunning_site.collections.roles import COLLECTOR, MANAGER
from dunning_site.collections.tests import stripe_fake
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 16, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def staff(role: str, username: str) -> Client:
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def stripe_case(stripe_api) -> Case:
    """Ada's €99.00 Stripe invoice, five days overdue, in dunning."""
    standard_policy()
    InvoiceFactory(
        due_on=NOW.date() - dt.timedelta(days=5),
        total=9_900,
        external_id="in_w1",
        number="NUM-in_w1",
        customer__external_id="cus_w1",
    )
    stripe_api.invoices["in_w1"] = stripe_fake.invoice("in_w1", "cus_w1", amount=9_900)
    tick()
    return Case.objects.get()


def write_off(case: Case, amount: str, django_capture_on_commit_callbacks) -> None:
    staff(COLLECTOR, "grace").post(
        f"/cases/{case.pk}/requests/write-off/",
        {"write_off-amount": amount, "write_off-reason": "Goodwill for the outage"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        staff(MANAGER, "maria").post(f"/approvals/{Approval.objects.get().pk}/decide/", {"decision": "approve"})


def test_a_partial_write_off_of_a_stripe_invoice_is_a_credit_note_at_stripe(
    stripe_case, stripe_api, run_jobs, deliver, django_capture_on_commit_callbacks
):
    write_off(stripe_case, "40", django_capture_on_commit_callbacks)
    run_jobs()
    note = CreditNote.objects.get()
    (issued,) = stripe_api.credit_notes.values()
    assert note.external_id == issued["id"]
    assert (issued["object"], issued["invoice"], issued["amount"], issued["type"], issued["memo"]) == (
        "credit_note",
        "in_w1",
        4_000,
        "pre_payment",
        "Goodwill for the outage",
    )
    assert ("POST", "/v1/credit_notes", {"invoice": "in_w1", "amount": "4000", "memo": "Goodwill for the outage"}) in (
        stripe_api.requests
    )
    assert stripe_api.invoices["in_w1"]["amount_due"] == 5_900
    # Stripe's invoice comes back (its amount_due lowered by the credit note): deducted once, not twice.
    deliver(stripe_fake.event("invoice.updated", stripe_api.invoices["in_w1"], event_id="evt_cn1"))
    invoice = Invoice.objects.get()
    assert (invoice.total, invoice.amount_written_off, invoice.amount_remaining) == (9_900, 4_000, 5_900)
    stripe_case.refresh_from_db()
    assert (stripe_case.status, stripe_case.amount_overdue) == (Case.Status.OPEN, 5_900)
    # Stripe charges the rest: the invoice is settled, and the case closes as written off.
    stripe_api._pay("in_w1")
    deliver(stripe_fake.event("invoice.paid", stripe_api.invoices["in_w1"], event_id="evt_paid"))
    invoice.refresh_from_db()
    stripe_case.refresh_from_db()
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == (Invoice.Status.PAID, 5_900, 0)
    assert stripe_case.status == Case.Status.WRITTEN_OFF


def test_the_credit_note_is_issued_once_however_often_its_job_runs(
    stripe_case, stripe_api, run_jobs, django_capture_on_commit_callbacks
):
    write_off(stripe_case, "40", django_capture_on_commit_callbacks)
    note = CreditNote.objects.get()
    first = jobs.credit_note_issue(note.pk)
    CreditNote.objects.update(external_id=None)  # as if the first answer had been lost
    assert jobs.credit_note_issue(note.pk) == first  # Stripe replays its answer to the same key
    assert jobs.credit_note_issue(note.pk) == first
    assert len(stripe_api.credit_notes) == 1
    assert stripe_api.invoices["in_w1"]["amount_due"] == 5_900


def test_a_write_off_spread_over_invoices_credits_the_oldest_first(
    stripe_api, run_jobs, django_capture_on_commit_callbacks
):
    standard_policy()
    older = InvoiceFactory(number="INV-OLD", due_on=NOW.date() - dt.timedelta(days=8), total=3_000)
    newer = InvoiceFactory(
        number="INV-NEW", customer=older.customer, due_on=NOW.date() - dt.timedelta(days=5), total=7_000
    )
    tick()
    case = Case.objects.get()
    write_off(case, "45", django_capture_on_commit_callbacks)
    run_jobs()
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.amount_written_off, older.amount_remaining, older.status) == (3_000, 0, Invoice.Status.PAID)
    assert (newer.amount_written_off, newer.amount_remaining, newer.status) == (1_500, 5_500, Invoice.Status.OPEN)
    case.refresh_from_db()
    assert (case.status, case.amount_overdue) == (Case.Status.OPEN, 5_500)
    assert stripe_api.requests == []  # invoices Stripe does not hold are not sent there
