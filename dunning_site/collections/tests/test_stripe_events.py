"""Stripe webhooks end to end: signed events in, a real RQ job, stripe-python against a local fake."""

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.utils.html import escape

from dunning_site.accounts.models import BillingEvent, Customer, Invoice, Payment, User
from dunning_site.accounts.services import PART_PAYMENT_OF_STRIPE_INVOICE, payment_record
from dunning_site.collections.models import Case, CaseEvent, PaymentRetry, Step
from dunning_site.collections.roles import COLLECTOR
from dunning_site.collections.stripe_invoices import invoice_sync
from dunning_site.collections.tests import stripe_fake
from dunning_site.collections.tests.factories import PolicyFactory, ladder, standard_policy
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db

# Tuesday 10 March 2026, 14:00 UTC (10:00 in New York, two days after the US switched to DST).
NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
URL = "/webhooks/stripe/"


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def customer():
    return Customer.objects.create(
        external_id="cus_NY1", name="Ada Lovelace", email="ada@example.com", time_zone="America/New_York"
    )


@pytest.fixture
def deliver(client, run_jobs, django_capture_on_commit_callbacks):
    """POST a signed event to the webhook and run the job it enqueues."""

    def post(payload: dict, **signing) -> object:
        body, header = stripe_fake.signed(payload, **signing)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
        run_jobs()
        return response

    return post


def failed_invoice(stripe_api, *, invoice_id="in_1", decline_code="insufficient_funds", **decline):
    stripe_api.invoices[invoice_id] = stripe_fake.invoice(
        invoice_id, "cus_NY1", amount=4_900, currency="usd", created=int((NOW - dt.timedelta(hours=1)).timestamp())
    )
    stripe_api.attempt_declined(invoice_id, decline_code=decline_code, **decline)
    return stripe_fake.event(
        "invoice.payment_failed", stripe_api.invoices[invoice_id], event_id=f"evt_fail_{invoice_id}"
    )


def test_an_insufficient_funds_failure_opens_a_case_and_retries_on_the_next_payday_morning(
    clock, stripe_api, customer, deliver
):
    standard_policy()
    response = deliver(failed_invoice(stripe_api))
    assert response.status_code == 200
    invoice = Invoice.objects.get(external_id="in_1")
    assert (invoice.status, invoice.total, invoice.currency) == ("open", 4_900, "USD")
    case = Case.objects.get()
    assert case.invoices.get() == invoice
    payment = Payment.objects.get()
    assert (payment.status, payment.decline_code) == ("failed", "insufficient_funds")
    retry = PaymentRetry.objects.get(status="scheduled")
    local = retry.scheduled_for.astimezone(zoneinfo.ZoneInfo("America/New_York"))
    # The next payday after Tuesday the 10th is Monday the 16th (the 15th is a Sunday), in the morning.
    assert local.date() == dt.date(2026, 3, 16)
    assert 6 <= local.hour <= 11
    event = CaseEvent.objects.get(case=case, type="collections.payment.failed")
    assert event.data["decline_code"] == "insufficient_funds"
    assert BillingEvent.objects.get().status == "processed"


def test_the_same_event_twice_changes_nothing_the_second_time(clock, stripe_api, customer, deliver):
    standard_policy()
    payload = failed_invoice(stripe_api)
    deliver(payload)
    before = (Payment.objects.count(), PaymentRetry.objects.count(), CaseEvent.objects.count())
    response = deliver(payload)
    assert response.status_code == 200
    assert response.content == b"already stored"
    assert (Payment.objects.count(), PaymentRetry.objects.count(), CaseEvent.objects.count()) == before
    assert BillingEvent.objects.count() == 1


def test_a_signed_body_that_is_not_an_event_gets_400(clock, stripe_api, client):
    body, header = stripe_fake.signed({"hello": "world"})
    response = client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
    assert response.status_code == 400
    assert not BillingEvent.objects.exists()


