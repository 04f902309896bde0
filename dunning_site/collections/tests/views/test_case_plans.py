"""A collector offers a payment plan from the case page (terms, a preview of the schedule, send), a
manager decides terms outside the policy's limits in the approvals queue, and the plan shows on the case."""

import datetime as dt

import pytest
from django.utils.html import escape

from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.models import Approval, Case, PaymentPlan, Policy
from dunning_site.collections.plan_schedule import TOO_MANY_INSTALMENTS
from dunning_site.collections.plans import PLAN_ABOVE_OWED, PLAN_FIRST_DATE_IN_PAST, plan_request_by_customer
from dunning_site.collections.roles import MANAGER
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.conftest import signed_in
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.tick import tick
from dunning_site.collections.views.case_plans import PLAN_CANCELLED, PLAN_OFFERED, PLAN_REQUESTED

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
TODAY = NOW.date()


@pytest.fixture
def case() -> Case:
    """€100.00 five days overdue, on a policy with the default plan limits (6 instalments of €20.00 at least)."""
    standard_policy()
    customer = CustomerFactory(name="Ada Lovelace")
    InvoiceFactory(customer=customer, number="INV-1", due_on=TODAY - dt.timedelta(days=5), total=10_000)
    tick()
    return customer.cases.get()


def terms(**overrides) -> dict:
    return {
        "total": "100.00",
        "instalment_count": "3",
        "interval": "monthly",
        "first_date": "2026-03-31",
        "down_payment": "0",
        "fee": "0",
        "reason": "",
    } | overrides


def page(response) -> str:
    return response.content.decode()


def test_the_offer_form_starts_at_what_is_owed(client, collector, case):
    html = page(client.get(f"/cases/{case.pk}/"))
    assert "Offer a payment plan" in html
    assert 'name="total" value="100.00"' in html
    assert 'name="first_date" value="2026-03-16"' in html


def test_preview_shows_the_schedule_and_stores_nothing(client, collector, case):
    response = client.post(f"/cases/{case.pk}/plans/", terms(action="preview"))
    assert response.status_code == 200
    html = page(response)
    # From 31 March, monthly: 30 April, then 31 May; the first instalment carries the odd cent.
    assert "€33.34" in html and html.count("€33.33") == 2
    assert "30 Apr" in html and "31 May" in html
    assert "Send to the customer" in html
    assert not PaymentPlan.objects.exists()


def test_preview_in_place_with_htmx(client, collector, case):
    response = client.post(f"/cases/{case.pk}/plans/", terms(action="preview", down_payment="10"), **HTMX)
    assert response.status_code == 200
    html = page(response)
    assert html.lstrip().startswith('<div id="case-main"')
    assert "Down payment" in html and "€10.00" in html and html.count("€30.00") == 3


def test_send_offers_the_plan_and_the_case_page_shows_it(client, collector, case):
    response = client.post(f"/cases/{case.pk}/plans/", terms(action="send"), follow=True)
    assert response.redirect_chain == [(f"/cases/{case.pk}/", 302)]
    plan = PaymentPlan.objects.get()
    assert (plan.status, plan.offered_by, plan.total, plan.first_date) == (
        PaymentPlan.Status.OFFERED,
        collector,
        10_000,
        dt.date(2026, 3, 31),
    )
    html = page(response)
    assert escape(PLAN_OFFERED % {"count": 3, "total": "€100.00"}) in html
    assert 'id="current-plan"' in html and "The customer's page cannot take a plan yet" in html
    assert "Instalment 3" in html and "Offer a payment plan" not in html  # one current plan at a time
    assert "Plan offered" in html  # on the timeline


