"""A manager approves a final notice from the queue, in a real browser."""

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.models import Approval, Case
from dunning_site.collections.roles import MANAGER
from dunning_site.collections.tests.browser.conftest import sign_in, staff
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_manager_approves_a_final_notice_from_the_queue(live_server, page, screenshot, run_jobs):
    standard_policy()
    InvoiceFactory(due_on=timezone.localdate() - dt.timedelta(days=21), total=9_900, customer__name="Ada Lovelace")
    tick()
    approval = Approval.objects.get()
    manager = staff(MANAGER, "maria", first_name="Maria", last_name="Manager")

    sign_in(page, live_server, manager)
    page.get_by_role("link", name="Approvals").first.click()
    card = page.get_by_role("region", name="Day 20: Final notice (Email) — Ada Lovelace")
    expect(card).to_contain_text("€99.00")
    card.get_by_label("Note (on the timeline)").fill("Go ahead, they ignored two reminders")
    screenshot("approvals-queue")
    card.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved: Day 20: Final notice (Email) for Ada Lovelace")
    screenshot("decided-in-place")  # htmx: the card became the outcome, without a reload
    page.reload()
    expect(page.get_by_text("Nothing waits for a decision.")).to_be_visible()

    approval.refresh_from_db()
    assert (approval.status, approval.decided_by) == (Approval.Status.APPROVED, manager)
    run_jobs()  # the tick the decision enqueued, then the delivery
    assert [message.subject for message in mail.outbox] == ["[final] Day 20: €99.00 overdue"]

    page.goto(f"{live_server.url}/cases/{Case.objects.get().pk}/")
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("Go ahead, they ignored two reminders")
    expect(page.get_by_role("region", name="Messages")).to_contain_text("[final] Day 20: €99.00 overdue")
    screenshot("case-after-approval")