@pytest.mark.parametrize("tamper", ["body", "secret", "old"])
def test_a_bad_signature_gets_400_and_stores_nothing(clock, stripe_api, customer, client, tamper):
    payload = failed_invoice(stripe_api)
    if tamper == "secret":
        body, header = stripe_fake.signed(payload, secret="whsec_somebody_else")
    elif tamper == "old":
        body, header = stripe_fake.signed(payload, timestamp=int(NOW.timestamp()) - 301)
    else:
        body, header = stripe_fake.signed(payload)
        body = body.replace('"amount_due": 4900', '"amount_due": 1')
    response = client.post(URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
    assert response.status_code == 400
    assert not BillingEvent.objects.exists()
    assert not Invoice.objects.exists()


def test_paid_arriving_before_payment_failed_leaves_the_invoice_paid_and_no_case(clock, stripe_api, customer, deliver):
    standard_policy()
    failure = failed_invoice(stripe_api)
    stripe_api.invoices["in_1"].update(status="paid", amount_paid=4_900, amount_remaining=0)
    deliver(stripe_fake.event("invoice.paid", stripe_api.invoices["in_1"], event_id="evt_paid"))
    deliver(failure)  # older news, delivered late: its payload still says "open"
    invoice = Invoice.objects.get(external_id="in_1")
    assert invoice.status == "paid"
    assert not Case.objects.exists()
    assert not PaymentRetry.objects.exists()


def test_a_stolen_card_is_never_retried(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_invoice(stripe_api, decline_code="stolen_card", advice_code="do_not_try_again"))
    assert not PaymentRetry.objects.filter(status="scheduled").exists()
    event = CaseEvent.objects.get(type="collections.payment.failed")
    assert event.data["retry_at"] is None
    # The customer is asked for a new card instead, with the signed card-update link.
    (asked,) = Case.objects.get().messages.filter(idempotency_key__contains="ask-customer")
    assert asked.subject == "Please update your card: $49.00 could not be charged"
    assert "/portal/card/" in asked.body


def test_authentication_required_sends_the_customer_to_confirm_the_payment(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_invoice(stripe_api, decline_code="authentication_required"))
    assert not PaymentRetry.objects.filter(status="scheduled").exists()
    (asked,) = Case.objects.get().messages.filter(idempotency_key__contains="ask-customer")
    assert asked.subject == "Please confirm your payment of $49.00"
    assert "https://invoice.stripe.com/i/in_1" in asked.body


def test_a_new_card_retries_every_open_invoice_and_payment_resolves_the_case(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_invoice(stripe_api))
    case = Case.objects.get()
    method = stripe_fake.resource("payment_method", id="pm_new", customer="cus_NY1")
    deliver(stripe_fake.event("payment_method.attached", method, event_id="evt_pm"))
    assert ("POST", "/v1/invoices/in_1/pay", {}) in [(m, p, {}) for m, p, _ in stripe_api.requests]
    case.refresh_from_db()
    assert case.status == Case.Status.RESOLVED
    assert Invoice.objects.get().status == "paid"
    customer = Customer.objects.get()
    assert customer.default_payment_method == "pm_new"
    assert customer.card_expires_on == dt.date(2030, 8, 31)  # Stripe's example card: 08/2030
    assert stripe_api.customers["cus_NY1"]["invoice_settings"]["default_payment_method"] == "pm_new"
    assert PaymentRetry.objects.filter(status="succeeded", decision="new_card").count() == 1


def test_one_checkout_retries_once_although_stripe_sends_three_events(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_invoice(stripe_api))
    stripe_api.declines["in_1"] = {"decline_code": "insufficient_funds"}  # the retry fails: nothing resolves
    session = stripe_fake.resource(
        "checkout.session", id="cs_1", customer="cus_NY1", mode="setup", status="complete", setup_intent="seti_1"
    )
    intent = stripe_fake.resource("setup_intent", id="seti_1", customer="cus_NY1", payment_method="pm_from_seti_1")
    method = stripe_fake.resource("payment_method", id="pm_from_seti_1", customer="cus_NY1")
    deliver(stripe_fake.event("checkout.session.completed", session, event_id="evt_cs"))
    deliver(stripe_fake.event("setup_intent.succeeded", intent, event_id="evt_si"))
    deliver(stripe_fake.event("payment_method.attached", method, event_id="evt_pm2"))
    assert Customer.objects.get().default_payment_method == "pm_from_seti_1"
    assert PaymentRetry.objects.filter(decision="new_card").count() == 1


def test_a_dispute_pauses_the_case(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_invoice(stripe_api))
    dispute = stripe_fake.resource(
        "dispute", id="dp_1", charge={"id": "ch_1", "customer": "cus_NY1"}, status="needs_response"
    )
    deliver(stripe_fake.event("charge.dispute.created", dispute, event_id="evt_dp"))
    case = Case.objects.get()
    assert (case.status, case.pause_reason) == (Case.Status.PAUSED, "dispute")
    dispute["status"] = "won"
    deliver(stripe_fake.event("charge.dispute.closed", dispute, event_id="evt_dp_closed"))
    case.refresh_from_db()
    assert case.status != Case.Status.PAUSED
    won = CaseEvent.objects.get(type="collections.dispute.won")
    assert (won.data["dispute"], won.data["status"]) == ("dp_1", "won")


def test_the_policys_retry_step_charges_the_invoice_through_stripe(clock, stripe_api, customer):

    ladder(PolicyFactory(), (3, Step.Action.RETRY_PAYMENT, "firm", False))
    due = NOW - dt.timedelta(days=5)
    stripe_api.invoices["in_9"] = stripe_fake.invoice(
        "in_9", "cus_NY1", amount=2_500, currency="usd", created=int(due.timestamp()), due_date=int(due.timestamp())
    )

    invoice_sync(invoice_id="in_9")
    result = tick()
    assert result.retried == 1
    case = Case.objects.get()
    assert case.status == Case.Status.RESOLVED
    assert PaymentRetry.objects.get().decision == "policy_step"
    assert Payment.objects.get().status == "succeeded"


def test_the_retry_step_leaves_a_stolen_card_alone(clock, stripe_api, customer):

    ladder(PolicyFactory(), (3, Step.Action.RETRY_PAYMENT, "firm", False))
    due = NOW - dt.timedelta(days=5)
    stripe_api.invoices["in_8"] = stripe_fake.invoice(
        "in_8", "cus_NY1", amount=2_500, currency="usd", created=int(due.timestamp()), due_date=int(due.timestamp())
    )
    invoice = invoice_sync(invoice_id="in_8")
    payment_record(invoice=invoice, amount=2_500, status="failed", decline_code="stolen_card")
    tick()
    assert not PaymentRetry.objects.exists()
    performed = CaseEvent.objects.get(type="collections.step.performed")
    assert "not retried" in performed.data["retries"][0]
    assert ("POST", "/v1/invoices/in_8/pay") not in [(m, p) for m, p, _ in stripe_api.requests]


def test_a_new_card_pays_resolves_the_case_and_reinstates_service_through_the_signed_hook(
    clock, stripe_api, customer, deliver, receiver, settings, run_jobs, django_capture_on_commit_callbacks
):
    settings.SERVICE_WEBHOOK_URL = receiver.url
    settings.SERVICE_WEBHOOK_SECRET = "whsec_product_secret"
    ladder(PolicyFactory(), (0, Step.Action.SUSPEND_SERVICE, "final", False))
    deliver(failed_invoice(stripe_api))
    with django_capture_on_commit_callbacks(execute=True):
        tick()  # the ladder's day-0 step: suspend
    run_jobs()
    case = Case.objects.get()
    assert case.service_suspended
    assert [request.json["type"] for request in receiver.requests] == ["service.suspend"]

    method = stripe_fake.resource("payment_method", id="pm_fresh", customer="cus_NY1")
    deliver(stripe_fake.event("payment_method.attached", method, event_id="evt_pm_fresh"))

    case.refresh_from_db()
    assert (case.status, case.service_suspended) == (Case.Status.RESOLVED, False)
    _suspend, reinstate = receiver.requests
    assert reinstate.json["type"] == "service.reinstate"
    assert reinstate.json["data"]["case"]["id"] == case.pk
    assert reinstate.is_signed_with("whsec_product_secret")
    assert not reinstate.is_signed_with("whsec_somebody_else")
    assert CaseEvent.objects.filter(case=case, type="collections.service_hook.delivered").count() == 2


def test_suspension_can_pause_collection_of_the_stripe_subscription(
    clock, stripe_api, customer, deliver, settings, run_jobs, django_capture_on_commit_callbacks
):
    settings.SUSPEND_STRIPE_SUBSCRIPTION = True
    stripe_api.subscriptions["sub_1"] = stripe_fake.resource(
        "subscription", id="sub_1", customer="cus_NY1", status="past_due", pause_collection=None
    )
    ladder(PolicyFactory(), (0, Step.Action.SUSPEND_SERVICE, "final", False))
    deliver(failed_invoice(stripe_api))
    with django_capture_on_commit_callbacks(execute=True):
        tick()
    run_jobs()
    assert stripe_api.subscriptions["sub_1"]["pause_collection"] == {"behavior": "void"}
    with django_capture_on_commit_callbacks(execute=True):
        payment_record(invoice=Invoice.objects.get(), amount=4_900)  # paid by bank transfer
    run_jobs()
    assert stripe_api.subscriptions["sub_1"]["pause_collection"] is None
    types = set(CaseEvent.objects.values_list("type", flat=True))
    assert {"collections.subscription.collection_paused", "collections.subscription.collection_resumed"} <= types


def test_a_refund_and_a_subscription_change_are_on_the_open_cases_timeline(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_invoice(stripe_api))
    charge = stripe_fake.resource("charge", id="ch_9", customer="cus_NY1", amount_refunded=1_000, currency="usd")
    deliver(stripe_fake.event("charge.refunded", charge, event_id="evt_refund"))
    subscription = stripe_fake.resource("subscription", id="sub_9", customer="cus_NY1", status="past_due")
    deliver(stripe_fake.event("customer.subscription.updated", subscription, event_id="evt_sub"))
    refund = CaseEvent.objects.get(type="collections.payment.refunded")
    assert (refund.data["amount_refunded"], refund.data["currency"]) == (1_000, "USD")
    assert CaseEvent.objects.get(type="collections.subscription.changed").data["subscription_status"] == "past_due"
    assert BillingEvent.objects.filter(status="processed").count() == 3


def test_a_second_failure_while_a_retry_waits_replans_without_error(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_invoice(stripe_api))
    stripe_api.attempt_declined("in_1", decline_code="processing_error")  # Stripe's own retry, another charge
    again = stripe_fake.event("invoice.payment_failed", stripe_api.invoices["in_1"], event_id="evt_fail_again")
    deliver(again)
    assert BillingEvent.objects.get(event_id="evt_fail_again").status == "processed"
    assert list(PaymentRetry.objects.order_by("attempt").values_list("attempt", "status")) == [
        (1, "cancelled"),
        (2, "scheduled"),
    ]


def test_a_bank_transfer_recorded_here_is_not_undone_by_stripe_news(
    clock, stripe_api, customer, deliver, run_jobs, django_capture_on_commit_callbacks
):
    standard_policy()
    deliver(failed_invoice(stripe_api))
    stripe_api.declines["in_1"] = {"decline_code": "insufficient_funds"}  # Stripe must not charge the card
    with django_capture_on_commit_callbacks(execute=True):
        payment_record(invoice=Invoice.objects.get(), amount=4_900, method="bank_transfer")
    run_jobs()
    assert stripe_api.invoices["in_1"].get("paid_out_of_band") is True  # Stripe was told
    deliver(stripe_fake.event("invoice.updated", stripe_api.invoices["in_1"], event_id="evt_upd"))  # Stripe: still open
    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.amount_paid) == ("paid", 4_900)
    assert Case.objects.get().status == Case.Status.RESOLVED


