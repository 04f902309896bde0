"""A collector asks a manager (four eyes) to escalate now, skip the next step or write off; a manager
decides from /approvals/ and the effect happens."""

import datetime as dt

import django_rq
import pytest
from django.contrib.auth.models import Group
from django.test import Client

from dunning_site.accounts.models import Customer, Invoice
from dunning_site.accounts.services import payment_record
from dunning_site.accounts.tests.factories import InvoiceFactory, UserFactory
from dunning_site.collections import dashboard
from dunning_site.collections.approvals import (
    CASE_ON_HOLD,
    REASON_REQUIRED,
    REQUEST_ALREADY_PENDING,
    SELF_APPROVAL,
    WRITE_OFF_NOT_POSITIVE,
    WRITE_OFF_TOO_LARGE,
)
from dunning_site.collections.case_core import CASE_NOT_ACTIVE, case_pause
from dunning_site.collections.forms import WriteOffRequestForm
from dunning_site.collections.models import (
    Approval,
    Case,
    CaseEvent,
    PaymentRetry,
    ServiceHookDelivery,
    Step,
    StepExecution,
)
from dunning_site.collections.roles import COLLECTOR, MANAGER
from dunning_site.collections.schedule import step_due_at
from dunning_site.collections.tests import stripe_fake
from dunning_site.collections.tests.factories import PolicyFactory, ladder, standard_policy
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.tick import tick
from dunning_site.collections.timeline import case_name
from dunning_site.lib.money import AMOUNT_TOO_LARGE, NOT_A_NUMBER, TOO_MANY_DECIMALS
from dunning_site.notifications.models import Message

pytestmark = pytest.mark.django_db

ESCALATION, SKIP, WRITE_OFF = "escalation", "skip", "write-off"


def case_days_overdue(days: int, **invoice) -> Case:
    """Ada's €99.00 case on the standard ladder (day 3, 10, 20 with approval, 30 with approval),
    walked up to where a case `days` overdue stands today."""
    standard_policy()
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=days), total=9_900, customer__name="Ada Lovelace", **invoice)
    tick()
    return Case.objects.select_related("next_step", "current_step").get()


@pytest.fixture
def case():
    """Day 5: the friendly reminder went (still queued), the firm one is next, on day 10."""
    case = case_days_overdue(5)
    assert (case.current_step.position, case.next_step.position) == (1, 2)
    return case


def manager_client(username: str = "maria") -> tuple[Client, object]:
    user = UserFactory(username=username, first_name=username.title())
    user.groups.add(Group.objects.get(name=MANAGER))
    client = Client()
    client.force_login(user)
    return client, user


def ask(client, case: Case, what: str, **fields) -> object:
    prefix = what.replace("-", "_")
    data = {f"{prefix}-{name}": value for name, value in fields.items()}
    return client.post(f"/cases/{case.pk}/requests/{what}/", data)


def decide(client, approval: Approval, decision: str = "approve", note: str = "") -> str:
    response = client.post(f"/approvals/{approval.pk}/decide/", {"decision": decision, "note": note}, follow=True)
    return response.content.decode()


# ---------------------------------------------------------------------------------------------
# Escalate now


def test_an_escalation_approved_by_a_manager_performs_the_next_step_at_once(
    client, collector, case, run_jobs, django_capture_on_commit_callbacks
):
    response = ask(client, case, ESCALATION, reason="Promised twice, paid nothing")
    assert response.status_code == 302 and response["Location"] == f"/cases/{case.pk}/"
    page = client.get(response["Location"]).content.decode()
    assert "Asked a manager to perform Day 10: Reminder (Email) now." in page
    approval = Approval.objects.get(kind=Approval.Kind.ESCALATION)
    assert (approval.status, approval.step, approval.requested_by) == ("pending", case.next_step, collector)
    requested = CaseEvent.objects.get(type="collections.approval.requested", user=collector)
    assert (
        requested.data.items()
        >= {
            "kind": "escalation",
            "reason": "Promised twice, paid nothing",
            "step": "Day 10: Reminder (Email)",
        }.items()
    )
    assert Case.objects.get().next_action_at > NOW  # asking changes nothing yet

    boss, maria = manager_client()
    queue = boss.get("/approvals/").content.decode()
    assert "Escalate now" in queue and "Promised twice, paid nothing" in queue and "Ada Lovelace" in queue
    with django_capture_on_commit_callbacks(execute=True):
        assert "Approved: escalate now to Day 10: Reminder (Email) for Ada Lovelace" in decide(boss, approval)
    assert django_rq.get_queue("default").count == 1  # the tick, at once
    run_jobs()
    case.refresh_from_db()
    assert case.current_step.position == 2 and case.next_step.position == 3
    assert StepExecution.objects.filter(case=case, step__position=2).exists()
    assert Message.objects.filter(cases=case).count() == 2
    assert CaseEvent.objects.filter(type="collections.case.escalated", user=maria).exists()


