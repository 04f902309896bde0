"""`manage.py stripe_sync` against the local fake Stripe: backfill across pages, idempotence, resume."""

import io
import json
import time

import django_rq
import pytest
from django.core.management import CommandError, call_command
from django.forms.models import model_to_dict

from dunning_site.accounts.models import Customer, Invoice
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.management.commands.stripe_sync import CHECKPOINT_KEY, NO_KEY
from dunning_site.collections.models import Case, CaseEvent
from dunning_site.collections.tests import stripe_fake
from dunning_site.collections.tests.factories import standard_policy

pytestmark = pytest.mark.django_db

DAY = 86_400
# Stripe's amounts are in the currency's minor unit: cents, but whole yen and thousandths of a dinar.
AMOUNTS = [("usd", 4_900), ("eur", 12_050), ("jpy", 4_900), ("kwd", 12_345)]


def book(fake: stripe_fake.FakeStripe, *, customers: int = 250, invoices: int = 230) -> None:
    """`customers` customers and `invoices` open invoices, one in ten of them overdue; the last
    invoice belongs to a customer the customer list does not have. A paid invoice and a draft come
    first: the sync must skip them."""
    now = int(time.time())
    for number in range(customers):
        customer_id = f"cus_{number:04d}"
        customer = stripe_fake.resource("customer", id=customer_id, email=f"customer{number}@example.com")
        fake.customers[customer_id] = customer | {"name": f"Customer {number}"}  # `name` is resource()'s own
    fake.invoices["in_paid"] = stripe_fake.invoice("in_paid", "cus_0000", amount=100, status="paid")
    fake.invoices["in_draft"] = stripe_fake.invoice("in_draft", "cus_0000", amount=100, status="draft")
    for number in range(invoices):
        currency, amount = AMOUNTS[number % len(AMOUNTS)]
        overdue = number % 10 == 0
        last = number == invoices - 1
        fake.invoices[f"in_{number:04d}"] = stripe_fake.invoice(
            f"in_{number:04d}",
            "cus_unlisted" if last else f"cus_{number % customers:04d}",
            amount=amount + number,
            currency=currency,
            created=now - 40 * DAY,
            due_date=now - 30 * DAY if overdue else now + 10 * DAY,
            customer_name="Unlisted Ltd" if last else None,
            customer_email="ap@unlisted.example" if last else None,
        )


