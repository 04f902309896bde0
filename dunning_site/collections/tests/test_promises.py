"""Promises to pay as records: made on the case page or a call, held until the day after the promised day,
then settled at the tick by what was paid since — kept (resolved, or the ladder goes on for the rest),
partly kept, broken (escalated at that tick, on the collector's worklist) — and the policy's limit of
broken promises for the portal. Also the data migration that turns the old promise holds into records."""

import datetime as dt
import importlib
from pathlib import Path

import pytest
import time_machine
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections import migrations as collection_migrations
from dunning_site.collections.case_core import case_assign, case_pause
from dunning_site.collections.models import Case, CaseEvent, Policy, Promise, StepExecution
from dunning_site.collections.promises import (
    PROMISE_NOT_OFFERED,
    REPLACED_BY_A_NEW_PROMISE,
    RESUMED_BEFORE_THE_DAY,
    promise_allowed,
    promise_record,
)
from dunning_site.collections.roles import COLLECTOR
from dunning_site.collections.selectors import worklist_counts
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.conftest import signed_in
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message

pytestmark = pytest.mark.django_db

# Monday 2 March 2026, noon UTC. The case's invoice (€100.00) fell due on 26 February: the day-3 reminder
# has gone, the day-10 firm reminder is due on 8 March. Promises are made for Thursday 5 March: the hold
# ends at the start of Friday 6 March (UTC).
NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
PROMISED_ON = dt.date(2026, 3, 5)
HOLD_ENDS = dt.datetime(2026, 3, 6, 0, 0, tzinfo=dt.UTC)
AFTER_THE_HOLD = HOLD_ENDS + dt.timedelta(minutes=1)
FIRM_REMINDER_DUE = dt.datetime(2026, 3, 8, 8, 0, tzinfo=dt.UTC)  # its day, 09:00 in Paris


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def collector(client):
    return signed_in(client, COLLECTOR, "grace", first_name="Grace")


@pytest.fixture
def case(clock, collector) -> Case:
    standard_policy()
    customer = CustomerFactory(name="Ada Lovelace", time_zone="Europe/Paris")
    InvoiceFactory(customer=customer, number="INV-1", due_on=NOW.date() - dt.timedelta(days=4), total=10_000)
    tick()
    case = customer.cases.get()
    case_assign(case=case, assignee=collector)
    return case


def promise_on_the_case_page(client, case: Case, amount: str, reason: str = "", on: dt.date = PROMISED_ON):
    response = client.post(
        f"/cases/{case.pk}/pause/",
        {"kind": "promise", "promised_on": on.isoformat(), "promised_amount": amount, "reason": reason},
    )
    assert response.status_code == 302, response.content.decode()
    return Promise.objects.get(case=case, status=Promise.Status.PENDING)


def pay_on_the_case_page(client, case: Case, amount: str) -> None:
    invoice = case.invoices.get()
    response = client.post(
        f"/cases/{case.pk}/payments/",
        {
            "invoice": invoice.pk,
            "method": "bank_transfer",
            "amount": amount,
            "paid_on": timezone.localdate().isoformat(),
        },
    )
    assert response.status_code == 302, response.content.decode()


def page(client, url: str) -> str:
    return client.get(url).content.decode()


# ---------------------------------------------------------------------------------------------
# Made


def test_a_promise_on_the_case_page_is_a_record_with_what_the_customer_said(client, collector, case):
    promise = promise_on_the_case_page(client, case, "60.00", reason="Paying after payroll on Thursday")
    assert (promise.promised_on, promise.amount, promise.currency) == (PROMISED_ON, 6_000, "EUR")
    assert (promise.source, promise.reason, promise.created_by) == (
        "case_page",
        "Paying after payroll on Thursday",
        collector,
    )
    case.refresh_from_db()
    assert (case.status, case.paused_until) == (Case.Status.PAUSED, HOLD_ENDS)
    made = CaseEvent.objects.get(case=case, type="collections.promise.made")
    assert made.data["note"] == "Paying after payroll on Thursday" and made.user == collector
    shown = page(client, f"/cases/{case.pk}/")
    assert "Promises to pay" in shown and "“Paying after payroll on Thursday”" in shown
    assert "Case page, 2 Mar" in shown and "Pending" in shown
    assert "Promise to pay recorded" in shown  # the timeline