def test_an_escalated_step_that_needs_approval_is_not_asked_for_again(
    client, collector, run_jobs, django_capture_on_commit_callbacks
):
    case = case_days_overdue(12)  # day 12: the firm reminder went; the final notice (approval) is next
    assert case.next_step.requires_approval and case.status == Case.Status.OPEN
    ask(client, case, ESCALATION, reason="Third broken promise")
    boss, maria = manager_client()
    with django_capture_on_commit_callbacks(execute=True):
        decide(boss, Approval.objects.get(kind=Approval.Kind.ESCALATION))
    run_jobs()
    case.refresh_from_db()
    assert case.current_step.action == Step.Action.FINAL_NOTICE and case.status == Case.Status.OPEN
    step_approval = Approval.objects.get(kind=Approval.Kind.STEP)
    assert (step_approval.status, step_approval.decided_by, step_approval.requested_by) == (
        "approved",
        maria,
        collector,
    )
    assert not Approval.objects.filter(status=Approval.Status.PENDING).exists()


def test_a_rejected_escalation_leaves_the_step_on_its_day_with_its_own_approval(client, collector, clock):
    case = case_days_overdue(12)  # the final notice (approval) is next, on day 20
    ask(client, case, ESCALATION, reason="Impatient")
    boss, _ = manager_client()
    approval = Approval.objects.get()
    assert "Rejected: escalate now to Day 20: Final notice (Email)" in decide(boss, approval, "reject", note="Wait")
    assert CaseEvent.objects.get(type="collections.approval.rejected").data["note"] == "Wait"
    case.refresh_from_db()
    assert case.next_action_at > NOW and case.status == Case.Status.OPEN
    clock.move_to(case.next_action_at)
    tick()  # the rejected request names the step, but only the ladder's own approval decides it
    case.refresh_from_db()
    assert case.status == Case.Status.AWAITING_APPROVAL
    assert Approval.objects.get(kind=Approval.Kind.STEP).status == Approval.Status.PENDING
    assert not CaseEvent.objects.filter(type="collections.step.skipped", data__step="Day 20: Final notice (Email)")


def test_a_case_on_hold_cannot_be_escalated(client, collector, case):
    case_pause(case=case, until=None, reason="dispute", user=collector)
    response = ask(client, case, ESCALATION, reason="Now")
    assert response.status_code == 400
    assert CASE_ON_HOLD % {"case": case_name(case), "reason": "dispute"} in response.content.decode()
    assert not Approval.objects.exists()


# ---------------------------------------------------------------------------------------------
# Skip a step


def test_a_skip_approved_by_a_manager_skips_the_step_and_schedules_the_one_after(client, collector, case):
    ask(client, case, SKIP, reason="They answer the phone; a firm email would sour it")
    approval = Approval.objects.get(kind=Approval.Kind.SKIP)
    boss, maria = manager_client()
    assert "Skip a step" in boss.get("/approvals/").content.decode()
    assert "Approved: skip Day 10: Reminder (Email) for Ada Lovelace" in decide(boss, approval)
    case.refresh_from_db()
    final_notice = Step.objects.get(position=3)
    assert (case.next_step, case.next_action_at, case.status) == (
        final_notice,
        step_due_at(case=case, step=final_notice),
        Case.Status.OPEN,
    )
    assert case.current_step.position == 1  # nothing was performed
    skipped = CaseEvent.objects.get(type="collections.step.skipped", user=maria)
    assert skipped.data["reason"] == "They answer the phone; a firm email would sour it"
    assert (skipped.data["step"], skipped.data["requested_by"]) == ("Day 10: Reminder (Email)", "grace")