def out_of_band_requests(stripe_api, invoice_id: str = "in_1") -> list:
    return [request for request in stripe_api.requests if request[:2] == ("POST", f"/v1/invoices/{invoice_id}/pay")]


def test_a_part_payment_by_bank_of_a_stripe_invoice_is_refused_in_the_admin_and_the_whole_one_tells_stripe(
    clock, stripe_api, customer, deliver, run_jobs, admin_client, django_capture_on_commit_callbacks
):
    """Stripe's paid_out_of_band settles the whole invoice, and until it is told Stripe charges the card
    for the whole amount: a part payment recorded here would be charged again on top."""
    standard_policy()
    deliver(failed_invoice(stripe_api))
    invoice = Invoice.objects.get()
    form = {"invoice": invoice.pk, "method": "bank_transfer", "status": "succeeded", "at_0": "2026-03-10"}
    response = admin_client.post("/admin/accounts/payment/add/", form | {"amount": "20.00", "at_1": "13:30:00"})
    assert response.status_code == 200
    refusal = PART_PAYMENT_OF_STRIPE_INVOICE % {"number": invoice.number, "remaining": "$49.00"}
    assert response.context["adminform"].form.errors["amount"] == [refusal]
    run_jobs()
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.status) == (0, "open")
    assert not Payment.objects.filter(status="succeeded").exists()
    assert out_of_band_requests(stripe_api) == []

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/accounts/payment/add/", form | {"amount": "49.00", "at_1": "13:35:00"})
    assert response.status_code == 302
    run_jobs()
    assert stripe_api.invoices["in_1"]["paid_out_of_band"] is True
    assert len(out_of_band_requests(stripe_api)) == 1
    invoice.refresh_from_db()
    assert (invoice.amount_paid, invoice.status) == (4_900, "paid")
    assert Case.objects.get().status == Case.Status.RESOLVED


