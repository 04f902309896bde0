"""The ladder and the tick: cases opened for overdue invoices, due steps performed once, in batches whose
queries do not grow with the batch, and one broken case never stopping the others."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rq.cron import CronScheduler

from dunning_site.accounts.models import Customer
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.case_core import case_open, case_pause
from dunning_site.collections.jobs import tick as tick_job
from dunning_site.collections.ladder import cases_advance_batch, cases_open_overdue
from dunning_site.collections.models import Case, CaseEvent, Policy, Step, StepExecution
from dunning_site.collections.tests.factories import PolicyFactory, ladder, standard_policy
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message, MessageTemplate

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


@pytest.mark.parametrize("count", [10, 200])
def test_a_batch_costs_the_same_queries_for_10_or_200_cases(clock, policy, count, django_assert_max_num_queries):
    due_cases(count, policy)
    # 19: the batch's reads and writes, and (3, in a savepoint) cancelling the asks its reminders replace.
    with django_assert_max_num_queries(19):
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


# ---------------------------------------------------------------------------------------------
# One broken case never stops the engine


def broken(case: Case) -> Case:
    """A case first in line whose data breaks the engine, as an old row or a hand edit might: its
    ladder counts from a day so late in the calendar that its next step's day is past year 9999."""
    Case.objects.filter(pk=case.pk).update(
        anchor_due_on=dt.date(9999, 12, 25), next_action_at=NOW - dt.timedelta(hours=2)
    )
    return case


def test_a_case_whose_step_raises_is_set_aside_and_every_other_case_advances(clock, policy, caplog):
    cases = due_cases(5, policy)
    bad = broken(cases[2])

    result = tick(batch_size=2)  # the broken case spoils the first batch, shared with another case

    assert (result.advanced, result.failed) == (4, 1)
    assert result.failures == [f"case {bad.pk}: OverflowError: date value out of range"]
    assert Message.objects.count() == 4
    assert StepExecution.objects.count() == 4
    assert not StepExecution.objects.filter(case=bad).exists()
    assert set(StepExecution.objects.values_list("case_id", flat=True)) == {c.pk for c in cases} - {bad.pk}
    bad.refresh_from_db()
    assert (bad.status, bad.next_action_at, bad.current_step) == (Case.Status.OPEN, NOW + dt.timedelta(hours=1), None)
    event = CaseEvent.objects.get(case=bad, type="collections.step.failed")
    assert event.data["error"] == "OverflowError: date value out of range"
    assert event.data["step"] == "Day 3: Reminder (Email)"
    assert event.data["reason"] == (
        "The engine could not perform this step (OverflowError: date value out of range); "
        "it tries again at 2026-03-02 13:00 UTC."
    )
    (logged,) = [record for record in caplog.records if record.levelname == "ERROR"]
    assert f"Case {bad.pk}" in logged.getMessage() and logged.exc_info[0] is OverflowError

    # The next ticks leave it alone for an hour, then try it once more.
    again = tick()
    assert (again.advanced, again.failed) == (0, 0)
    clock.move_to(NOW + dt.timedelta(hours=1))
    later = tick()
    assert (later.advanced, later.failed) == (0, 1)
    assert CaseEvent.objects.filter(case=bad, type="collections.step.failed").count() == 2
    assert StepExecution.objects.count() == 4


def test_a_message_refused_when_the_batch_is_written_sets_aside_only_its_own_case(clock, policy):
    """A fault in the batch's bulk writes, not in one case's own work: the batch is done again case by case."""
    first_step = policy.steps.get(position=1)
    MessageTemplate.objects.filter(pk=first_step.template_id).update(
        subject="{{ customer_name }}, {{ customer_name }}: {{ total_overdue }} overdue"
    )
    cases = due_cases(3, policy)
    # A name that fits its column, but twice over makes a subject longer than a message's 255 characters.
    Customer.objects.filter(pk=cases[1].customer_id).update(name="N" * 150)

    result = tick()

    assert (result.advanced, result.failed) == (2, 1)
    assert result.failures[0].startswith(f"case {cases[1].pk}: ValidationError")
    assert "subject" in result.failures[0]
    assert set(StepExecution.objects.values_list("case_id", flat=True)) == {cases[0].pk, cases[2].pk}
    assert Message.objects.count() == 2
    assert CaseEvent.objects.filter(case=cases[1], type="collections.step.failed").count() == 1


def test_a_customer_whose_case_cannot_be_opened_does_not_stop_the_others(clock, policy, caplog):
    overdue = NOW.date() - dt.timedelta(days=4)
    lost = CustomerFactory(name="Atlantis Ltd")
    # A zone name of the right shape that the time zone database no longer knows.
    Customer.objects.filter(pk=lost.pk).update(time_zone="Europe/Atlantis")
    for customer in (CustomerFactory(), lost, CustomerFactory()):
        InvoiceFactory(customer=customer, due_on=overdue)

    result = tick()

    assert (result.opened, result.failed) == (2, 1)
    assert result.failures[0].startswith(f"customer {lost.pk} (EUR): ZoneInfoNotFoundError")
    assert not Case.objects.filter(customer=lost).exists()
    assert Case.objects.count() == 2 and Message.objects.count() == 2
    (logged,) = [record for record in caplog.records if record.levelname == "ERROR"]
    assert f"customer {lost.pk}" in logged.getMessage()


def test_an_invoice_that_cannot_join_its_case_says_so_once_on_the_timeline(clock, policy):
    (case,) = due_cases(1, policy)
    other = due_cases(1, policy)[0]
    # What entered dunning is already as large as the column holds: adding the new invoice overflows it.
    Case.objects.filter(pk=case.pk).update(entered_amount=2**63 - 1)
    InvoiceFactory(customer=case.customer, due_on=NOW.date() - dt.timedelta(days=2))
    InvoiceFactory(customer=other.customer, due_on=NOW.date() - dt.timedelta(days=2))

    for _ in range(2):
        result = tick()
        assert result.failed == 1
        assert result.failures[0].startswith(f"customer {case.customer_id} (EUR): DataError")

    (event,) = CaseEvent.objects.filter(case=case, type="collections.case.join_failed")
    assert event.data["reason"].startswith("New overdue invoices could not be added to this case (DataError")
    assert case.invoices.count() == 1
    assert other.invoices.count() == 2, "the other customer's new invoice joined their case"


def test_the_operator_command_and_the_tick_job_report_the_cases_set_aside(clock, policy, capsys):
    cases = due_cases(2, policy)
    bad = broken(cases[0])
    call_command("dunning_tick")
    output = capsys.readouterr()
    assert "advanced 1, failed 1." in output.out
    assert f"Failed: case {bad.pk}: OverflowError: date value out of range" in output.err

    clock.move_to(NOW + dt.timedelta(hours=1))
    assert tick_job() | {"failures": None} == {
        "opened": 0,
        "resumed": 0,
        "advanced": 0,
        "retried": 0,
        "failed": 1,
        "failures": None,
    }