def test_skipping_the_step_that_waits_for_approval_moves_the_case_on(client, collector):
    case = case_days_overdue(21)  # the final notice waits for a manager
    assert case.status == Case.Status.AWAITING_APPROVAL
    ask(client, case, SKIP, reason="Key account, the CFO called")
    boss, _ = manager_client()
    decide(boss, Approval.objects.get(kind=Approval.Kind.SKIP))
    case.refresh_from_db()
    assert (case.status, case.next_step.action) == (Case.Status.OPEN, Step.Action.SUSPEND_SERVICE)
    assert Approval.objects.get(kind=Approval.Kind.STEP).status == Approval.Status.CANCELLED


def test_skipping_the_step_that_waits_for_approval_on_a_case_on_hold_lets_it_go_on_when_resumed(client, collector):
    case = case_days_overdue(21)  # the final notice waits for a manager
    case_pause(case=case, until=None, reason="dispute", user=collector)
    ask(client, case, SKIP, reason="Key account, the CFO called")
    boss, _ = manager_client()
    decide(boss, Approval.objects.get(kind=Approval.Kind.SKIP))
    assert Approval.objects.get(kind=Approval.Kind.STEP).status == Approval.Status.CANCELLED
    assert "Nothing waits for a decision." in boss.get("/approvals/").content.decode()
    assert client.post(f"/cases/{case.pk}/resume/").status_code == 302
    case.refresh_from_db()
    suspension = Step.objects.get(action=Step.Action.SUSPEND_SERVICE)
    assert (case.status, case.next_step, case.next_action_at) == (
        Case.Status.OPEN,
        suspension,
        step_due_at(case=case, step=suspension),  # day 30, not at once
    )


def test_a_step_approval_whose_step_is_no_longer_next_says_so_and_deciding_it_keeps_the_next_steps_day(client):
    case = case_days_overdue(21)  # the final notice waits for a manager
    suspension = Step.objects.get(action=Step.Action.SUSPEND_SERVICE)
    Case.objects.filter(pk=case.pk).update(next_step=suspension)  # as a skip on hold left it before
    boss, _ = manager_client()
    page = boss.get("/approvals/").content.decode()
    assert "Day 20: Final notice (Email) is no longer this case's next step" in page
    decide(boss, Approval.objects.get(kind=Approval.Kind.STEP), "reject")
    case.refresh_from_db()
    assert (case.status, case.next_action_at) == (Case.Status.OPEN, step_due_at(case=case, step=suspension))


# ---------------------------------------------------------------------------------------------
# Write off


def test_writing_off_everything_closes_the_case_and_cancels_what_was_going_out(client, collector, case):
    queued = Message.objects.get(cases=case)
    assert queued.status == Message.Status.QUEUED
    invoice = Invoice.objects.get()
    PaymentRetry.objects.create(
        invoice=invoice, case=case, scheduled_for=NOW + dt.timedelta(days=2), decision="x", reason="x", attempt=1
    )
    response = ask(client, case, WRITE_OFF, amount="99.00", reason="Company in liquidation")
    assert response.status_code == 302
    approval = Approval.objects.get(kind=Approval.Kind.WRITE_OFF)
    assert (approval.amount, approval.step) == (9_900, None)
    boss, maria = manager_client()
    queue = boss.get("/approvals/").content.decode()
    assert "Write-off" in queue and "€99.00" in queue and "Company in liquidation" in queue
    assert "Approved: write off €99.00 for Ada Lovelace" in decide(boss, approval)
    case.refresh_from_db()
    assert (case.status, case.resolved_at, case.amount_overdue, case.next_step) == (
        Case.Status.WRITTEN_OFF,
        NOW,
        0,
        None,
    )
    queued.refresh_from_db()
    assert queued.status == Message.Status.CANCELLED
    assert PaymentRetry.objects.get().status == PaymentRetry.Status.CANCELLED
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNCOLLECTIBLE
    event = CaseEvent.objects.get(type="collections.case.written_off")
    assert (event.user, event.data["written_off"], event.data["currency"]) == (maria, 9_900, "EUR")
    assert event.data["cancelled_messages"] == 1 and event.data["reason"] == "Company in liquidation"
    tick()  # the written-off invoice does not open a new case
    assert Case.objects.count() == 1


