"""The acceptance scenario, on a controlled clock, with real RQ jobs and Anymail's test backend.

Invoice due on day 0 (5 January 2026); policy: day 3 friendly email, day 10 firm email, day 20
final notice (requires approval), day 30 suspend (requires approval). The customer is in Paris,
so each step falls due at 09:00 Paris time (08:00 UTC in winter).
"""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from dunning_site.accounts.models import Payment, User
from dunning_site.accounts.services import payment_record
from dunning_site.accounts.tests.factories import InvoiceFactory, UserFactory
from dunning_site.collections.approvals import approval_decide
from dunning_site.collections.models import Approval, Case, CaseEvent, Step
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message

pytestmark = pytest.mark.django_db

DAY_0 = dt.date(2026, 1, 5)


def at(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime.combine(DAY_0 + dt.timedelta(days=day), dt.time(hour), tzinfo=dt.UTC)


@pytest.fixture
def engine(django_capture_on_commit_callbacks, run_jobs):
    """Move the clock in 6-hour steps, ticking and running the queued jobs at each, and keep the
    day on which every email left."""

    class Engine:
        sent_on: list[tuple[int, str]] = []

        def __init__(self, traveller):
            self.traveller = traveller
            self.sent_on = []

        def run_until(self, day: int, start: int = 0) -> None:
            for quarter in range(start * 4, (day + 1) * 4):  # through the end of `day`
                self.run_at(quarter / 4)

        def run_at(self, day: float) -> None:
            self.traveller.move_to(at(0) + dt.timedelta(days=day))
            before = len(mail.outbox)
            with django_capture_on_commit_callbacks(execute=True):
                tick()
            run_jobs()
            self.sent_on += [(int(day), email.subject) for email in mail.outbox[before:]]

    with time_machine.travel(at(0), tick=False) as traveller:
        yield Engine(traveller)


@pytest.fixture
def invoice():
    standard_policy()
    return InvoiceFactory(due_on=DAY_0, total=12_000, currency="EUR")


def test_reminders_go_out_on_their_days_and_the_final_notice_waits_for_approval(engine, invoice):
    engine.run_until(19)
    assert [(day, subject) for day, subject in engine.sent_on] == [
        (3, "[friendly] Day 3: €120.00 overdue"),
        (10, "[firm] Day 10: €120.00 overdue"),
    ]
    sent = mail.outbox[0]
    assert sent.to == [invoice.customer.email]
    message = Message.objects.get(subject=sent.subject)
    assert sent.metadata["tracking_token"] == message.tracking_token
    assert message.status == Message.Status.SENT
    assert message.provider_message_id == str(sent.anymail_status.message_id)

    engine.run_until(25, start=20)
    case = Case.objects.get()
    assert case.status == Case.Status.AWAITING_APPROVAL
    assert len(engine.sent_on) == 2, "the final notice must wait for a manager"
    approval = Approval.objects.get(status=Approval.Status.PENDING)
    assert approval.step.action == Step.Action.FINAL_NOTICE

    approval_decide(approval=approval, approve=True, user=UserFactory(username="manager"))
    engine.run_until(26, start=26)  # approved at 18:45 Paris: held by the quiet hours until 08:00
    assert engine.sent_on[-1] == (26, "[final] Day 20: €120.00 overdue")
    assert CaseEvent.objects.filter(type="collections.message.deferred").exists()

    engine.run_until(40, start=27)
    assert len(engine.sent_on) == 3
    case.refresh_from_db()
    assert case.status == Case.Status.AWAITING_APPROVAL
    assert case.next_step.action == Step.Action.SUSPEND_SERVICE
    assert Approval.objects.filter(status=Approval.Status.PENDING, step__action="suspend_service").exists()


def test_paying_on_day_12_resolves_the_case_and_nothing_more_is_sent(engine, invoice):
    engine.run_until(12)
    assert [day for day, _ in engine.sent_on] == [3, 10]

    payment_record(invoice=invoice, amount=12_000, method=Payment.Method.BANK_TRANSFER)
    case = Case.objects.get()
    assert case.status == Case.Status.RESOLVED
    assert case.resolved_at == at(12, 18)
    assert case.next_action_at is None

    engine.run_until(60, start=13)
    assert [day for day, _ in engine.sent_on] == [3, 10]
    assert not Approval.objects.filter(status=Approval.Status.PENDING).exists()
    types = list(CaseEvent.objects.filter(case=case).values_list("type", flat=True))
    assert types[0] == "collections.case.opened"
    assert types[-1] == "collections.case.resolved"
    assert types.count("collections.step.performed") == 2


def test_a_partial_payment_lowers_the_amount_and_the_case_goes_on(engine, invoice):
    engine.run_until(5)
    payment_record(invoice=invoice, amount=2_000)
    case = Case.objects.get()
    assert case.status == Case.Status.OPEN
    assert case.amount_overdue == 10_000
    assert CaseEvent.objects.filter(case=case, type="collections.case.amount_changed").exists()

    engine.run_until(10, start=6)
    assert engine.sent_on[-1] == (10, "[firm] Day 10: €100.00 overdue")


def test_rejecting_the_final_notice_skips_it(engine, invoice):
    engine.run_until(21)
    manager = User.objects.create_user("manager2")
    approval_decide(approval=Approval.objects.get(), approve=False, user=manager, note="Key account, call first")
    engine.run_until(33, start=22)
    assert [day for day, _ in engine.sent_on] == [3, 10]
    case = Case.objects.get()
    assert case.next_step.action == Step.Action.SUSPEND_SERVICE
    assert CaseEvent.objects.filter(case=case, type="collections.approval.rejected", user=manager).exists()