def sync(*args: str) -> str:
    out = io.StringIO()
    call_command("stripe_sync", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def lists(fake: stripe_fake.FakeStripe, path: str) -> list[dict]:
    """The parameters of each request the fake received for one list."""
    return [params for method, path_, params in fake.requests if (method, path_) == ("GET", path)]


def checkpoint() -> dict | None:
    raw = django_rq.get_connection().get(CHECKPOINT_KEY)
    return json.loads(raw) if raw else None


def book_state() -> dict:
    """Every row a sync may touch, minus `updated_at` (bookkeeping, not a value)."""

    def rows(queryset) -> list[dict]:
        return [model_to_dict(row, exclude=["updated_at"]) for row in queryset.order_by("pk")]

    return {
        "customers": rows(Customer.objects.all()),
        "invoices": rows(Invoice.objects.all()),
        "cases": rows(Case.objects.all()),
        "events": CaseEvent.objects.count(),
    }


def test_it_syncs_every_customer_and_open_invoice_across_pages(stripe_api):
    standard_policy()
    book(stripe_api)
    out = sync()

    assert Customer.objects.count() == 251  # the 250 listed, and the one only an invoice names
    assert Customer.objects.get(external_id="cus_0007").email == "customer7@example.com"
    assert Customer.objects.get(external_id="cus_unlisted").name == "Unlisted Ltd"
    stored = {invoice.external_id: invoice for invoice in Invoice.objects.select_related("customer")}
    open_in_stripe = {id_: obj for id_, obj in stripe_api.invoices.items() if obj["status"] == "open"}
    assert stored.keys() == open_in_stripe.keys()
    for id_, obj in open_in_stripe.items():
        invoice = stored[id_]
        assert (invoice.total, invoice.currency, invoice.status) == (obj["amount_due"], obj["currency"].upper(), "open")
        assert invoice.customer.external_id == obj["customer"]
    yen = stored["in_0002"]
    assert (yen.total, yen.currency, yen.total_display) == (4_902, "JPY", "¥4,902")  # yen, not hundredths
    assert (stored["in_0003"].total, stored["in_0003"].currency) == (12_348, "KWD")

    # Three pages each, every next page after the last object of the previous one.
    assert [page.get("starting_after") for page in lists(stripe_api, "/v1/customers")] == [None, "cus_0099", "cus_0199"]
    assert [page.get("starting_after") for page in lists(stripe_api, "/v1/invoices")] == [None, "in_0099", "in_0199"]
    assert {page["limit"] for page in lists(stripe_api, "/v1/invoices")} == {"100"}

    assert "  customers: 100 so far (last cus_0099)" in out
    assert "  invoices: 200 so far (last in_0199)" in out
    assert "Customers: 250 synced: 250 created, 0 updated, 0 unchanged." in out
    assert "Invoices: 230 synced: 230 created, 0 updated, 0 unchanged." in out
    # One in ten invoices is overdue, each for a different customer: one case each.
    assert "Opened 23 cases for overdue invoices." in out
    assert Case.objects.count() == 23
    assert checkpoint() is None


def test_a_second_run_changes_nothing(stripe_api):
    standard_policy()
    book(stripe_api, customers=120, invoices=110)  # still two pages of each
    sync()
    before = book_state()
    assert len(before["cases"]) == 11

    out = sync()

    assert book_state() == before
    assert "Customers: 120 synced: 0 created, 0 updated, 120 unchanged." in out
    assert "Invoices: 110 synced: 0 created, 0 updated, 110 unchanged." in out
    assert "Opened 0 cases for overdue invoices." in out


def test_a_later_run_applies_what_changed_in_stripe(stripe_api):
    book(stripe_api, customers=3, invoices=3)
    sync()
    stripe_api.customers["cus_0001"]["email"] = "new-address@example.com"
    paid_in_part = stripe_api.invoices["in_0001"]
    paid_in_part.update(amount_paid=1_000, amount_remaining=paid_in_part["amount_due"] - 1_000)

    out = sync()

    assert "Customers: 3 synced: 0 created, 1 updated, 2 unchanged." in out
    assert "Invoices: 3 synced: 0 created, 1 updated, 2 unchanged." in out
    assert Customer.objects.get(external_id="cus_0001").email == "new-address@example.com"
    assert Invoice.objects.get(external_id="in_0001").amount_paid == 1_000


def test_an_interrupted_run_leaves_a_checkpoint_and_resume_continues_from_it(stripe_api):
    book(stripe_api, customers=5)
    stripe_api.broken_pages["/v1/invoices"] = 2  # answers 500 for as long as the test says

    with pytest.raises(CommandError) as stopped:
        sync()

    message = str(stopped.value)
    assert "Stripe sync stopped while listing invoices (after in_0099)" in message
    assert "page 2 of /v1/invoices is down" in message
    assert "manage.py stripe_sync --resume" in message
    assert Customer.objects.count() == 5
    assert Invoice.objects.count() == 100
    assert checkpoint() | {"started_at": None} == {
        "started_at": None,
        "phases": ["customers", "invoices"],
        "done": ["customers"],
        "last_id": {"customers": "cus_0004", "invoices": "in_0099"},
    }

    del stripe_api.broken_pages["/v1/invoices"]
    stripe_api.requests.clear()
    out = sync("--resume")

    assert not lists(stripe_api, "/v1/customers")  # the customers were done
    # The invoices continue after the checkpoint; the first page is not fetched again.
    assert [page.get("starting_after") for page in lists(stripe_api, "/v1/invoices")] == ["in_0099", "in_0199"]
    assert "(done: customers; continuing invoices after in_0099)" in out
    assert "Customers: already synced before the interruption." in out
    assert "Invoices: 130 synced: 130 created, 0 updated, 0 unchanged." in out
    assert Invoice.objects.count() == 230
    assert Customer.objects.count() == 6
    assert checkpoint() is None


def test_a_run_interrupted_among_the_customers_resumes_there(stripe_api):
    book(stripe_api, customers=150, invoices=2)
    stripe_api.broken_pages["/v1/customers"] = 2

    with pytest.raises(CommandError, match=r"listing customers \(after cus_0099\)"):
        sync()

    assert checkpoint()["done"] == []
    assert not lists(stripe_api, "/v1/invoices")
    del stripe_api.broken_pages["/v1/customers"]
    stripe_api.requests.clear()
    out = sync("--resume")

    assert [page.get("starting_after") for page in lists(stripe_api, "/v1/customers")] == ["cus_0099"]
    assert "Customers: 50 synced: 50 created, 0 updated, 0 unchanged." in out
    assert (Customer.objects.count(), Invoice.objects.count()) == (151, 2)


def test_a_run_without_resume_starts_over_and_says_so(stripe_api):
    book(stripe_api, customers=150, invoices=2)
    stripe_api.broken_pages["/v1/customers"] = 2
    with pytest.raises(CommandError):
        sync()
    del stripe_api.broken_pages["/v1/customers"]
    stripe_api.requests.clear()

    out = sync()

    assert "Starting over: the checkpoint of the run started at" in out
    assert lists(stripe_api, "/v1/customers")[0].get("starting_after") is None
    assert "Customers: 150 synced: 50 created, 0 updated, 100 unchanged." in out
    assert checkpoint() is None


def test_resume_without_a_checkpoint_syncs_from_the_beginning(stripe_api):
    book(stripe_api, customers=2, invoices=2)
    out = sync("--resume")
    assert "No interrupted run to resume: syncing from the beginning." in out
    assert (Customer.objects.count(), Invoice.objects.count()) == (3, 2)


def test_customers_only_leaves_the_invoices_alone(stripe_api):
    book(stripe_api, customers=2, invoices=2)
    out = sync("--customers-only")
    assert "Customers: 2 synced" in out
    assert not lists(stripe_api, "/v1/invoices")
    assert not Invoice.objects.exists()


def test_invoices_only_creates_the_customers_its_invoices_name(stripe_api):
    book(stripe_api, customers=2, invoices=2)
    sync("--invoices-only")
    assert not lists(stripe_api, "/v1/customers")
    assert Invoice.objects.count() == 2
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"cus_0000", "cus_unlisted"}


