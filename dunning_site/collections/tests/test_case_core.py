"""The case core: one active case per customer and currency, an append-only timeline, holds within
their horizon, and a case that cannot be resumed set aside without stopping the others."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from dunning_site.accounts.models import Customer
from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.case_core import HOLD_HORIZON, HOLD_TOO_FAR, case_open, case_pause
from dunning_site.collections.models import Case, CaseEvent, Policy
from dunning_site.collections.promises import promise_record
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def policy():
    return standard_policy()


def due_cases(count: int, policy: Policy) -> list[Case]:
    """`count` open cases whose first reminder is due now, each with one overdue invoice."""
    cases = []
    for _ in range(count):
        invoice = InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4))
        cases.append(case_open(customer=invoice.customer, currency="EUR", policy=policy, invoices=[invoice], now=NOW))
    return cases


def test_the_database_allows_one_active_case_per_customer_and_currency(clock, policy):
    (case,) = due_cases(1, policy)
    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.create(
            customer=case.customer, currency="EUR", policy=policy, anchor_due_on=NOW.date(), status="paused"
        )


def test_case_events_are_append_only_in_the_database(clock, policy):
    (case,) = due_cases(1, policy)
    event = CaseEvent.objects.filter(case=case).first()
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        CaseEvent.objects.filter(pk=event.pk).update(type="collections.case.tampered")
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        CaseEvent.objects.filter(pk=event.pk).delete()


def test_a_case_that_cannot_be_resumed_stays_on_hold_an_hour_and_the_others_resume(clock, policy):
    stuck, fine = due_cases(2, policy)
    for case in (stuck, fine):
        case_pause(case=case, until=NOW + dt.timedelta(days=1), reason="Waiting for the audit")
    Case.objects.filter(pk__in=[stuck.pk, fine.pk]).update(paused_until=NOW - dt.timedelta(minutes=1))
    Customer.objects.filter(pk=stuck.customer_id).update(time_zone="Europe/Atlantis")

    result = tick()

    assert (result.resumed, result.failed) == (1, 1)
    stuck.refresh_from_db()
    fine.refresh_from_db()
    assert fine.status == Case.Status.OPEN
    assert (stuck.status, stuck.paused_until) == (Case.Status.PAUSED, NOW + dt.timedelta(hours=1))
    assert CaseEvent.objects.filter(case=stuck, type="collections.case.resume_failed").count() == 1
    assert tick().failed == 0, "not tried again within the hour"


def test_a_hold_ends_at_most_90_days_ahead_and_a_promise_as_far_as_its_policy_allows(clock, policy):
    Policy.objects.filter(pk=policy.pk).update(max_promise_days=200)
    held, promised = due_cases(2, policy)
    with pytest.raises(ValidationError) as refused:
        case_pause(case=held, until=dt.datetime(9999, 12, 31, tzinfo=dt.UTC), reason="Audit")
    assert refused.value.message_dict == {"paused_until": [HOLD_TOO_FAR % {"days": 90, "latest": "Sun 31 May 2026"}]}
    held.refresh_from_db()
    assert held.status == Case.Status.OPEN

    case_pause(case=held, until=NOW + HOLD_HORIZON, reason="Audit")
    promise_record(source="case_page", case=promised, promised_on=NOW.date() + dt.timedelta(days=200), amount=100)
    assert set(Case.objects.values_list("status", flat=True)) == {Case.Status.PAUSED}
    promised.refresh_from_db()
    assert promised.paused_until == dt.datetime(2026, 9, 19, tzinfo=dt.UTC)
