"""Payment retries under faults: Stripe answering 500s and 429s, answers that never come, workers that
die between the charge and its record. Everything goes through the tick and stripe-python, over HTTP,
to the local fake Stripe, whose idempotency keys behave as Stripe's (a key's answer, a 500 included,
is replayed for 24 hours).

What must hold: a card is charged at most once per invoice; every charge Stripe made is one Payment
row, whichever road its news takes; an error answer never makes a retry loop on its own replay, and
spends the invoice's budget like any attempt.
"""

import datetime as dt

import pytest
import stripe
import time_machine

from dunning_site.accounts.billing import ChargeOutcome
from dunning_site.accounts.models import Customer, Invoice, Payment
from dunning_site.collections import payment_retries
from dunning_site.collections.models import Case, CaseEvent, PaymentRetry
from dunning_site.collections.payment_retries import (
    GATEWAY_DOWN_DELAY,
    GATEWAY_ERROR,
    GATEWAY_ERROR_BUDGET_SPENT,
    RETRY_ATTEMPT_STUCK_AFTER,
    payment_failed,
)
from dunning_site.collections.stripe_invoices import invoice_sync
from dunning_site.collections.tests import stripe_fake
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.stripe_fake import PayFault
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db

# Tuesday 10 March 2026, 14:00 UTC: 10:00 in New York. A processing error now is retried an hour later.
NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
DUE = NOW + dt.timedelta(hours=1)
AMOUNT = 4_900


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def failed_invoices(stripe_api, count: int = 1, **policy) -> list[str]:
    """`count` customers in New York, each with an open invoice at Stripe whose charge failed with a
    processing error just now: each has a case and a retry due at DUE. Returns the invoices' Stripe ids."""
    standard_policy(**policy)
    ids = []
    for number in range(1, count + 1):
        customer_id, invoice_id = f"cus_{number}", f"in_{number}"
        Customer.objects.create(
            external_id=customer_id,
            name=f"Customer {number}",
            email=f"c{number}@example.com",
            time_zone="America/New_York",
        )
        stripe_api.invoices[invoice_id] = stripe_fake.invoice(
            invoice_id,
            customer_id,
            amount=AMOUNT,
            currency="usd",
            created=int((NOW - dt.timedelta(days=1)).timestamp()),
        )
        invoice = invoice_sync(invoice_id=invoice_id)
        decline = ChargeOutcome(succeeded=False, decline_code="processing_error", message="A processing error occurred")
        payment_failed(invoice=invoice, decline=decline, now=NOW)
        ids.append(invoice_id)
    assert list(PaymentRetry.objects.values_list("scheduled_for", flat=True).distinct()) == [DUE]
    return ids


def keys_sent(stripe_api, invoice_id: str) -> list[str]:
    return [key for paid, key in stripe_api.pay_keys if paid == invoice_id]


def retries(invoice_id: str = "in_1") -> list[tuple]:
    return list(
        PaymentRetry.objects.filter(invoice__external_id=invoice_id)
        .order_by("attempt")
        .values_list("attempt", "status", "decision")
    )


def paid_once(invoice_id: str) -> bool:
    invoice = Invoice.objects.get(external_id=invoice_id)
    payments = list(invoice.payments.filter(status=Payment.Status.SUCCEEDED).values_list("amount", flat=True))
    return (invoice.status, invoice.amount_paid, payments) == ("paid", AMOUNT, [AMOUNT])


# An error answer: a new key next time, and the budget counts it