def test_an_invoice_the_book_cannot_take_is_named_and_the_rest_are_synced(stripe_api):
    book(stripe_api, customers=2, invoices=3)
    # An invoice entered by hand earlier already uses the number Stripe gives in_0001.
    InvoiceFactory(customer=CustomerFactory(), number="NUM-in_0001", external_id=None)
    errors = io.StringIO()
    out = io.StringIO()
    call_command("stripe_sync", stdout=out, stderr=errors)
    assert "Could not store in_0001" in errors.getvalue()
    assert "Invoices: 3 synced: 2 created, 0 updated, 0 unchanged, 1 failed (in_0001)." in out.getvalue()
    assert set(Invoice.objects.exclude(external_id=None).values_list("external_id", flat=True)) == {
        "in_0000",
        "in_0002",
    }


def test_it_refuses_without_a_stripe_key(settings):
    settings.STRIPE_API_KEY = ""
    with pytest.raises(CommandError, match=NO_KEY):
        sync()
    assert checkpoint() is None


@pytest.mark.parametrize("flags", [["--resume", "--invoices-only"], ["--customers-only", "--invoices-only"]])
def test_it_refuses_flags_that_contradict_each_other(stripe_api, flags):
    with pytest.raises(CommandError):
        sync(*flags)
    assert not stripe_api.requests
