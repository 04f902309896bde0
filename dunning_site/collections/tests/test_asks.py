"""Ask for what would fix it, every time; one decline, one record, one ask. Signed Stripe webhooks into
/webhooks/stripe/, the tick with a moved clock, the outbox, against the local fake Stripe."""

import datetime as dt
from urllib.parse import urlparse

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail

from dunning_site.accounts.models import Customer, Payment, User
from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections import customer_links
from dunning_site.collections.models import Case, CaseEvent, PaymentRetry, Step
from dunning_site.collections.roles import COLLECTOR
from dunning_site.collections.tests import stripe_fake
from dunning_site.collections.tests.factories import PolicyFactory, standard_policy
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message
from dunning_site.notifications.tests.factories import MessageTemplateFactory

pytestmark = pytest.mark.django_db

# Tuesday 10 March 2026, 14:00 UTC (10:00 in New York).
NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
SITE_URL = "https://dunning.example.com"
CARD_LINK = SITE_URL + "/portal/card/"
PAY_LINK = "https://invoice.stripe.com/i/in_1"


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE_URL


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def customer(stripe_api):
    stripe_api.customers["cus_NY1"] = stripe_fake.resource("customer", id="cus_NY1", email="ada@example.com")
    return Customer.objects.create(
        external_id="cus_NY1", name="Ada Lovelace", email="ada@example.com", time_zone="America/New_York"
    )


def declined(stripe_api, decline_code: str, *, event_type: str = "invoice.payment_failed", event_id: str = "") -> dict:
    """Stripe's own attempt at in_1 declined, and the webhook it sends about it."""
    if "in_1" not in stripe_api.invoices:
        stripe_api.invoices["in_1"] = stripe_fake.invoice(
            "in_1", "cus_NY1", amount=4_900, currency="usd", created=int((NOW - dt.timedelta(hours=1)).timestamp())
        )
        stripe_api.attempt_declined("in_1", decline_code=decline_code)
    return stripe_fake.event(event_type, stripe_api.invoices["in_1"], event_id=event_id or f"evt_{event_type}")


def echo(stripe_api, event_id: str) -> dict:
    """Stripe's webhook about the engine's own attempt (it sends one for every failed payment)."""
    return stripe_fake.event("invoice.payment_failed", stripe_api.invoices["in_1"], event_id=event_id)


def reminder_policy(**kwargs):
    """A ladder of three reminders whose words carry the call to action, as the default templates do."""
    policy = PolicyFactory(**kwargs)
    for position, offset in enumerate((3, 7, 14), start=1):
        template = MessageTemplateFactory(
            key=f"asks-reminder-{position}",
            subject=f"Reminder {position}: {{{{ total_overdue }}}} overdue",
            body="Dear {{ customer_name }},\n{{ total_overdue }} is overdue.\nPlease act here: {{ action_url }}\n",
        )
        Step.objects.create(
            policy=policy, position=position, offset_days=offset, action=Step.Action.REMINDER, template=template
        )
    return policy


def reminders(case: Case) -> list[Message]:
    return list(case.messages.filter(idempotency_key__contains=":step:").order_by("created_at", "pk"))


def asks(case: Case) -> list[Message]:
    return list(case.messages.filter(idempotency_key__contains="ask-customer").order_by("created_at", "pk"))


def at(clock, moment: dt.datetime) -> None:
    clock.move_to(moment)


def test_an_expired_card_gets_the_card_link_in_every_reminder_until_a_new_card_then_the_pay_link(
    clock, stripe_api, customer, deliver
):
    reminder_policy()
    deliver(declined(stripe_api, "expired_card"))
    case = Case.objects.get()
    assert case.payment_problem == Case.PaymentProblem.NEW_CARD
    (ask,) = asks(case)
    assert CARD_LINK in ask.body

    for day in (13, 17):  # the reminders of day 3 and day 7 (the invoice was due on the 10th)
        at(clock, dt.datetime(2026, 3, day, 20, 0, tzinfo=dt.UTC))
        tick()
    assert [CARD_LINK in message.body for message in reminders(case)] == [True, True]
    assert not PaymentRetry.objects.filter(status="scheduled").exists()  # a card that must change is not retried

    # A new card: the engine charges it at once; the bank says the money is not there yet.
    at(clock, dt.datetime(2026, 3, 18, 15, 0, tzinfo=dt.UTC))
    stripe_api.declines["in_1"] = {"decline_code": "insufficient_funds"}
    method = stripe_fake.resource("payment_method", id="pm_new", customer="cus_NY1")
    deliver(stripe_fake.event("payment_method.attached", method, event_id="evt_pm"))
    case.refresh_from_db()
    assert case.payment_problem == Case.PaymentProblem.NO_FUNDS
    problems = CaseEvent.objects.filter(case=case, type__startswith="collections.payment.problem_")
    assert [(event.type, event.data["problem"]) for event in problems.order_by("at", "pk")] == [
        ("collections.payment.problem_set", "new_card"),
        ("collections.payment.problem_cleared", ""),
        ("collections.payment.problem_set", "no_funds"),
    ]

    at(clock, dt.datetime(2026, 3, 24, 20, 0, tzinfo=dt.UTC))  # day 14
    tick()
    last = reminders(case)[-1]
    assert len(reminders(case)) == 3
    assert PAY_LINK in last.body and CARD_LINK not in last.body


