"""A collector works a case from its page, in a real browser: htmx actions in place, a live preview."""

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.forms import DISPUTE_NEEDS_A_REASON
from dunning_site.collections.models import Case
from dunning_site.collections.roles import COLLECTOR
from dunning_site.collections.tests.browser.conftest import htmx_ready, sign_in, staff
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ada():
    standard_policy()
    InvoiceFactory(due_on=timezone.localdate() - dt.timedelta(days=5), total=10_000, customer__name="Ada Lovelace")
    tick()
    return Case.objects.get()


def test_a_collector_personalizes_the_next_reminder_and_sees_it_on_the_timeline(
    live_server, page, screenshot, run_jobs, ada
):
    collector = staff(COLLECTOR, "grace", first_name="Grace", last_name="Hopper")
    sign_in(page, live_server, collector)

    # From the worklist's new cases to the case page.
    unassigned = page.get_by_role("region", name="New cases nobody has taken")
    unassigned.get_by_role("link", name=str(ada.customer)).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ada Lovelace")

    # Personalize the next reminder: the preview follows the typing, for this customer.
    page.get_by_role("button", name="Personalize, then send").click()
    expect(page.get_by_role("heading", name="Personalize the email to Ada Lovelace")).to_be_visible()
    htmx_ready(page)
    message = page.get_by_label("Message")
    preview = page.get_by_role("region", name="Preview: what Ada Lovelace receives")
    message.fill("Dear {{ customer_nme }}")
    expect(preview).to_contain_text("“customer_nme” is not something a message can use")
    message.fill("Dear {{ customer_name }}, as agreed on the phone: {{ total_overdue }} by Friday, please.")
    expect(preview).to_contain_text("Dear Ada Lovelace, as agreed on the phone: €100.00 by Friday, please.")
    screenshot("personalize")
    page.get_by_role("button", name="Send now").click()
    expect(page.get_by_role("status").first).to_contain_text("Sent to the outbox")

    run_jobs()  # the delivery worker
    sent = Message.objects.get(edited_by=collector)
    assert (sent.status, sent.body) == (
        Message.Status.SENT,
        "Dear Ada Lovelace, as agreed on the phone: €100.00 by Friday, please.\n",
    )
    page.reload()
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline.locator("li").first).to_contain_text("Message sent")
    expect(timeline).to_contain_text("Dear Ada Lovelace, as agreed on the phone: €100.00 by Friday, please.")
    screenshot("timeline-after-sending")


def test_a_collector_puts_a_case_on_hold_for_a_dispute_and_resumes_it(live_server, page, screenshot, ada):
    case = ada

    collector = staff(COLLECTOR, "grace", first_name="Grace", last_name="Hopper")
    sign_in(page, live_server, collector)
    page.goto(f"{live_server.url}/cases/{case.pk}/")

    # A dispute without a reason: the error appears next to the field, in place.
    page.get_by_text("Put on hold", exact=True).first.click()
    page.get_by_label("Dispute").check()
    page.get_by_role("button", name="Put on hold").click()
    expect(page.get_by_text(DISPUTE_NEEDS_A_REASON)).to_be_visible()
    page.get_by_label("Reason:").fill("Says the invoice was never received")
    page.get_by_role("button", name="Put on hold").click()
    expect(page.locator("#case-status")).to_contain_text("Paused (Dispute: Says the invoice was never received)")
    expect(page.get_by_role("region", name="Timeline")).to_contain_text("Put on hold")
    page.get_by_role("button", name="Resume the case").click()
    expect(page.locator("#case-status")).to_contain_text("Open")
    screenshot("case-after-resume")