@pytest.mark.parametrize(("status", "kind"), [(500, "APIError"), (429, "RateLimitError")])
def test_after_an_error_answer_the_next_attempt_is_a_new_request_and_charges(clock, stripe_api, status, kind):
    failed_invoices(stripe_api)
    stripe_api.fail_pay("in_1", PayFault(status=status))

    clock.move_to(DUE)
    tick()

    # Stripe keeps the 500 under the key: asking with it again would only replay the error for a day.
    assert retries() == [(1, "failed", "retry_soon"), (2, "scheduled", GATEWAY_ERROR)]
    failed = PaymentRetry.objects.get(attempt=1)
    assert failed.error.startswith(f"{kind}, HTTP {status}: ")
    assert PaymentRetry.objects.get(attempt=2).scheduled_for == DUE + GATEWAY_DOWN_DELAY
    event = CaseEvent.objects.get(type="collections.payment.retry_error")
    assert event.data["reason"] == (
        f"Stripe answered an error instead of charging ({failed.error}) and the invoice is still open: "
        "another attempt at 11:10 on Tuesday 10 March 2026 (America/New_York), as a new request."
    )
    assert stripe_api.charges == []

    clock.move_to(DUE + GATEWAY_DOWN_DELAY)
    tick()

    first, second = keys_sent(stripe_api, "in_1")
    assert first != second
    assert retries() == [(1, "failed", "retry_soon"), (2, "succeeded", GATEWAY_ERROR)]
    assert len(stripe_api.charges) == 1
    assert paid_once("in_1")
    assert Payment.objects.get(status="succeeded").external_id == stripe_api.charges[0]["payment"]
    assert Case.objects.get().status == Case.Status.RESOLVED


def test_errors_on_every_attempt_spend_the_budget_then_stop_and_the_timeline_says_so(clock, stripe_api):
    failed_invoices(stripe_api, retry_max_attempts=3)
    stripe_api.fail_pay("in_1", *[PayFault(status=500)] * 20)

    moment = DUE
    for _ in range(8):  # a tick every ten minutes for 80 minutes
        clock.move_to(moment)
        tick()
        moment += GATEWAY_DOWN_DELAY

    keys = keys_sent(stripe_api, "in_1")
    assert len(keys) == 3 and len(set(keys)) == 3
    assert retries() == [(1, "failed", "retry_soon"), (2, "failed", GATEWAY_ERROR), (3, "failed", GATEWAY_ERROR)]
    assert not PaymentRetry.objects.filter(status__in=["scheduled", "attempting"]).exists()
    assert CaseEvent.objects.filter(type="collections.payment.retry_error").count() == 2
    spent = CaseEvent.objects.get(type="collections.payment.budget_spent")
    error = PaymentRetry.objects.get(attempt=3).error
    assert spent.data["reason"] == GATEWAY_ERROR_BUDGET_SPENT % {"error": error, "used": 3, "cap": 3, "days": 30}
    assert spent.data["reason"].endswith("No retry left: 3 of 3 retries used in 30 days.")
    assert Invoice.objects.get().status == "open" and stripe_api.charges == []


def test_a_500_after_the_card_was_charged_records_the_payment_and_resolves_the_case(clock, stripe_api):
    failed_invoices(stripe_api)
    stripe_api.fail_pay("in_1", PayFault(status=500, charge_first=True))

    clock.move_to(DUE)
    tick()

    # The re-read after the error shows the invoice paid: no second request, the payment is on the book.
    assert len(keys_sent(stripe_api, "in_1")) == 1
    assert len(stripe_api.charges) == 1
    assert paid_once("in_1")
    assert retries() == [(1, "succeeded", "retry_soon")]
    assert PaymentRetry.objects.get().payment.external_id == stripe_api.charges[0]["payment"]
    assert Case.objects.get().status == Case.Status.RESOLVED


# No answer: the same key next time, and Stripe's replay tells what happened


def test_a_timeout_after_the_charge_asks_again_with_the_same_key_and_charges_once(clock, stripe_api, settings):
    settings.STRIPE_TIMEOUT_SECONDS = 0.3
    failed_invoices(stripe_api)
    # The card is charged; then no answer comes — to the request, nor to stripe-python's two retries of it.
    stripe_api.fail_pay("in_1", *[PayFault(stall_seconds=30)] * 3)

    clock.move_to(DUE)
    tick()

    retry = PaymentRetry.objects.get()
    assert (retry.status, retry.scheduled_for) == ("scheduled", DUE + GATEWAY_DOWN_DELAY)
    assert retry.error.startswith("APIConnectionError: ")
    assert len(stripe_api.charges) == 1
    assert not Payment.objects.filter(status="succeeded").exists()  # not known yet

    clock.move_to(DUE + GATEWAY_DOWN_DELAY)
    tick()

    keys = keys_sent(stripe_api, "in_1")
    assert len(keys) == 4 and len(set(keys)) == 1  # three unanswered, then Stripe's replay of the success
    assert len(stripe_api.charges) == 1
    assert paid_once("in_1")
    retry.refresh_from_db()
    assert (retry.status, retry.error) == ("succeeded", "")
    assert retry.payment.external_id == stripe_api.charges[0]["payment"]
    assert Case.objects.get().status == Case.Status.RESOLVED