def test_terms_outside_the_limits_go_to_a_manager_who_approves_them(client, collector, case):
    response = client.post(
        f"/cases/{case.pk}/plans/", terms(action="preview", instalment_count="8", interval="weekly", total="80")
    )
    html = page(response)
    assert escape(TOO_MANY_INSTALMENTS % {"limit": 6}) in html
    assert "Send to a manager for approval" in html
    response = client.post(
        f"/cases/{case.pk}/plans/",
        terms(action="send", instalment_count="8", interval="weekly", total="80", reason="Seasonal"),
        follow=True,
    )
    problems = TOO_MANY_INSTALMENTS % {"limit": 6}
    assert escape(PLAN_REQUESTED % {"problems": problems}) in page(response)
    plan = PaymentPlan.objects.get()
    assert plan.status == PaymentPlan.Status.REQUESTED

    manager = signed_in(client, MANAGER, "maria")
    queue = page(client.get("/approvals/"))
    assert "Payment plan" in queue and "€80.00 in 8 weekly instalments" in queue and "“Seasonal”" in queue
    approval = Approval.objects.get(plan=plan)
    response = client.post(f"/approvals/{approval.pk}/decide/", {"decision": "approve"}, follow=True)
    assert "Approved: the payment plan of €80.00" in page(response)
    plan.refresh_from_db()
    approval.refresh_from_db()
    assert (plan.status, approval.decided_by) == (PaymentPlan.Status.OFFERED, manager)


def test_the_approvals_queue_says_the_customer_asked(client, case):
    plan_request_by_customer(
        case=case, total=10_000, instalment_count=8, interval="weekly", first_date=TODAY, ip=None, user_agent=""
    )
    signed_in(client, MANAGER, "maria")
    assert "by the customer" in page(client.get("/approvals/"))
    html = page(client.get(f"/cases/{case.pk}/"))
    assert "Waiting for a manager's approval: a payment plan outside the policy" in html
    assert "A payment plan outside the policy's limits</strong>" in html and "asked by the customer" in html


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"total": "100.01"}, "total", PLAN_ABOVE_OWED % {"owed": "€100.00"}),
        ({"first_date": "2026-03-15"}, "first_date", PLAN_FIRST_DATE_IN_PAST),
    ],
)
def test_impossible_terms_are_shown_on_their_field(client, collector, case, overrides, field, message):
    response = client.post(f"/cases/{case.pk}/plans/", terms(action="send", **overrides))
    assert response.status_code == 400
    assert escape(message) in page(response)
    assert not PaymentPlan.objects.exists()


def test_a_customers_active_plan_shows_with_the_hold_and_can_be_cancelled(client, collector, case):
    plan = plan_request_by_customer(
        case=case,
        total=10_000,
        instalment_count=2,
        interval="monthly",
        first_date=TODAY,
        ip="203.0.113.7",
        user_agent="",
    )
    html = page(client.get(f"/cases/{case.pk}/"))
    assert "<strong>Active</strong>" in html and "chosen by the customer" in html
    assert "Payment plan: 2 payments, the last on 16 Apr" in html  # the hold's reason
    assert "Until then only the plan's instalments are charged" in html
    assert "Cancel the plan (below) to resume the ladder" in html and "Resume the case" not in html
    response = client.post(f"/cases/{case.pk}/plans/{plan.pk}/cancel/", follow=True)
    assert escape(PLAN_CANCELLED) in page(response)
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN


def test_viewers_cannot_offer_plans(client, viewer, case):
    assert client.post(f"/cases/{case.pk}/plans/", terms(action="send")).status_code == 403
    assert "Offer a payment plan" not in page(client.get(f"/cases/{case.pk}/"))
    assert not PaymentPlan.objects.exists()


def test_the_policy_page_edits_the_plan_limits(client, manager):
    policy = standard_policy()
    html = page(client.get(f"/policies/{policy.pk}/"))
    assert "Plans: instalments at most" in html and "Plans: a defaulted plan resumes at" in html
    assert Policy._meta.get_field("plan_self_serve_max_amount").help_text.split(";")[0] in html.replace("&#x27;", "'")


@pytest.mark.parametrize("count", [2, 12])
def test_the_queue_costs_the_same_queries_for_few_or_many_plans(client, count, django_assert_max_num_queries):
    standard_policy()
    for _ in range(count):
        InvoiceFactory(due_on=TODAY - dt.timedelta(days=5), total=10_000)
    tick()
    for case in Case.objects.all():
        plan_request_by_customer(
            case=case, total=10_000, instalment_count=8, interval="weekly", first_date=TODAY, ip=None, user_agent=""
        )
    signed_in(client, MANAGER, "maria")
    with django_assert_max_num_queries(10):
        response = client.get("/approvals/")
    assert page(response).count("Instalment 8") == count