def test_a_part_payment_by_cheque_of_a_stripe_invoice_is_refused_on_the_case_page(
    clock, stripe_api, customer, deliver, run_jobs, client
):
    standard_policy()
    deliver(failed_invoice(stripe_api))
    collector = User.objects.create_user("grace")
    collector.groups.add(Group.objects.get(name=COLLECTOR))
    client.force_login(collector)
    case, invoice = Case.objects.get(), Invoice.objects.get()
    response = client.post(
        f"/cases/{case.pk}/payments/",
        {"invoice": invoice.pk, "method": "cheque", "amount": "48.99", "paid_on": "2026-03-10", "reference": "Q1"},
    )
    assert response.status_code == 400
    refusal = PART_PAYMENT_OF_STRIPE_INVOICE % {"number": invoice.number, "remaining": "$49.00"}
    assert escape(refusal) in response.content.decode()
    run_jobs()
    assert not Payment.objects.filter(status="succeeded").exists()
    assert out_of_band_requests(stripe_api) == []
    assert Case.objects.get().status == Case.Status.OPEN


def test_a_retry_left_attempting_by_a_worker_that_died_is_attempted_again(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_invoice(stripe_api))
    retry = PaymentRetry.objects.get()
    # The worker claimed it 20 minutes ago and died before calling Stripe.
    PaymentRetry.objects.filter(pk=retry.pk).update(status="attempting", attempted_at=NOW - dt.timedelta(minutes=20))
    tick()
    retry.refresh_from_db()
    assert retry.status == "succeeded"
    assert Invoice.objects.get().status == "paid" and Case.objects.get().status == Case.Status.RESOLVED
    pays = [request for request in stripe_api.requests if request[:2] == ("POST", "/v1/invoices/in_1/pay")]
    assert len(pays) == 1


def test_a_retry_being_attempted_now_is_left_to_its_worker(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_invoice(stripe_api))
    PaymentRetry.objects.update(status="attempting", attempted_at=NOW - dt.timedelta(minutes=2))
    tick()
    assert PaymentRetry.objects.get().status == "attempting"
    assert not [request for request in stripe_api.requests if request[1] == "/v1/invoices/in_1/pay"]


def test_a_signed_event_with_a_nul_character_is_stored_without_it(clock, stripe_api, deliver):
    """PostgreSQL's jsonb refuses NUL; a customer can type one into a checkout form."""
    obj = stripe_fake.resource("customer", id="cus_NUL", email="nul@example.com") | {"name": "Ada\x00 Lovelace"}
    deliver(stripe_fake.event("customer.created", obj, event_id="evt_nul"))
    assert BillingEvent.objects.get(event_id="evt_nul").payload["data"]["object"]["name"] == "Ada Lovelace"
    assert Customer.objects.get(external_id="cus_NUL").name == "Ada Lovelace"