def test_stripe_out_of_reach_spends_no_budget_and_the_retry_goes_on_with_its_key(clock, stripe_api, settings):
    failed_invoices(stripe_api)
    fake_url, settings.STRIPE_API_BASE = settings.STRIPE_API_BASE, "http://127.0.0.1:9"  # connection refused

    clock.move_to(DUE)
    tick()

    retry = PaymentRetry.objects.get()
    assert (retry.status, retry.scheduled_for) == ("scheduled", DUE + GATEWAY_DOWN_DELAY)
    assert retry.error.startswith("APIConnectionError: ")
    assert stripe_api.pay_keys == []
    assert not CaseEvent.objects.filter(
        type__in=["collections.payment.retry_error", "collections.payment.budget_spent"]
    )
    assert Payment.objects.filter(status="failed").count() == 1  # the original failure only

    settings.STRIPE_API_BASE = fake_url
    clock.move_to(DUE + GATEWAY_DOWN_DELAY)
    tick()

    assert keys_sent(stripe_api, "in_1") == [f"dunning-retry-{retry.pk}"]
    assert retries() == [(1, "succeeded", "retry_soon")]
    assert len(stripe_api.charges) == 1 and paid_once("in_1")


# The moment of the claim


def test_attempted_at_is_the_moment_each_retry_is_claimed(clock, stripe_api, monkeypatch):
    failed_invoices(stripe_api, 3)
    real_gateway = payment_retries.gateway

    class SlowGateway:
        """Stripe's answer takes two minutes."""

        def __init__(self) -> None:
            self.inner = real_gateway()

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

        def invoice_pay(self, invoice_id: str, *, idempotency_key: str) -> ChargeOutcome:
            outcome = self.inner.invoice_pay(invoice_id, idempotency_key=idempotency_key)
            clock.shift(dt.timedelta(minutes=2))
            return outcome

    monkeypatch.setattr(payment_retries, "gateway", SlowGateway)
    clock.move_to(DUE)
    tick()

    claimed = list(PaymentRetry.objects.order_by("attempted_at").values_list("attempted_at", "status"))
    minutes = dt.timedelta(minutes=1)
    assert claimed == [(DUE, "succeeded"), (DUE + 2 * minutes, "succeeded"), (DUE + 4 * minutes, "succeeded")]
    paid_at = sorted(Payment.objects.filter(status="succeeded").values_list("at", flat=True))
    assert paid_at == [DUE, DUE + 2 * minutes, DUE + 4 * minutes]


# A worker that dies between the charge and its record


class WorkerDied(Exception):
    """The worker process is gone: nothing after the charge was recorded."""