def test_authentication_required_asks_once_with_the_confirm_link_although_stripe_sends_two_events(
    clock, stripe_api, customer, deliver, client
):
    standard_policy()
    deliver(declined(stripe_api, "authentication_required"))
    deliver(declined(stripe_api, "authentication_required", event_type="invoice.payment_action_required"))
    case = Case.objects.get()
    assert case.payment_problem == Case.PaymentProblem.AUTHENTICATION
    (payment,) = Payment.objects.all()
    assert payment.external_id == stripe_api.latest_charges["in_1"]
    (ask,) = asks(case)
    assert ask.subject == "Please confirm your payment of $49.00"
    assert PAY_LINK in ask.body  # Stripe's hosted page is where the bank's confirmation is given
    assert CaseEvent.objects.filter(case=case, type="collections.payment.customer_asked").count() == 1

    collector = User.objects.create_user("grace")
    collector.groups.add(Group.objects.get(name=COLLECTOR))
    client.force_login(collector)
    page = client.get(f"/cases/{case.pk}/").content.decode()
    assert "Needs the customer to confirm the payment" in page

    # The customer confirms: Stripe collects the invoice, and nothing is asked any more.
    stripe_api.invoices["in_1"].update(status="paid", amount_paid=4_900, amount_remaining=0)
    stripe_api.invoice_payments["in_1"] = [
        stripe_fake.resource(
            "invoice_payment",
            id="inpay_in_1_1",
            invoice="in_1",
            currency="usd",
            amount_requested=4_900,
            amount_paid=4_900,
            status="paid",
            payment={"type": "payment_intent", "payment_intent": "pi_in_1"},
            status_transitions={"paid_at": int(NOW.timestamp()), "canceled_at": None},
        )
    ]
    deliver(stripe_fake.event("invoice.paid", stripe_api.invoices["in_1"], event_id="evt_paid"))
    case.refresh_from_db()
    assert (case.status, case.payment_problem) == (Case.Status.RESOLVED, "")
    assert "Needs the customer to confirm" not in client.get(f"/cases/{case.pk}/").content.decode()