def test_a_partial_write_off_lowers_what_is_pursued_and_paying_the_rest_closes_it_as_written_off(
    client, collector, case
):
    ask(client, case, WRITE_OFF, amount="40", reason="Goodwill for the outage in February")
    boss, _ = manager_client()
    decide(boss, Approval.objects.get())
    case.refresh_from_db()
    assert (case.status, case.amount_overdue) == (Case.Status.OPEN, 5_900)
    event = CaseEvent.objects.get(type="collections.case.partly_written_off")
    assert (event.data["previous"], event.data["amount"], event.data["amount_overdue"]) == (9_900, 4_000, 5_900)
    invoice = Invoice.objects.get()
    # The invoice shows the write-off too (a credit note): it no longer says €99.00 is owed.
    assert (invoice.amount_written_off, invoice.amount_remaining) == (4_000, 5_900)
    assert invoice.credit_notes.get().reason == "Goodwill for the outage in February"
    payment_record(invoice=invoice, amount=1_000, method="bank_transfer")  # part of the rest
    case.refresh_from_db()
    assert case.amount_overdue == 4_900  # what the invoice says is left
    payment_record(invoice=invoice, amount=4_900, method="bank_transfer")
    case.refresh_from_db()
    invoice.refresh_from_db()
    # Paid but for what was written off: the invoice is settled, nothing shows as owed on it.
    assert (case.status, case.resolved_at, invoice.status, invoice.amount_remaining) == (
        Case.Status.WRITTEN_OFF,
        NOW,
        Invoice.Status.PAID,
        0,
    )
    closed = CaseEvent.objects.get(type="collections.case.written_off")
    assert (closed.data["written_off"], closed.data["currency"], closed.data["invoices"]) == (
        4_000,
        "EUR",
        [invoice.number],
    )
    assert not CaseEvent.objects.filter(type="collections.case.resolved").exists()
    # "Recovered" means paid in full: a case closed with a write-off is not.
    period = dashboard.period_ending_today()
    assert (dashboard.case_funnel(period=period).opened, dashboard.case_funnel(period=period).recovered) == (1, 0)
    assert all(row.cases == 0 for row in dashboard.time_to_recover(period=period))


def test_paying_in_full_cancels_the_scheduled_card_retries(client, collector, case):
    invoice = Invoice.objects.get()
    PaymentRetry.objects.create(
        invoice=invoice, case=case, scheduled_for=NOW + dt.timedelta(days=2), decision="x", reason="x", attempt=1
    )
    payment_record(invoice=invoice, amount=9_900, method="bank_transfer")
    case.refresh_from_db()
    assert case.status == Case.Status.RESOLVED
    assert PaymentRetry.objects.get().status == PaymentRetry.Status.CANCELLED
    assert CaseEvent.objects.get(type="collections.case.resolved").data["cancelled_retries"] == 1
    assert dashboard.case_funnel(period=dashboard.period_ending_today()).recovered == 1