def test_a_worker_that_dies_after_the_charge_loses_no_payment_and_doubles_none(clock, stripe_api, monkeypatch, deliver):
    invoice_ids = failed_invoices(stripe_api, 5)
    dying_on = {"in_2", "in_4"}
    real_gateway = payment_retries.gateway

    class DyingWorkerGateway:
        """Charges through the real gateway (the fake Stripe, over HTTP), then the worker dies for the
        invoices in `dying_on`, once each, before the outcome is recorded."""

        def __init__(self) -> None:
            self.inner = real_gateway()

        def __getattr__(self, name: str):
            return getattr(self.inner, name)

        def invoice_pay(self, invoice_id: str, *, idempotency_key: str) -> ChargeOutcome:
            outcome = self.inner.invoice_pay(invoice_id, idempotency_key=idempotency_key)
            if invoice_id in dying_on:
                dying_on.discard(invoice_id)
                raise WorkerDied(invoice_id)
            return outcome

    monkeypatch.setattr(payment_retries, "gateway", DyingWorkerGateway)
    clock.move_to(DUE)
    deaths = 0
    while True:  # a supervisor restarts the worker, which ticks again
        try:
            tick()
            break
        except WorkerDied:
            deaths += 1

    assert deaths == 2
    assert len(stripe_api.charges) == 5
    assert sorted(PaymentRetry.objects.filter(status="attempting").values_list("invoice__external_id", flat=True)) == [
        "in_2",
        "in_4",
    ]
    # Stripe's invoice.paid for one of them arrives before the stuck retries are recovered.
    deliver(stripe_fake.event("invoice.paid", stripe_api.invoices["in_4"], event_id="evt_paid_in_4"))

    clock.move_to(DUE + RETRY_ATTEMPT_STUCK_AFTER + dt.timedelta(minutes=1))
    tick()
    # …and the other's after they were.
    deliver(stripe_fake.event("invoice.paid", stripe_api.invoices["in_2"], event_id="evt_paid_in_2"))

    assert len(stripe_api.charges) == 5
    payments = Payment.objects.filter(status="succeeded")
    assert payments.count() == 5
    assert sorted(payments.values_list("external_id", flat=True)) == sorted(c["payment"] for c in stripe_api.charges)
    assert all(paid_once(invoice_id) for invoice_id in invoice_ids)
    assert set(PaymentRetry.objects.values_list("status", flat=True)) == {"succeeded"}
    assert PaymentRetry.objects.filter(payment__isnull=True).count() == 0
    # The recovered retries asked Stripe again with their own key: a replay, not a second charge.
    for invoice_id in ("in_2", "in_4"):
        keys = keys_sent(stripe_api, invoice_id)
        assert len(keys) == 2 and len(set(keys)) == 1
    assert set(Case.objects.values_list("status", flat=True)) == {Case.Status.RESOLVED}


# The fake Stripe's idempotency, which the tests above stand on


def test_the_fake_keeps_a_keys_answer_500_included_for_24_hours_and_refuses_it_for_other_parameters(
    clock, stripe_api, settings
):
    stripe_api.invoices["in_1"] = stripe_fake.invoice("in_1", "cus_1", amount=AMOUNT)
    stripe_api.fail_pay("in_1", PayFault(status=500))
    client = stripe.StripeClient("sk_test_fake", base_addresses={"api": settings.STRIPE_API_BASE})

    def pay(key: str, params: dict | None = None):
        return client.v1.invoices.pay("in_1", params or {}, options={"idempotency_key": key})

    with pytest.raises(stripe.APIError):
        pay("key-1")
    clock.shift(dt.timedelta(hours=23, minutes=59))
    with pytest.raises(stripe.APIError):
        pay("key-1")  # replayed, although nothing is wrong any more
    with pytest.raises(stripe.IdempotencyError):
        pay("key-1", {"expand": ["payments"]})
    assert stripe_api.charges == []

    clock.shift(dt.timedelta(minutes=2))  # past 24 hours: the key is forgotten
    assert pay("key-1").status == "paid"
    assert len(stripe_api.charges) == 1


# Declines: each failed charge is its own


def test_every_decline_of_a_retry_plans_the_next_one_and_its_webhook_adds_nothing(clock, stripe_api, deliver):
    failed_invoices(stripe_api)
    stripe_api.declines["in_1"] = {"decline_code": "processing_error"}

    moment = DUE
    for _ in range(3):
        clock.move_to(moment)
        tick()
        # Stripe's webhook for the same failed charge: already recorded, nothing more.
        deliver(stripe_fake.event("invoice.payment_failed", stripe_api.invoices["in_1"], event_id=f"evt_{moment}"))
        moment = PaymentRetry.objects.get(status="scheduled").scheduled_for

    # An invoice keeps one PaymentIntent through its attempts; each attempt's charge has its own id.
    assert [status for _, status, _ in retries()] == ["failed", "failed", "failed", "scheduled"]
    declined = Payment.objects.filter(status="failed").exclude(external_id=None)
    assert declined.count() == 3 and len(set(declined.values_list("external_id", flat=True))) == 3
    assert CaseEvent.objects.filter(type="collections.payment.failed").count() == 4