def test_the_webhook_echo_of_the_engines_own_retry_is_one_record_and_one_plan(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(declined(stripe_api, "insufficient_funds"))
    first = PaymentRetry.objects.get(status="scheduled")
    stripe_api.declines["in_1"] = {"decline_code": "insufficient_funds"}
    at(clock, first.scheduled_for + dt.timedelta(minutes=1))
    tick()  # the engine's retry: declined
    charge = stripe_api.latest_charges["in_1"]
    retries = list(PaymentRetry.objects.order_by("attempt").values_list("pk", "attempt", "status", "scheduled_for"))
    assert [(attempt, status) for _, attempt, status, _ in retries] == [(1, "failed"), (2, "scheduled")]

    deliver(echo(stripe_api, "evt_echo"))
    failed = list(Payment.objects.filter(status="failed").order_by("at").values_list("external_id", flat=True))
    assert len(failed) == 2 and failed[-1] == charge and len(set(failed)) == 2 and all(failed)
    assert list(PaymentRetry.objects.order_by("attempt").values_list("pk", "attempt", "status", "scheduled_for")) == (
        retries
    )
    assert CaseEvent.objects.filter(type="collections.payment.failed").count() == 2


def test_a_spent_budget_says_we_could_not_collect_with_the_pay_link_never_authenticate(
    clock, stripe_api, customer, deliver
):
    standard_policy(retry_max_attempts=1)
    deliver(declined(stripe_api, "insufficient_funds"))
    retry = PaymentRetry.objects.get(status="scheduled")
    stripe_api.declines["in_1"] = {"decline_code": "insufficient_funds"}
    at(clock, retry.scheduled_for + dt.timedelta(minutes=1))
    tick()
    case = Case.objects.get()
    assert not PaymentRetry.objects.filter(status="scheduled").exists()
    (ask,) = asks(case)
    assert ask.subject == "We could not collect $49.00"
    assert PAY_LINK in ask.body
    assert "confirm" not in ask.body.lower() and "authenticat" not in ask.body.lower()
    asked = CaseEvent.objects.get(case=case, type="collections.payment.customer_asked")
    assert asked.data["template_key"] == "payment-not-collected"
    assert case.payment_problem == Case.PaymentProblem.NO_FUNDS


def test_a_spent_budget_uses_the_payment_not_collected_template_when_there_is_one(clock, stripe_api, customer, deliver):
    MessageTemplateFactory(
        key="payment-not-collected", subject="Not collected: {{ total_overdue }}", body="Pay: {{ action_url }}"
    )
    standard_policy(retry_max_attempts=0)
    deliver(declined(stripe_api, "insufficient_funds"))
    (ask,) = asks(Case.objects.get())
    assert (ask.subject, ask.body.strip()) == ("Not collected: $49.00", f"Pay: {PAY_LINK}")


@pytest.mark.parametrize("currency", ["EUR", "JPY"])
def test_the_card_update_checkout_is_in_the_currency_of_the_open_invoices(
    clock, stripe_api, customer, client, currency
):
    InvoiceFactory(customer=customer, currency="USD", status="paid", due_on=dt.date(2025, 12, 1))
    InvoiceFactory(customer=customer, currency=currency, total=12_000, due_on=dt.date(2026, 3, 1))
    response = client.get(urlparse(customer_links.card_update_url(customer)).path)
    assert response.status_code == 302
    (session,) = [params for method, path, params in stripe_api.requests if path == "/v1/checkout/sessions"]
    assert (session["mode"], session["currency"]) == ("setup", currency.lower())


def test_an_attempt_that_failed_before_any_charge_is_recorded_once_and_not_mistaken_for_an_earlier_one(
    clock, stripe_api, customer, deliver
):
    standard_policy()
    deliver(declined(stripe_api, "insufficient_funds"))
    # Stripe's own retry needs 3-D Secure: no charge is made, so none is named (latest_charge is the first one's).
    at(clock, NOW + dt.timedelta(days=3))
    stripe_api.attempt_declined("in_1", decline_code="authentication_required", charged=False)
    deliver(declined(stripe_api, "authentication_required", event_id="evt_fail_2"))
    deliver(declined(stripe_api, "authentication_required", event_type="invoice.payment_action_required"))
    codes = list(Payment.objects.filter(status="failed").order_by("at").values_list("decline_code", flat=True))
    assert codes == ["insufficient_funds", "authentication_required"]
    case = Case.objects.get()
    assert case.payment_problem == Case.PaymentProblem.AUTHENTICATION
    (ask,) = asks(case)
    assert ask.subject == "Please confirm your payment of $49.00"


def test_a_reminder_written_while_the_asks_waits_for_the_morning_replaces_it(
    clock, stripe_api, customer, deliver, run_jobs, django_capture_on_commit_callbacks
):
    """The decline comes at 02:00 in New York: its ask waits for 08:00. The day-3 reminder, written at
    09:00, carries the same card link: the customer gets one email, not two at once."""
    reminder_policy()
    at(clock, dt.datetime(2026, 3, 13, 6, 0, tzinfo=dt.UTC))
    deliver(declined(stripe_api, "expired_card"))
    case = Case.objects.get()
    (ask,) = asks(case)
    assert ask.status == Message.Status.QUEUED and mail.outbox == []

    at(clock, dt.datetime(2026, 3, 13, 13, 0, tzinfo=dt.UTC))
    with django_capture_on_commit_callbacks(execute=True):
        tick()
    run_jobs()
    ask.refresh_from_db()
    assert ask.status == Message.Status.CANCELLED
    (sent,) = mail.outbox
    assert sent.subject.startswith("Reminder 1") and CARD_LINK in sent.body