def test_a_promise_on_a_call_records_source_call_and_the_note(client, collector, case):
    call = Message.objects.create(
        customer=case.customer,
        channel="call",
        to_address="+33612345678",
        body="Script",
        status="sent",
        idempotency_key="promise-call",
    )
    case.messages.add(call)
    client.post(
        f"/cases/{case.pk}/calls/{call.pk}/outcome/",
        {"outcome": "promise", "promised_on": "2026-03-05", "promised_amount": "100", "note": "Cheque in the post"},
    )
    promise = Promise.objects.get(case=case)
    assert (promise.source, promise.reason, promise.amount, promise.status) == (
        "call",
        "Cheque in the post",
        10_000,
        "pending",
    )
    assert Case.objects.get(pk=case.pk).pause_reason == "Promise to pay €100.00 by 2026-03-05"


def test_a_new_promise_replaces_the_pending_one(client, case):
    first = promise_on_the_case_page(client, case, "50.00")
    second = promise_on_the_case_page(client, case, "100.00", on=PROMISED_ON + dt.timedelta(days=2))
    first.refresh_from_db()
    assert first.status == Promise.Status.CANCELLED and first.resolved_at == NOW
    assert second.status == Promise.Status.PENDING
    cancelled = CaseEvent.objects.get(case=case, type="collections.promise.cancelled")
    assert cancelled.data["reason"] == REPLACED_BY_A_NEW_PROMISE


def test_a_case_resumed_before_the_day_cancels_its_promise(client, case):
    promise = promise_on_the_case_page(client, case, "50.00")
    client.post(f"/cases/{case.pk}/resume/")
    promise.refresh_from_db()
    assert promise.status == Promise.Status.CANCELLED
    assert (
        CaseEvent.objects.get(case=case, type="collections.promise.cancelled").data["reason"] == RESUMED_BEFORE_THE_DAY
    )


# ---------------------------------------------------------------------------------------------
# Settled at the tick


def test_a_promise_paid_in_full_is_kept_when_the_case_resolves(client, clock, case):
    promise = promise_on_the_case_page(client, case, "100.00")
    clock.move_to(dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC))
    pay_on_the_case_page(client, case, "100.00")
    case.refresh_from_db()
    promise.refresh_from_db()
    assert case.status == Case.Status.RESOLVED
    assert (promise.status, promise.paid_by_then) == (Promise.Status.KEPT, 10_000)
    assert promise.resolved_at == dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)
    clock.move_to(AFTER_THE_HOLD)
    tick()  # nothing left to settle
    assert Promise.objects.get(pk=promise.pk).status == Promise.Status.KEPT
    assert "Promise kept" in page(client, f"/cases/{case.pk}/")


def test_a_promise_kept_on_part_of_the_debt_resumes_the_ladder_on_the_rest(client, clock, case):
    promise = promise_on_the_case_page(client, case, "60.00")
    clock.move_to(dt.datetime(2026, 3, 5, 15, 0, tzinfo=dt.UTC))
    pay_on_the_case_page(client, case, "60.00")
    clock.move_to(AFTER_THE_HOLD)
    result = tick()
    assert result.resumed == 1
    promise.refresh_from_db()
    case.refresh_from_db()
    assert (promise.status, promise.paid_by_then, promise.resolved_at) == ("kept", 6_000, AFTER_THE_HOLD)
    assert (case.status, case.amount_overdue) == (Case.Status.OPEN, 4_000)
    assert case.next_action_at == FIRM_REMINDER_DUE  # on its own day: a kept promise escalates nothing
    kept = CaseEvent.objects.get(case=case, type="collections.promise.kept")
    assert "the ladder goes on for the €40.00 still owed" in kept.data["reason"]
    assert worklist_counts(user=case.assignee)["broken_promises"] == 0


def test_a_promise_partly_kept_resumes_the_ladder(client, clock, case):
    promise = promise_on_the_case_page(client, case, "60.00")
    pay_on_the_case_page(client, case, "30.00")
    clock.move_to(AFTER_THE_HOLD)
    tick()
    promise.refresh_from_db()
    case.refresh_from_db()
    assert (promise.status, promise.paid_by_then) == (Promise.Status.PARTLY_KEPT, 3_000)
    assert (case.status, case.next_action_at) == (Case.Status.OPEN, FIRM_REMINDER_DUE)
    shown = page(client, f"/cases/{case.pk}/")
    assert "Promise partly kept" in shown and "Only €30.00 of the €60.00 promised was paid" in shown
    assert "€30.00 paid by then" in shown