def test_writing_off_a_suspended_case_reinstates_the_service_and_resumes_the_subscription(
    client, collector, settings, stripe_api, run_jobs, django_capture_on_commit_callbacks
):
    settings.SERVICE_WEBHOOK_URL = "http://127.0.0.1:9/service"
    settings.SUSPEND_STRIPE_SUBSCRIPTION = True
    stripe_api.subscriptions["sub_w2"] = stripe_fake.resource(
        "subscription", id="sub_w2", customer="cus_w2", status="past_due", pause_collection=None
    )
    stripe_api.invoices["in_w2"] = stripe_fake.invoice("in_w2", "cus_w2", amount=9_900)
    ladder(
        PolicyFactory(), (3, Step.Action.REMINDER, "friendly", False), (30, Step.Action.SUSPEND_SERVICE, "final", False)
    )
    InvoiceFactory(
        due_on=NOW.date() - dt.timedelta(days=31), total=9_900, external_id="in_w2", customer__external_id="cus_w2"
    )
    with django_capture_on_commit_callbacks(execute=True):
        tick()
    run_jobs()
    case = Case.objects.get()
    assert case.service_suspended
    assert stripe_api.subscriptions["sub_w2"]["pause_collection"] == {"behavior": "void"}

    ask(client, case, WRITE_OFF, amount="99", reason="Customer gone")
    boss, maria = manager_client()
    with django_capture_on_commit_callbacks(execute=True):
        decide(boss, Approval.objects.get())
    run_jobs()
    case.refresh_from_db()
    assert (case.status, case.service_suspended) == (Case.Status.WRITTEN_OFF, False)
    reinstatement = ServiceHookDelivery.objects.get(case=case, action=ServiceHookDelivery.Action.REINSTATE)
    assert reinstatement.payload["data"]["reason"] == "case_written_off"
    assert CaseEvent.objects.filter(type="collections.case.reinstated", user=maria).exists()
    assert stripe_api.subscriptions["sub_w2"]["pause_collection"] is None
    assert CaseEvent.objects.filter(type="collections.subscription.collection_resumed").exists()


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("", "This field is required."),
        ("lots", NOT_A_NUMBER),
        ("0", WRITE_OFF_NOT_POSITIVE),
        ("-5", WRITE_OFF_NOT_POSITIVE),
        ("12.345", TOO_MANY_DECIMALS % {"currency": "EUR", "decimals": 2}),
        ("99.01", WRITE_OFF_TOO_LARGE % {"overdue": "€99.00"}),
        ("1e999999", AMOUNT_TOO_LARGE % {"currency": "EUR", "largest": "€92,233,720,368,547,758.07"}),
        ("1e250", AMOUNT_TOO_LARGE % {"currency": "EUR", "largest": "€92,233,720,368,547,758.07"}),
        ("1e-999999", TOO_MANY_DECIMALS % {"currency": "EUR", "decimals": 2}),
        ("Infinity", NOT_A_NUMBER),
    ],
)
def test_a_bad_write_off_amount_is_refused_next_to_the_field(client, collector, case, amount, error):
    response = ask(client, case, WRITE_OFF, amount=amount, reason="Small balance")
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="write_off-amount-errors"' in page and error in page
    assert not Approval.objects.exists()


def test_amounts_are_typed_in_the_cases_currency():
    assert WriteOffRequestForm({"w-amount": "5000", "w-reason": "x"}, prefix="w", currency="JPY").is_valid()
    form = WriteOffRequestForm({"w-amount": "1.234", "w-reason": "x"}, prefix="w", currency="KWD")
    assert form.is_valid() and form.cleaned_data["amount"] == 1_234
    assert not WriteOffRequestForm({"w-amount": "50.5", "w-reason": "x"}, prefix="w", currency="JPY").is_valid()


# ---------------------------------------------------------------------------------------------
# Bad requests, duplicates, roles, htmx


@pytest.mark.parametrize("what", [ESCALATION, SKIP, WRITE_OFF])
def test_a_request_needs_a_reason(client, collector, case, what):
    response = ask(client, case, what, reason="   ", amount="10")
    assert response.status_code == 400
    assert REASON_REQUIRED in response.content.decode()
    assert not Approval.objects.exists()


@pytest.mark.parametrize("what", [ESCALATION, SKIP, WRITE_OFF])
def test_a_second_request_of_the_same_kind_is_refused_while_the_first_waits(client, collector, case, what):
    assert ask(client, case, what, reason="First", amount="10").status_code == 302
    response = ask(client, case, what, reason="Second", amount="10")
    assert response.status_code == 400
    kind = {ESCALATION: "escalation", SKIP: "skip", WRITE_OFF: "write_off"}[what]
    what_words = {"escalation": "escalate now", "skip": "skip a step", "write_off": "write off an amount"}[kind]
    assert REQUEST_ALREADY_PENDING % {"what": what_words} in response.content.decode()
    assert Approval.objects.filter(kind=kind).count() == 1


