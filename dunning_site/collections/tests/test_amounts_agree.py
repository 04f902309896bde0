"""The acceptance point of "amounts that always agree": after a partial payment and a partial write-off,
the queued reminder, the invoices, the case, the cases list and the dashboard show the same amounts.

Monday 16 March 2026, 10:00 UTC. Ada's company is in Auckland (23:00 there), owing two invoices:
INV-A €60.00 (due 9 days ago) and INV-B €40.00 (due 6 days ago). The tick opens her case and writes the
day-3 reminder, which quiet hours hold until 08:00 in Auckland (19:00 UTC). Meanwhile a €15.00 bank
transfer arrives for INV-A and a manager approves writing off €25.00: €60.00 is left, €20.00 on INV-A
(the write-off is credited oldest first) and €40.00 on INV-B. Everything says so, and the reminder
that goes out in Ada's morning too.
"""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client

from dunning_site.accounts.models import Invoice
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from dunning_site.collections import dashboard, selectors
from dunning_site.collections.models import Approval, Case, CaseEvent
from dunning_site.collections.roles import COLLECTOR, MANAGER
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 16, 10, 0, tzinfo=dt.UTC)
AUCKLAND_MORNING = dt.datetime(2026, 3, 16, 19, 0, tzinfo=dt.UTC)  # Tuesday 08:00 NZDT


def staff(role: str, username: str) -> tuple[Client, object]:
    user = UserFactory(username=username, first_name=username.title())
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client, user


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def held_reminder(clock, run_jobs, django_capture_on_commit_callbacks) -> Message:
    standard_policy()
    ada = CustomerFactory(name="Ada Lovelace", time_zone="Pacific/Auckland")
    InvoiceFactory(customer=ada, number="INV-A", total=6_000, due_on=NOW.date() - dt.timedelta(days=9))
    InvoiceFactory(customer=ada, number="INV-B", total=4_000, due_on=NOW.date() - dt.timedelta(days=6))
    with django_capture_on_commit_callbacks(execute=True):
        tick()
    run_jobs()
    reminder = Message.objects.get()
    assert (reminder.status, reminder.send_after) == (Message.Status.QUEUED, AUCKLAND_MORNING)
    assert "€100.00 overdue" in reminder.subject and "INV-A €60.00" in reminder.body
    return reminder


def test_after_a_partial_payment_and_a_partial_write_off_every_surface_shows_the_same_amount(
    held_reminder, clock, run_jobs, admin_client, django_capture_on_commit_callbacks
):
    case = Case.objects.get()
    collector, _ = staff(COLLECTOR, "grace")
    manager, _ = staff(MANAGER, "maria")
    inv_a, inv_b = Invoice.objects.order_by("number")

    # A partial payment, recorded on the case page; a partial write-off, asked for and approved.
    paid = collector.post(
        f"/cases/{case.pk}/payments/",
        {"invoice": inv_a.pk, "method": "bank_transfer", "amount": "15", "paid_on": "2026-03-16"},
    )
    assert paid.status_code == 302
    asked = collector.post(
        f"/cases/{case.pk}/requests/write-off/",
        {"write_off-amount": "25", "write_off-reason": "Goodwill for the outage in February"},
    )
    assert asked.status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        manager.post(f"/approvals/{Approval.objects.get().pk}/decide/", {"decision": "approve"})
    run_jobs()  # the reminder is still held by Ada's night

    # The queued reminder: written again with what is owed now, same key, same time.
    reminder = Message.objects.get()
    assert (reminder.status, reminder.idempotency_key, reminder.send_after) == (
        Message.Status.QUEUED,
        held_reminder.idempotency_key,
        AUCKLAND_MORNING,
    )
    assert "€60.00 overdue" in reminder.subject
    assert "INV-A €20.00" in reminder.body and "INV-B €40.00" in reminder.body
    assert CaseEvent.objects.filter(type="collections.message.refreshed", data__message_id=reminder.pk).count() == 2

    # The invoices: the write-off is credited on the oldest first.
    inv_a.refresh_from_db()
    inv_b.refresh_from_db()
    assert (inv_a.amount_paid, inv_a.amount_written_off, inv_a.amount_remaining) == (1_500, 2_500, 2_000)
    assert (inv_b.amount_written_off, inv_b.amount_remaining) == (0, 4_000)
    invoices_page = admin_client.get("/admin/accounts/invoice/").content.decode()
    assert "€20.00" in invoices_page and "€25.00" in invoices_page  # left to pay, written off

    # The case and its page.
    case.refresh_from_db()
    assert case.amount_overdue == 6_000
    case_page = collector.get(f"/cases/{case.pk}/").content.decode()
    assert "€60.00</strong> overdue" in case_page and "€20.00" in case_page and "€25.00" in case_page

    # The cases list, and its total.
    cases_page = collector.get("/cases/").content.decode()
    assert "€60.00" in cases_page and "Total overdue in EUR, 1 case" in cases_page
    listed = selectors.case_totals(selectors.cases_for_list().filter(status__in=Case.ACTIVE_STATUSES))
    assert [(row["currency"], row["amount"]) for row in listed] == [("EUR", 6_000)]

    # The dashboard's overdue figures equal the list's.
    board = dashboard.overdue_receivables(period=dashboard.period_ending_today())
    assert [(row.currency, row.amount) for row in board] == [("EUR", 6_000)]
    dashboard_page = manager.get("/dashboard/").content.decode()
    assert '<span class="dashboard-tile-amount">€60.00</span>' in dashboard_page

    # Ada's morning: the reminder goes out with those amounts.
    clock.move_to(AUCKLAND_MORNING)
    run_jobs()
    (sent,) = mail.outbox
    assert "€60.00 overdue" in sent.subject and "INV-A €20.00" in sent.body
