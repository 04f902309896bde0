"""The hold rule, end to end: nothing charges or contacts a customer whose case is on hold, checked
where money and messages leave. Signed Stripe webhooks into /webhooks/stripe/, the fake Stripe over
HTTP, the tick, the outbox's delivery job, the case page; the clock moved with time-machine."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.utils.html import escape

from dunning_site.accounts.models import Customer, Invoice, User
from dunning_site.collections.disputes import DISPUTE_LOST
from dunning_site.collections.holds import (
    MESSAGE_WAITS_FOR_HOLD,
    NOT_RETRIED_FOR_DISPUTE,
    RETRY_CANCELLED_FOR_DISPUTE,
    RETRY_WAITS_FOR_HOLD,
    SEND_REFUSED_FOR_DISPUTE,
    SEND_REFUSED_ON_HOLD,
)
from dunning_site.collections.models import Case, CaseEvent, Dispute, PaymentRetry
from dunning_site.collections.roles import COLLECTOR
from dunning_site.collections.tests import stripe_fake
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message

pytestmark = pytest.mark.django_db

# Tuesday 10 March 2026, 14:00 UTC (10:00 in New York, two days after the US switched to DST).
NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
# The planner's retry of an insufficient-funds decline: the next payday morning, Monday 16 March at
# 09:00 in New York (the 15th is a Sunday).
PAYDAY = dt.datetime(2026, 3, 16, 13, 0, tzinfo=dt.UTC)
# Friday 13 March, 14:00 in New York: the ladder's day-3 reminder is due.
REMINDER_DAY = dt.datetime(2026, 3, 13, 18, 0, tzinfo=dt.UTC)


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
def run_tick(run_jobs, django_capture_on_commit_callbacks):
    """The tick, then the jobs it enqueued (deliveries), as the worker would run them."""

    def run() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            tick()
        run_jobs()

    return run


def failed_payment(stripe_api, *, invoice_id="in_1", currency="usd", event_id=None, decline="insufficient_funds"):
    if invoice_id not in stripe_api.invoices:
        stripe_api.invoices[invoice_id] = stripe_fake.invoice(
            invoice_id, "cus_NY1", amount=4_900, currency=currency, created=int(NOW.timestamp()) - 3600
        )
    stripe_api.attempt_declined(invoice_id, decline_code=decline)  # a new failed attempt, with its own charge
    event_id = event_id or f"evt_fail_{invoice_id}"
    return stripe_fake.event("invoice.payment_failed", stripe_api.invoices[invoice_id], event_id=event_id)


def dispute(event_type: str, *, status: str, dispute_id="dp_1", event_id: str) -> dict:
    obj = stripe_fake.resource(
        "dispute",
        id=dispute_id,
        charge={"id": "ch_1", "customer": "cus_NY1"},
        amount=4_900,
        currency="usd",
        status=status,
    )
    return stripe_fake.event(event_type, obj, event_id=event_id)


def opened(dispute_id="dp_1") -> dict:
    return dispute(
        "charge.dispute.created", status="needs_response", dispute_id=dispute_id, event_id=f"evt_{dispute_id}"
    )


def closed(status: str, dispute_id="dp_1") -> dict:
    return dispute("charge.dispute.closed", status=status, dispute_id=dispute_id, event_id=f"evt_{dispute_id}_closed")


def events(case: Case, event_type: str) -> list[dict]:
    return list(CaseEvent.objects.filter(case=case, type=event_type).values_list("data", flat=True))


@pytest.fixture
def collector(client):
    user = User.objects.create_user("grace")
    user.groups.add(Group.objects.get(name=COLLECTOR))
    client.force_login(user)
    return user


# ---------------------------------------------------------------------------------------------
# A dispute stops everything


def test_a_dispute_cancels_the_retry_and_the_queued_reminder_and_nothing_is_charged_or_sent_after_it(
    clock, stripe_api, customer, deliver, run_tick
):
    standard_policy()
    deliver(failed_payment(stripe_api))
    case = Case.objects.get()
    retry = PaymentRetry.objects.get(status="scheduled")
    assert retry.scheduled_for == PAYDAY
    clock.move_to(REMINDER_DAY)
    tick()  # the day-3 reminder is written; its delivery has not run yet
    (reminder,) = case.messages.filter(status=Message.Status.QUEUED)

    deliver(opened())

    case.refresh_from_db()
    assert (case.status, case.pause_reason) == (Case.Status.PAUSED, "dispute")
    retry.refresh_from_db()
    reminder.refresh_from_db()
    assert (retry.status, reminder.status) == ("cancelled", Message.Status.CANCELLED)
    (paused,) = events(case, "collections.case.paused")
    assert (paused["cancelled_retries"], paused["cancelled_messages"]) == (1, 1)
    (news,) = events(case, "collections.dispute.opened")
    assert (news["dispute"], news["amount"], news["currency"], news["replaced_hold"]) == ("dp_1", 4_900, "USD", None)

    # Stripe's own retry fails during the dispute, then the customer gives a new card: neither plans a charge.
    deliver(failed_payment(stripe_api, event_id="evt_fail_again", decline="processing_error"))
    method = stripe_fake.resource("payment_method", id="pm_new", customer="cus_NY1")
    deliver(stripe_fake.event("payment_method.attached", method, event_id="evt_pm"))
    assert PaymentRetry.objects.filter(status="scheduled").count() == 0
    failed_during = events(case, "collections.payment.failed")[-1]
    assert (failed_during["decision"], failed_during["reason"]) == ("dispute", NOT_RETRIED_FOR_DISPUTE)
    (new_card,) = events(case, "collections.payment.new_card")
    assert (new_card["retries"], new_card["not_retried"]) == (0, NOT_RETRIED_FOR_DISPUTE)
    assert Customer.objects.get().default_payment_method == "pm_new"  # the card is kept for later

    for moment in (PAYDAY, PAYDAY + dt.timedelta(days=7), PAYDAY + dt.timedelta(days=30)):
        clock.move_to(moment)
        run_tick()
    assert (stripe_api.pay_keys, stripe_api.charges) == ([], [])
    assert mail.outbox == []
    assert Case.objects.get().status == Case.Status.PAUSED


def test_a_retry_that_reaches_its_claim_during_a_dispute_is_cancelled_not_charged(
    clock, stripe_api, customer, deliver, run_tick
):
    """A hold laid as the retry was planned (another worker, a stale plan): the claim still asks."""
    standard_policy()
    deliver(failed_payment(stripe_api))
    case = Case.objects.get()
    Case.objects.filter(pk=case.pk).update(status=Case.Status.PAUSED, pause_reason="dispute")
    clock.move_to(PAYDAY)
    run_tick()
    assert (stripe_api.pay_keys, stripe_api.charges) == ([], [])
    assert PaymentRetry.objects.get().status == "cancelled"
    (cancelled,) = events(case, "collections.payment.retry_cancelled")
    assert (cancelled["reason"], cancelled["retry_at"]) == (RETRY_CANCELLED_FOR_DISPUTE, None)


def test_a_dispute_won_resumes_the_case_and_the_card_is_charged_again(clock, stripe_api, customer, deliver, run_tick):
    standard_policy()
    deliver(failed_payment(stripe_api))
    deliver(opened())
    deliver(closed("won"))
    case = Case.objects.get()
    assert (case.status, case.pause_reason) == (Case.Status.OPEN, "")
    (won,) = events(case, "collections.dispute.won")
    assert (won["dispute"], won["status"]) == ("dp_1", "won")
    (planned,) = events(case, "collections.payment.retry_planned")
    assert planned["retry_at"] == PAYDAY.isoformat()
    assert PaymentRetry.objects.get(status="scheduled").scheduled_for == PAYDAY

    clock.move_to(PAYDAY)
    run_tick()
    assert len(stripe_api.charges) == 1
    assert Case.objects.get().status == Case.Status.RESOLVED
    assert Invoice.objects.get().status == "paid"


def test_a_dispute_opened_before_any_case_holds_the_case_a_later_failure_opens(
    clock, stripe_api, customer, deliver, run_tick
):
    """The customer disputes last month's charge while nothing is overdue; then this month's renewal
    fails. The new case opens on hold: no retry, no reminder, until the dispute closes."""
    standard_policy()
    deliver(opened())
    assert not Case.objects.exists()
    assert list(Dispute.objects.values_list("external_id", "status", "closed_at")) == [("dp_1", "needs_response", None)]

    deliver(failed_payment(stripe_api))
    case = Case.objects.get()
    assert (case.status, case.pause_reason) == (Case.Status.PAUSED, "dispute")
    assert not PaymentRetry.objects.filter(status="scheduled").exists()
    assert events(case, "collections.payment.failed")[-1]["reason"] == NOT_RETRIED_FOR_DISPUTE
    for day in range(1, 10):
        clock.move_to(NOW + dt.timedelta(days=day))
        run_tick()
    assert (stripe_api.charges, len(mail.outbox), case.messages.exclude(status="cancelled").count()) == ([], 0, 0)

    clock.move_to(NOW + dt.timedelta(days=10))
    deliver(closed("won"))
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    assert Dispute.objects.get().closed_at == NOW + dt.timedelta(days=10)
    assert PaymentRetry.objects.filter(status="scheduled").count() == 1


def test_an_inquiry_closed_with_a_warning_resumes_the_case_too(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_payment(stripe_api))
    deliver(opened())
    deliver(closed("warning_closed"))
    case = Case.objects.get()
    assert case.status == Case.Status.OPEN
    assert [data["status"] for data in events(case, "collections.dispute.won")] == ["warning_closed"]
    assert PaymentRetry.objects.filter(status="scheduled").count() == 1


def test_a_case_stays_held_while_another_dispute_of_the_customer_is_open(clock, stripe_api, customer, deliver):
    standard_policy()
    deliver(failed_payment(stripe_api))
    deliver(opened("dp_1"))
    deliver(opened("dp_2"))
    deliver(closed("won", "dp_1"))
    case = Case.objects.get()
    assert case.status == Case.Status.PAUSED
    assert PaymentRetry.objects.filter(status="scheduled").count() == 0
    deliver(closed("won", "dp_2"))
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    assert PaymentRetry.objects.filter(status="scheduled").count() == 1


def test_a_dispute_lost_writes_the_invoice_off_here_and_at_stripe_and_closes_the_case(
    clock, stripe_api, customer, deliver, run_tick
):
    standard_policy()
    deliver(failed_payment(stripe_api))
    deliver(opened())
    deliver(closed("lost"))
    case = Case.objects.get()
    assert (case.status, case.amount_overdue) == (Case.Status.WRITTEN_OFF, 0)
    assert Invoice.objects.get().status == "uncollectible"
    assert stripe_api.invoices["in_1"]["status"] == "uncollectible"  # Stripe's own retries and reminders stop
    (lost,) = events(case, "collections.dispute.lost")
    assert lost["dispute"] == "dp_1"
    (written_off,) = events(case, "collections.case.written_off")
    assert (written_off["reason"], written_off["written_off"], written_off["invoices"]) == (
        DISPUTE_LOST,
        4_900,
        ["NUM-in_1"],
    )
    clock.move_to(PAYDAY)
    run_tick()
    assert (stripe_api.pay_keys, stripe_api.charges) == ([], [])
    assert mail.outbox == []


def test_a_dispute_replaces_a_promise(clock, stripe_api, customer, deliver, client, collector):
    standard_policy()
    deliver(failed_payment(stripe_api))
    case = Case.objects.get()
    client.post(f"/cases/{case.pk}/pause/", {"kind": "promise", "promised_on": "2026-03-18", "promised_amount": "49"})
    deliver(opened())
    case.refresh_from_db()
    assert (case.status, case.pause_reason, case.paused_until) == (Case.Status.PAUSED, "dispute", None)
    (news,) = events(case, "collections.dispute.opened")
    assert news["replaced_hold"] == "Promise to pay $49.00 by 2026-03-18"
    assert PaymentRetry.objects.filter(status="scheduled").count() == 0


# ---------------------------------------------------------------------------------------------
# A promise or a manual hold: charges wait, except the customer's own new card


def test_a_retry_due_while_a_promise_holds_waits_for_its_end_and_is_charged_once_then(
    clock, stripe_api, customer, deliver, run_tick, client, collector
):
    standard_policy()
    deliver(failed_payment(stripe_api))
    case = Case.objects.get()
    client.post(f"/cases/{case.pk}/pause/", {"kind": "promise", "promised_on": "2026-03-18", "promised_amount": "49"})
    case.refresh_from_db()
    assert case.paused_until == dt.datetime(2026, 3, 19, tzinfo=dt.UTC)

    clock.move_to(PAYDAY)
    run_tick()
    assert (stripe_api.pay_keys, stripe_api.charges) == ([], [])
    retry = PaymentRetry.objects.get()
    # The hold ends at 20:00 on the 18th in New York, as business hours close: the retry waits for
    # the next opening, 08:00 on Thursday the 19th.
    after_the_promise = dt.datetime(2026, 3, 19, 12, 0, tzinfo=dt.UTC)
    assert (retry.status, retry.scheduled_for) == ("scheduled", after_the_promise)
    (held,) = events(case, "collections.payment.retry_held")
    assert held["reason"] == RETRY_WAITS_FOR_HOLD % {
        "reason": "Promise to pay $49.00 by 18 Mar",
        "until": "20:00 on Wednesday 18 March 2026 (America/New_York)",
        "when": "08:00 on Thursday 19 March 2026 (America/New_York)",
    }

    clock.move_to(after_the_promise)
    run_tick()
    assert len(stripe_api.charges) == 1
    assert [invoice for invoice, _key in stripe_api.pay_keys] == ["in_1"]
    assert Case.objects.get().status == Case.Status.RESOLVED


def test_a_retry_due_during_an_open_ended_hold_is_cancelled_and_planned_afresh_on_resume(
    clock, stripe_api, customer, deliver, run_tick, client, collector
):
    standard_policy()
    deliver(failed_payment(stripe_api))
    case = Case.objects.get()
    client.post(f"/cases/{case.pk}/pause/", {"kind": "hold", "reason": "Talking to their CFO"})
    clock.move_to(PAYDAY)
    run_tick()
    assert (stripe_api.pay_keys, PaymentRetry.objects.get().status) == ([], "cancelled")
    assert len(events(case, "collections.payment.retry_cancelled")) == 1

    client.post(f"/cases/{case.pk}/resume/")
    planned = PaymentRetry.objects.get(status="scheduled")
    # The first payday a day or more after the resume (Monday the 16th): Tuesday the 31st, 09:00 in New York.
    assert planned.scheduled_for == dt.datetime(2026, 3, 31, 13, 0, tzinfo=dt.UTC)
    (event,) = events(case, "collections.payment.retry_planned")
    assert event["retry_at"] == planned.scheduled_for.isoformat()


def test_a_new_card_given_during_a_promise_is_charged_at_once(clock, stripe_api, customer, deliver, client, collector):
    standard_policy()
    deliver(failed_payment(stripe_api))
    case = Case.objects.get()
    client.post(f"/cases/{case.pk}/pause/", {"kind": "promise", "promised_on": "2026-03-18", "promised_amount": "49"})
    method = stripe_fake.resource("payment_method", id="pm_new", customer="cus_NY1")
    deliver(stripe_fake.event("payment_method.attached", method, event_id="evt_pm"))
    assert len(stripe_api.charges) == 1
    assert Case.objects.get().status == Case.Status.RESOLVED


# ---------------------------------------------------------------------------------------------
# Messages: at their claim, and a collector's send


def test_a_case_of_another_currency_opening_during_a_dispute_opens_on_hold(
    clock, stripe_api, customer, deliver, run_tick
):
    """The dispute covers the customer: a euro invoice failing after a dollar dispute opens a case on
    hold, which writes no reminder and charges nothing."""
    standard_policy()
    deliver(failed_payment(stripe_api))
    deliver(opened())
    deliver(failed_payment(stripe_api, invoice_id="in_2", currency="eur"))
    euro_case = Case.objects.get(currency="EUR")
    assert (euro_case.status, euro_case.pause_reason) == (Case.Status.PAUSED, "dispute")
    assert PaymentRetry.objects.filter(status="scheduled").count() == 0

    clock.move_to(REMINDER_DAY)
    run_tick()
    assert not euro_case.messages.exists()
    assert mail.outbox == []
    assert stripe_api.pay_keys == []


def test_a_reminder_claimed_while_a_dated_hold_holds_waits_for_its_end(
    clock, stripe_api, customer, deliver, run_jobs, django_capture_on_commit_callbacks
):
    """A hold laid while the reminder waited for its delivery job: the claim defers it, then the
    contact rules apply again when the hold is over."""
    standard_policy()
    deliver(failed_payment(stripe_api))
    case = Case.objects.get()
    clock.move_to(REMINDER_DAY)
    with django_capture_on_commit_callbacks(execute=True):
        tick()
    until = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)
    Case.objects.filter(pk=case.pk).update(status=Case.Status.PAUSED, paused_until=until, pause_reason="Their CFO")
    run_jobs()
    (reminder,) = case.messages.all()
    words = {"reason": "Their CFO", "until": "20:00 on Thursday 19 March 2026 (America/New_York)"}
    assert (reminder.status, reminder.send_after) == (Message.Status.QUEUED, until)
    assert reminder.deferred_reason == MESSAGE_WAITS_FOR_HOLD % words
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("hold", "refusal"),
    [
        ({"kind": "hold", "reason": "Talking to their CFO", "until": "2026-03-25"}, SEND_REFUSED_ON_HOLD),
        ({"kind": "dispute", "reason": "Never received"}, SEND_REFUSED_FOR_DISPUTE),
    ],
)
def test_send_now_of_a_draft_on_a_held_case_is_refused(
    clock, stripe_api, customer, deliver, run_jobs, client, collector, hold, refusal
):
    standard_policy()
    deliver(failed_payment(stripe_api))
    case = Case.objects.get()
    client.post(f"/cases/{case.pk}/personalize/", {"step": case.next_step_id})
    draft = Message.objects.get(status=Message.Status.DRAFT)
    client.post(f"/cases/{case.pk}/pause/", hold)
    case.refresh_from_db()
    assert case.status == Case.Status.PAUSED

    response = client.post(
        f"/cases/{case.pk}/messages/{draft.pk}/edit/", {"subject": "Hi", "body": "Hi", "send": "now"}
    )
    assert response.status_code == 400
    reason = "Talking to their CFO" if hold["kind"] == "hold" else "Dispute: Never received"
    words = {"case": "Ada Lovelace (USD)", "reason": reason}
    assert escape(refusal % words) in response.content.decode()
    run_jobs()
    draft.refresh_from_db()
    assert draft.status == Message.Status.DRAFT
    assert mail.outbox == []
