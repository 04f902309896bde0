import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from rq.cron import CronScheduler

from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.models import Case, CaseEvent, Policy, Step, StepExecution
from dunning_site.collections.services import (
    case_open,
    case_pause,
    cases_advance_batch,
    cases_open_overdue,
    tick,
)
from dunning_site.collections.tests.factories import PolicyFactory, ladder, standard_policy
from dunning_site.notifications.models import Message

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


def test_running_the_same_tick_twice_sends_nothing_twice(clock, policy, django_capture_on_commit_callbacks, run_jobs):
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            tick()
        run_jobs()
    assert Case.objects.count() == 1
    assert Message.objects.count() == 1
    assert len(mail.outbox) == 1


def test_a_step_recorded_as_performed_is_never_performed_again(clock, policy):
    (case,) = due_cases(1, policy)
    tick()
    case.refresh_from_db()
    # Put the case back on the step it already performed, as a crashed or confused run might.
    Case.objects.filter(pk=case.pk).update(next_step=case.current_step, next_action_at=NOW)
    tick()
    assert Message.objects.count() == 1
    assert StepExecution.objects.filter(case=case).count() == 1
    case.refresh_from_db()
    assert case.next_step.position == 2


def test_each_currency_gets_its_own_case_and_a_new_invoice_joins_the_open_one(clock, policy):
    customer = CustomerFactory()
    overdue = NOW.date() - dt.timedelta(days=5)
    InvoiceFactory(customer=customer, currency="EUR", total=10_000, due_on=overdue)
    InvoiceFactory(customer=customer, currency="EUR", total=5_050, due_on=overdue - dt.timedelta(days=3))
    InvoiceFactory(customer=customer, currency="USD", total=7_000, due_on=overdue)

    assert cases_open_overdue() == 2
    totals = dict(Case.objects.values_list("currency", "amount_overdue"))
    assert totals == {"EUR": 15_050, "USD": 7_000}

    InvoiceFactory(customer=customer, currency="EUR", total=2_000, due_on=overdue + dt.timedelta(days=2))
    assert cases_open_overdue() == 0
    eur = Case.objects.get(currency="EUR")
    assert eur.amount_overdue == 17_050
    assert eur.invoices.count() == 3
    assert CaseEvent.objects.filter(case=eur, type="collections.case.invoice_added").count() == 1


def test_an_invoice_within_its_grace_period_opens_nothing(clock):
    PolicyFactory(grace_days=7)
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=5))
    assert cases_open_overdue() == 0


def test_the_database_allows_one_active_case_per_customer_and_currency(clock, policy):
    (case,) = due_cases(1, policy)
    with pytest.raises(IntegrityError), transaction.atomic():
        Case.objects.create(
            customer=case.customer, currency="EUR", policy=policy, anchor_due_on=NOW.date(), status="paused"
        )


def test_the_policy_is_chosen_by_segment_and_amount(clock):
    fallback = standard_policy(name="Everyone", priority=100)
    key_accounts = standard_policy(name="Key accounts", segment="enterprise", priority=10)
    big = standard_policy(name="Big EUR debts", currency="EUR", min_amount=500_000, priority=20)
    overdue = NOW.date() - dt.timedelta(days=5)
    InvoiceFactory(customer=CustomerFactory(segment="enterprise"), due_on=overdue, total=100)
    InvoiceFactory(customer=CustomerFactory(segment="smb"), due_on=overdue, total=600_000)
    InvoiceFactory(customer=CustomerFactory(segment="smb"), due_on=overdue, total=100)
    cases_open_overdue()
    chosen = dict(Case.objects.values_list("customer__segment", "policy"))
    assert set(Case.objects.values_list("policy", flat=True)) == {fallback.pk, key_accounts.pk, big.pk}
    assert chosen["enterprise"] == key_accounts.pk


def test_a_case_opened_late_starts_at_the_stage_that_fits_its_age(clock, policy):
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=15))
    tick()
    case = Case.objects.get()
    message = Message.objects.get()
    assert message.template.tone == "firm", "a 15-day-old debt gets the day-10 reminder, not the day-3 one"
    assert CaseEvent.objects.filter(case=case, type="collections.step.skipped").count() == 1
    # The final notice (day 20) is not due yet; it comes on its own day.
    assert case.next_step.action == Step.Action.FINAL_NOTICE


def test_a_paused_case_is_not_advanced_until_its_pause_ends(clock, policy):
    (case,) = due_cases(1, policy)
    case_pause(case=case, until=NOW + dt.timedelta(days=3), reason="Promise to pay")
    tick()
    assert Message.objects.count() == 0
    clock.move_to(NOW + dt.timedelta(days=3, minutes=1))
    result = tick()
    assert result.resumed == 1
    assert Message.objects.count() == 1
    types = list(CaseEvent.objects.filter(case=case).values_list("type", flat=True))
    assert "collections.case.paused" in types and "collections.case.resumed" in types


def test_case_events_are_append_only_in_the_database(clock, policy):
    (case,) = due_cases(1, policy)
    event = CaseEvent.objects.filter(case=case).first()
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        CaseEvent.objects.filter(pk=event.pk).update(type="collections.case.tampered")
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        CaseEvent.objects.filter(pk=event.pk).delete()


@pytest.mark.parametrize("count", [10, 200])
def test_a_batch_costs_the_same_queries_for_10_or_200_cases(clock, policy, count, django_assert_max_num_queries):
    due_cases(count, policy)
    with django_assert_max_num_queries(16):
        assert cases_advance_batch(now=NOW, batch_size=count) == count
    assert Message.objects.count() == count
    assert StepExecution.objects.count() == count


def test_cases_not_yet_due_are_never_loaded(clock, policy):
    due_cases(3, policy)
    later = InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=2))
    waiting = case_open(customer=later.customer, currency="EUR", policy=policy, invoices=[later], now=NOW)
    assert waiting.next_action_at > NOW
    with CaptureQueriesContext(connection) as queries:
        assert cases_advance_batch(now=NOW, batch_size=100) == 3
    claim = next(query["sql"] for query in queries.captured_queries if query["sql"].startswith("SELECT"))
    assert '"collections_case"."next_action_at" <=' in claim
    assert 'FOR UPDATE OF "collections_case" SKIP LOCKED' in claim
    waiting.refresh_from_db()
    assert waiting.current_step is None
    assert not StepExecution.objects.filter(case=waiting).exists()


def test_the_operator_command_runs_one_tick(clock, policy, capsys):
    due_cases(2, policy)
    call_command("dunning_tick")
    assert "advanced 2" in capsys.readouterr().out
    assert Message.objects.count() == 2


def test_the_tick_is_registered_with_rq_cron_every_minute(redis_connection):
    scheduler = CronScheduler(connection=redis_connection)
    scheduler.load_config_from_file("dunning_site.jobs")
    jobs = {job.func_name: job for job in scheduler.get_jobs()}
    assert jobs["dunning_site.collections.jobs.tick"].cron == "* * * * *"
    assert jobs["dunning_site.collections.jobs.tick"].queue_name == "default"
    assert "dunning_site.notifications.jobs.sweep" in jobs


def test_steps_without_messages_change_the_case(clock):
    policy = PolicyFactory()
    ladder(policy, (3, Step.Action.SUSPEND_SERVICE, "final", False), (5, Step.Action.RETRY_PAYMENT, "final", False))
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4))
    tick()
    case = Case.objects.get()
    assert case.service_suspended
    assert CaseEvent.objects.filter(case=case, type="collections.case.suspended").exists()