def test_a_broken_promise_escalates_at_the_tick_and_goes_on_the_collectors_worklist(client, clock, collector, case):
    promise = promise_on_the_case_page(client, case, "100.00", reason="Next week, surely")
    performed_before = StepExecution.objects.filter(case=case).count()
    clock.move_to(HOLD_ENDS - dt.timedelta(minutes=1))
    tick()
    assert Promise.objects.get(pk=promise.pk).status == Promise.Status.PENDING  # the hold has not ended yet

    clock.move_to(AFTER_THE_HOLD)
    result = tick()
    assert (result.resumed, result.advanced) == (1, 1)
    promise.refresh_from_db()
    case.refresh_from_db()
    assert (promise.status, promise.paid_by_then, promise.resolved_at) == ("broken", 0, AFTER_THE_HOLD)
    # The firm reminder, due on 8 March, was performed at this tick, two days early.
    assert StepExecution.objects.filter(case=case).count() == performed_before + 1
    assert case.current_step.position == 2
    broken = CaseEvent.objects.get(case=case, type="collections.promise.broken")
    assert (broken.data["assignee"], broken.data["escalated"]) == ("grace", True)

    client.force_login(collector)
    worklist = page(client, "/")
    assert "Promises broken" in worklist
    assert (
        f'<a href="/cases/{case.pk}/#promises">{case.customer}</a> — €100.00 promised by 5 Mar, €0.00 paid' in worklist
    )
    assert worklist_counts(user=collector)["broken_promises"] == 1
    shown = page(client, f"/cases/{case.pk}/")
    assert "Promise broken" in shown and "Nothing was paid of the €100.00 promised: the next step is due now." in shown

    # Once the collector works the case (here a note), the broken promise leaves the worklist.
    clock.move_to(AFTER_THE_HOLD + dt.timedelta(hours=9))
    client.post(f"/cases/{case.pk}/notes/", {"text": "Called: no answer"})
    assert worklist_counts(user=collector)["broken_promises"] == 0
    assert "No broken promise waiting." in page(client, "/")


def test_a_broken_promise_of_someone_elses_case_is_not_on_my_worklist(client, clock, case):
    promise_on_the_case_page(client, case, "100.00")
    clock.move_to(AFTER_THE_HOLD)
    tick()
    other = signed_in(client, COLLECTOR, "otto")
    assert worklist_counts(user=other)["broken_promises"] == 0


# ---------------------------------------------------------------------------------------------
# The policy's limit of broken promises (the portal asks promise_allowed)


def break_a_promise(client, clock, case: Case, day: dt.date) -> None:
    clock.move_to(dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC))
    promise_record(case=case, promised_on=day, amount=1_000, source=Promise.Source.CASE_PAGE, reason="")
    clock.move_to(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 1), tzinfo=dt.UTC))
    tick()


def test_after_the_policys_broken_promises_the_portal_stops_offering_one(client, clock, case):
    Policy.objects.filter(pk=case.policy_id).update(max_broken_promises=2)
    case.refresh_from_db()
    assert promise_allowed(case=case)
    break_a_promise(client, clock, case, dt.date(2026, 3, 3))
    assert promise_allowed(case=Case.objects.get(pk=case.pk))
    break_a_promise(client, clock, case, dt.date(2026, 3, 5))
    case = Case.objects.get(pk=case.pk)
    assert Promise.objects.filter(customer=case.customer, status="broken").count() == 2
    assert not promise_allowed(case=case)
    with pytest.raises(ValidationError) as refused:
        promise_record(case=case, promised_on=dt.date(2026, 3, 12), amount=1_000, source=Promise.Source.PORTAL)
    assert refused.value.messages == [PROMISE_NOT_OFFERED % {"count": 2}]
    # A collector may still take one.
    promise_record(case=case, promised_on=dt.date(2026, 3, 12), amount=1_000, source=Promise.Source.CALL)
    assert Promise.objects.filter(case=case, status="pending").count() == 1


def test_a_policy_may_never_offer_a_promise_in_the_portal(case):
    Policy.objects.filter(pk=case.policy_id).update(max_broken_promises=0)
    assert not promise_allowed(case=Case.objects.get(pk=case.pk))


def test_a_manager_sets_the_broken_promises_on_the_policy_page(client, case):
    shown = page(client, f"/policies/{case.policy_id}/")
    assert "the portal stops offering one after 2 broken promises" in shown


# ---------------------------------------------------------------------------------------------
# The data migration: old promise holds become pending promises


