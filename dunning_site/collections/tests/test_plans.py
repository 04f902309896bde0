"""Payment plans through their services: a collector's offer, a customer's choice within and outside the
policy's self-serve limits, a manager's four-eyes decision, the customer's acceptance and the hold it puts
on the case, cancellation, the end of a plan with its case, and the database's own rules."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from dunning_site.accounts.models import Payment
from dunning_site.accounts.services import payment_record
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from dunning_site.collections.approvals import SELF_APPROVAL, approval_decide
from dunning_site.collections.case_core import case_pause
from dunning_site.collections.holds import instalment_may_charge, is_plan, retry_may_charge
from dunning_site.collections.models import (
    Approval,
    Case,
    CaseEvent,
    Instalment,
    PaymentPlan,
    PaymentRetry,
    Policy,
)
from dunning_site.collections.plan_schedule import PLAN_TOO_LARGE, TOO_MANY_INSTALMENTS
from dunning_site.collections.plans import (
    PLAN_ABOVE_OWED,
    PLAN_ALREADY_CURRENT,
    PLAN_DURING_DISPUTE,
    PLAN_FIRST_DATE_IN_PAST,
    PLAN_NOT_OFFERED,
    PLAN_TERMS_CHANGED,
    plan_accept,
    plan_cancel,
    plan_offer,
    plan_request_by_customer,
)
from dunning_site.collections.roles import COLLECTOR, MANAGER
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db

# Monday 16 March 2026, 10:00 UTC. The case owes €900.00 (one invoice, five days overdue); the policy's
# self-serve limits are the defaults: 6 instalments of at least €20.00, the last within 180 days.
NOW = dt.datetime(2026, 3, 16, 10, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def case() -> Case:
    standard_policy()
    customer = CustomerFactory(name="Ada Lovelace")
    InvoiceFactory(customer=customer, number="INV-1", due_on=TODAY - dt.timedelta(days=5), total=90_000)
    tick()
    return customer.cases.get()


def staff(username: str, role: str):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def collector():
    return staff("grace", COLLECTOR)


@pytest.fixture
def manager():
    return staff("maria", MANAGER)


def three_monthly(**overrides) -> dict:
    return {"total": 90_000, "instalment_count": 3, "interval": "monthly", "first_date": TODAY} | overrides


def customer_asks(case: Case, **overrides) -> PaymentPlan:
    return plan_request_by_customer(case=case, ip="203.0.113.7", user_agent=BROWSER, **three_monthly(**overrides))


def event_types(case: Case) -> list[str]:
    return list(CaseEvent.objects.filter(case=case).order_by("at", "pk").values_list("type", flat=True))


# ---------------------------------------------------------------------------------------------
# A collector's offer


def test_a_collectors_offer_within_the_limits_waits_for_the_customer(case, collector):
    plan = plan_offer(case=case, user=collector, **three_monthly(down_payment=10_000, fee=1_000))
    assert plan.status == PaymentPlan.Status.OFFERED
    assert (plan.source, plan.offered_by, plan.currency) == (PaymentPlan.Source.COLLECTOR, collector, "EUR")
    assert [(i.number, i.due_on, i.amount) for i in plan.instalments.order_by("number")] == [
        (0, TODAY, 10_000),
        (1, dt.date(2026, 4, 16), 27_000),
        (2, dt.date(2026, 5, 16), 27_000),
        (3, dt.date(2026, 6, 16), 27_000),
    ]
    event = CaseEvent.objects.get(case=case, type="collections.plan.offered")
    assert (event.user, event.data["plan_id"], event.data["terms"]["fee"]) == (collector, plan.pk, 1_000)
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN  # nothing is held until the customer accepts
    assert not Approval.objects.filter(kind=Approval.Kind.PLAN).exists()


def test_a_collectors_offer_is_not_held_by_the_self_serve_amount(case, collector):
    Policy.objects.update(plan_self_serve_max_amount=50_000)
    assert plan_offer(case=case, user=collector, **three_monthly()).status == PaymentPlan.Status.OFFERED


def test_a_collectors_offer_outside_the_limits_goes_to_a_manager_first(case, collector):
    plan = plan_offer(
        case=case, user=collector, reason="Seasonal business", **three_monthly(instalment_count=9, interval="weekly")
    )
    assert plan.status == PaymentPlan.Status.REQUESTED
    approval = Approval.objects.get(kind=Approval.Kind.PLAN)
    assert (approval.plan, approval.requested_by, approval.reason) == (plan, collector, "Seasonal business")
    event = CaseEvent.objects.get(case=case, type="collections.plan.requested")
    assert event.data["outside_limits"] == {"instalment_count": TOO_MANY_INSTALMENTS % {"limit": 6}}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"total": 90_001}, "total", PLAN_ABOVE_OWED % {"owed": "€900.00"}),
        ({"first_date": TODAY - dt.timedelta(days=1)}, "first_date", PLAN_FIRST_DATE_IN_PAST),
    ],
)
def test_terms_nobody_can_approve_are_refused_on_their_field(case, collector, overrides, field, message):
    with pytest.raises(ValidationError) as refused:
        plan_offer(case=case, user=collector, **three_monthly(**overrides))
    assert refused.value.message_dict == {field: [message]}
    assert not PaymentPlan.objects.exists()


def test_a_case_has_one_current_plan(case, collector):
    plan_offer(case=case, user=collector, **three_monthly())
    with pytest.raises(ValidationError) as refused:
        plan_offer(case=case, user=collector, **three_monthly(instalment_count=2))
    assert refused.value.messages == [PLAN_ALREADY_CURRENT % {"case": "Ada Lovelace (EUR)", "status": "offered"}]


def test_no_plan_is_made_while_the_customer_disputes(case, collector):
    case_pause(case=case, until=None, reason="dispute", user=collector)
    with pytest.raises(ValidationError) as refused:
        plan_offer(case=case, user=collector, **three_monthly())
    assert refused.value.messages == [PLAN_DURING_DISPUTE % {"case": "Ada Lovelace (EUR)"}]


# ---------------------------------------------------------------------------------------------
# A customer's own choice


def test_a_customers_plan_within_the_limits_is_accepted_at_once_and_holds_the_case(case):
    plan = customer_asks(case)
    assert plan.status == PaymentPlan.Status.ACTIVE
    assert (plan.accepted_at, plan.accepted_ip, plan.accepted_user_agent) == (NOW, "203.0.113.7", BROWSER)
    assert [p["amount"] for p in plan.terms_shown["schedule"]] == [30_000, 30_000, 30_000]
    case.refresh_from_db()
    assert case.status == Case.Status.PAUSED and is_plan(case.pause_reason)
    # Held like a promise: until the last instalment (16 May) plus the policy's 5 days' grace.
    assert case.paused_until == dt.datetime(2026, 5, 22, tzinfo=dt.UTC)
    assert event_types(case)[-3:] == [
        "collections.plan.offered",
        "collections.plan.accepted",
        "collections.case.paused",
    ]
    accepted = CaseEvent.objects.get(case=case, type="collections.plan.accepted")
    assert accepted.actor == CaseEvent.Actor.CUSTOMER


@pytest.mark.parametrize(
    ("policy", "overrides", "outside"),
    [
        ({}, {"instalment_count": 7, "interval": "weekly"}, {"instalment_count": TOO_MANY_INSTALMENTS % {"limit": 6}}),
        ({"plan_self_serve_max_amount": 50_000}, {}, {"total": PLAN_TOO_LARGE % {"limit": "€500.00"}}),
    ],
)
def test_a_customers_plan_outside_the_limits_or_above_the_amount_waits_for_a_manager(case, policy, overrides, outside):
    Policy.objects.update(**policy)
    plan = customer_asks(case, **overrides)
    assert plan.status == PaymentPlan.Status.REQUESTED and plan.accepted_at is None
    approval = Approval.objects.get(kind=Approval.Kind.PLAN, status=Approval.Status.PENDING)
    assert (approval.plan, approval.requested_by) == (plan, None)
    requested = CaseEvent.objects.get(case=case, type="collections.plan.requested")
    assert (requested.actor, requested.data["outside_limits"]) == (CaseEvent.Actor.CUSTOMER, outside)
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN


def test_approved_the_plan_is_offered_and_the_customer_accepts_it(case, manager):
    plan = customer_asks(case, instalment_count=7)
    approval_decide(approval=Approval.objects.get(plan=plan), approve=True, user=manager, note="Fine")
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.OFFERED
    with pytest.raises(ValidationError) as refused:
        plan_accept(plan=plan, ip="203.0.113.7", user_agent=BROWSER, terms_shown={"currency": "EUR", "schedule": []})
    assert refused.value.messages == [PLAN_TERMS_CHANGED]
    shown = {
        "currency": "EUR",
        "schedule": [{"due_on": i.due_on.isoformat(), "amount": i.amount} for i in plan.instalments.order_by("number")],
    }
    plan = plan_accept(plan=plan, ip="2001:db8::1", user_agent=BROWSER, terms_shown=shown)
    assert (plan.status, plan.accepted_ip, plan.terms_shown) == (PaymentPlan.Status.ACTIVE, "2001:db8::1", shown)
    case.refresh_from_db()
    assert case.status == Case.Status.PAUSED
    assert "collections.approval.approved" in event_types(case)
    with pytest.raises(ValidationError) as again:
        plan_accept(plan=plan, ip=None, user_agent="")
    assert again.value.messages == [PLAN_NOT_OFFERED % {"status": "active"}]


def test_rejected_the_plan_ends_and_the_ladder_goes_on(case, manager):
    plan = customer_asks(case, instalment_count=7)
    approval_decide(approval=Approval.objects.get(plan=plan), approve=False, user=manager)
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.REJECTED
    assert set(plan.instalments.values_list("status", flat=True)) == {Instalment.Status.CANCELLED}
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    assert customer_asks(case).status == PaymentPlan.Status.ACTIVE  # a new choice is possible


def test_nobody_approves_their_own_plan(case):
    boss = staff("boss", MANAGER)
    plan = plan_offer(case=case, user=boss, **three_monthly(instalment_count=12))
    with pytest.raises(ValidationError) as refused:
        approval_decide(approval=Approval.objects.get(plan=plan), approve=True, user=boss)
    assert refused.value.messages == [SELF_APPROVAL]


# ---------------------------------------------------------------------------------------------
# The hold, cancellation, the end of the case


def test_the_plans_hold_lets_instalments_be_charged_but_not_other_retries(case):
    customer_asks(case)
    invoice = case.invoices.get()
    instalment_retry = PaymentRetry.objects.create(
        invoice=invoice, case=case, scheduled_for=NOW, decision="plan_instalment", reason="Instalment 1", attempt=1
    )
    assert retry_may_charge(retry=instalment_retry, now=NOW)
    assert instalment_may_charge(customer_id=case.customer_id, at=NOW)
    PaymentRetry.objects.filter(pk=instalment_retry.pk).update(status=PaymentRetry.Status.SUCCEEDED)
    other = PaymentRetry.objects.create(
        invoice=invoice, case=case, scheduled_for=NOW, decision="insufficient_funds", reason="Payday", attempt=2
    )
    assert not retry_may_charge(retry=other, now=NOW)
    other.refresh_from_db()
    assert other.scheduled_for > dt.datetime(2026, 5, 22, tzinfo=dt.UTC)  # waits for the end of the plan's hold


def test_a_dispute_stops_instalments_too(case, collector):
    customer_asks(case)
    case_pause(case=case, until=None, reason="dispute", user=collector, replace_hold=True)
    assert not instalment_may_charge(customer_id=case.customer_id, at=NOW)


def test_cancelling_an_active_plan_resumes_the_ladder(case, collector):
    plan = plan_cancel(plan=customer_asks(case), user=collector, reason="Customer asked")
    assert plan.status == PaymentPlan.Status.CANCELLED
    assert set(plan.instalments.values_list("status", flat=True)) == {Instalment.Status.CANCELLED}
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN and case.pause_reason == ""
    assert event_types(case)[-2:] == ["collections.plan.cancelled", "collections.case.resumed"]


def test_cancelling_a_requested_plan_withdraws_its_approval(case, collector):
    plan = plan_cancel(plan=customer_asks(case, instalment_count=8), user=collector)
    assert Approval.objects.get(plan=plan).status == Approval.Status.CANCELLED


def test_paid_in_full_the_case_resolves_and_its_plan_completes(case):
    plan = customer_asks(case)
    payment_record(invoice=case.invoices.get(), amount=90_000, method=Payment.Method.BANK_TRANSFER, at=NOW)
    case.refresh_from_db()
    plan.refresh_from_db()
    assert (case.status, plan.status) == (Case.Status.RESOLVED, PaymentPlan.Status.COMPLETED)
    assert set(plan.instalments.values_list("status", flat=True)) == {Instalment.Status.CANCELLED}


# ---------------------------------------------------------------------------------------------
# The database's own rules


def test_the_database_keeps_one_current_plan_per_case_and_positive_amounts(case, collector):
    plan = plan_offer(case=case, user=collector, **three_monthly())
    fields = {"case": case, "customer": case.customer, "currency": "EUR", "interval": "monthly", "first_date": TODAY}
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentPlan.objects.create(total=100, instalment_count=1, source="customer", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentPlan.objects.create(total=0, instalment_count=1, source="customer", status="cancelled", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentPlan.objects.create(
            total=100, down_payment=100, instalment_count=1, source="customer", status="cancelled", **fields
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentPlan.objects.create(total=100, instalment_count=1, source="customer", status="active", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Instalment.objects.create(plan=plan, number=4, due_on=TODAY, amount=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Instalment.objects.create(plan=plan, number=1, due_on=TODAY, amount=10)
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(case=case, kind=Approval.Kind.PLAN)  # a plan request names its plan


@pytest.mark.parametrize(
    "values",
    [
        {"plan_max_instalments": 0},
        {"plan_max_instalments": 61},
        {"plan_min_instalment": -1},
        {"plan_self_serve_max_amount": -1},
        {"plan_max_days": 0},
        {"plan_grace_days": 3651},
        {"plan_min_down_payment_percent": 100},
    ],
)
def test_the_database_keeps_the_policys_plan_limits_in_range(values):
    policy = standard_policy()
    with pytest.raises(IntegrityError), transaction.atomic():
        Policy.objects.filter(pk=policy.pk).update(**values)


def test_a_defaulted_plan_resumes_on_a_step_of_the_policys_own_ladder():
    policy, other = standard_policy(), standard_policy()
    policy.plan_default_step = other.steps.first()
    with pytest.raises(ValidationError) as refused:
        policy.full_clean()
    assert "plan_default_step" in refused.value.message_dict
    policy.plan_default_step = policy.steps.get(position=2)
    policy.full_clean()