def test_requests_of_different_kinds_wait_side_by_side(client, collector, case):
    ask(client, case, ESCALATION, reason="a")
    ask(client, case, SKIP, reason="b")
    ask(client, case, WRITE_OFF, amount="10", reason="c")
    assert Approval.objects.filter(status="pending").count() == 3


def test_a_closed_case_takes_no_request(client, collector, case):
    Case.objects.filter(pk=case.pk).update(status=Case.Status.RESOLVED, next_step=None, next_action_at=None)
    response = ask(client, case, WRITE_OFF, amount="10", reason="x")
    assert response.status_code == 400
    assert CASE_NOT_ACTIVE % {"case": case_name(case), "status": "resolved"} in response.content.decode()


@pytest.mark.parametrize("what", [ESCALATION, SKIP, WRITE_OFF])
def test_a_viewer_cannot_ask(client, viewer, case, what):
    assert ask(client, case, what, reason="x", amount="10").status_code == 403
    assert not Approval.objects.exists()


def test_an_unknown_case_is_not_found(client, collector):
    assert client.post("/cases/999999/requests/skip/", {"skip-reason": "x"}).status_code == 404


def test_htmx_answers_with_the_requests_partial(client, collector, case):
    response = client.post(
        f"/cases/{case.pk}/requests/write-off/",
        {"write_off-amount": "12.50", "write_off-reason": "Rounding dispute"},
        headers={"HX-Request": "true"},
    )
    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page
    assert 'id="case-requests"' in page and "Asked a manager to write off €12.50." in page
    assert "Write off €12.50" in page and "Rounding dispute" in page and "A write-off is already asked." in page
    invalid = client.post(f"/cases/{case.pk}/requests/skip/", {"skip-reason": ""}, headers={"HX-Request": "true"})
    assert invalid.status_code == 400  # static/js/app.js lets htmx swap it in
    assert REASON_REQUIRED in invalid.content.decode() and 'id="case-requests"' in invalid.content.decode()


def test_the_requests_partial_forms_work_without_javascript(client, collector, case):
    page = client.get(f"/cases/{case.pk}/requests/escalation/")
    assert page.status_code == 405  # POST only
    response = ask(client, case, SKIP, reason="")
    page = response.content.decode()
    assert f'action="/cases/{case.pk}/requests/skip/"' in page and 'name="skip-reason"' in page
    assert 'name="csrfmiddlewaretoken"' in page and '<label for="id_skip-reason">' in page


# ---------------------------------------------------------------------------------------------
# Four eyes


def test_a_manager_who_asked_cannot_approve_their_own_request(client, case):
    both = UserFactory(username="boss-and-collector")
    both.groups.add(Group.objects.get(name=COLLECTOR), Group.objects.get(name=MANAGER))
    client.force_login(both)
    ask(client, case, WRITE_OFF, amount="99", reason="Mine")
    approval = Approval.objects.get()
    assert "You asked for this one: another manager decides it." in client.get("/approvals/").content.decode()
    assert SELF_APPROVAL in decide(client, approval)
    approval.refresh_from_db()
    assert approval.status == Approval.Status.PENDING
    assert Case.objects.get().status == Case.Status.OPEN
    other, _ = manager_client("otto")
    assert "Approved: write off €99.00" in decide(other, approval)
    assert Case.objects.get().status == Case.Status.WRITTEN_OFF


# ---------------------------------------------------------------------------------------------
# Stripe hears of a write-off


def test_a_stripe_invoice_written_off_is_marked_uncollectible_at_stripe(
    client, collector, stripe_api, run_jobs, django_capture_on_commit_callbacks
):
    case = case_days_overdue(5, external_id="in_w1", customer__external_id="cus_w1")
    stripe_api.invoices["in_w1"] = stripe_fake.invoice("in_w1", "cus_w1", amount=9_900)
    ask(client, case, WRITE_OFF, amount="99", reason="Customer gone")
    boss, _ = manager_client()
    with django_capture_on_commit_callbacks(execute=True):
        decide(boss, Approval.objects.get())
    run_jobs()
    assert stripe_api.invoices["in_w1"]["status"] == "uncollectible"
    assert ("POST", "/v1/invoices/in_w1/mark_uncollectible", {}) in stripe_api.requests
    assert Customer.objects.get().external_id == "cus_w1"