def migration():
    """The data migration, found by its name whatever number it is given on merge."""
    (path,) = Path(collection_migrations.__file__).parent.glob("*_promises_from_holds.py")
    return importlib.import_module(f"dunning_site.collections.migrations.{path.stem}")


def test_the_migration_turns_promise_holds_into_pending_promises_and_back(clock, collector, case):
    # A promise made on the case page before promises were records: only the hold's reason says it.
    case_pause(case=case, until=HOLD_ENDS, reason="Promise to pay €60.50 by 2026-03-05", user=collector)
    # One made on a call: the call's logged event says the amount exactly, and what was said.
    yen = InvoiceFactory(
        customer=CustomerFactory(), currency="JPY", total=150_000, due_on=NOW.date() - dt.timedelta(days=4)
    )
    tick()
    by_call = yen.cases.get()
    CaseEvent.objects.create(
        case=by_call,
        type="collections.call.logged",
        actor="user",
        user=collector,
        data={"outcome": "promise", "promised_on": "2026-03-09", "promised_amount": 120_000, "note": "Bonus day"},
    )
    case_pause(
        case=by_call, until=dt.datetime(2026, 3, 10, tzinfo=dt.UTC), reason="Promise to pay ¥120,000 by 2026-03-09"
    )
    # A manual hold someone called a promise, with no day or amount: it stays a plain hold.
    plain = InvoiceFactory(customer=CustomerFactory(), total=5_000, due_on=NOW.date() - dt.timedelta(days=4))
    tick()
    held = plain.cases.get()
    case_pause(case=held, until=NOW + dt.timedelta(days=3), reason="Promise to pay")
    assert not Promise.objects.exists()

    migration().promises_from_holds(apps, None)

    from_page = Promise.objects.get(case=case)
    assert (from_page.promised_on, from_page.amount, from_page.source) == (PROMISED_ON, 6_050, "case_page")
    assert (from_page.status, from_page.created_by, from_page.customer) == ("pending", collector, case.customer)
    from_call = Promise.objects.get(case=by_call)
    assert (from_call.promised_on, from_call.amount, from_call.currency) == (dt.date(2026, 3, 9), 120_000, "JPY")
    assert (from_call.source, from_call.reason, from_call.created_by) == ("call", "Bonus day", collector)
    assert not Promise.objects.filter(case=held).exists()

    migration().promises_from_holds(apps, None)  # run twice: nothing doubled
    assert Promise.objects.count() == 2

    # Migrated promises are settled at the tick like any other.
    clock.move_to(AFTER_THE_HOLD)
    tick()
    assert Promise.objects.get(pk=from_page.pk).status == Promise.Status.BROKEN

    migration().promises_from_holds_undone(apps, None)
    assert list(Promise.objects.values_list("pk", flat=True)) == [from_page.pk]  # settled since: not the migration's


def test_the_migrations_apply_and_unapply_on_a_book_with_promise_holds(clock):
    """The schema and data migrations run for real (MigrationExecutor), from the state before promises to
    the state after, and back: a promise hold becomes a pending promise, and unapplying removes it."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending trigger events before ALTER TABLE
    target = [("collections", migration().__name__.rsplit(".", 1)[-1])]
    (schema_path,) = Path(collection_migrations.__file__).parent.glob("*_promises.py")
    executor = MigrationExecutor(connection)
    schema = executor.loader.get_migration("collections", schema_path.stem)
    before = [dependency for dependency in schema.dependencies if dependency[0] == "collections"]
    executor.migrate(before)
    old = MigrationExecutor(connection).loader.project_state(before).apps
    customer = old.get_model("accounts", "Customer").objects.create(name="Old Book", email="old@example.com")
    policy = old.get_model("collections", "Policy").objects.create(name="Old policy")
    case = old.get_model("collections", "Case").objects.create(
        customer=customer,
        currency="EUR",
        policy=policy,
        status="paused",
        amount_overdue=10_000,
        anchor_due_on=NOW.date(),
        paused_until=HOLD_ENDS,
        pause_reason="Promise to pay €1,234.50 by 2026-03-05",
    )

    executor = MigrationExecutor(connection)
    executor.migrate(target)
    new = executor.loader.project_state(target).apps
    promise = new.get_model("collections", "Promise").objects.get(case_id=case.pk)
    assert (promise.promised_on, promise.amount, promise.status) == (PROMISED_ON, 123_450, "pending")

    executor = MigrationExecutor(connection)
    executor.migrate(before)
    with connection.cursor() as cursor:
        assert "collections_promise" not in connection.introspection.table_names(cursor)
