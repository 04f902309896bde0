"""A collector works a case from its page, in a real browser: htmx actions in place, a live preview."""

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.forms import DISPUTE_NEEDS_A_REASON
from dunning_site.collections.models import Case
from dunning_site.collections.roles import COLLECTOR
from dunning_site.collections.services import tick
from dunning_site.collections.tests.browser.conftest import sign_in, staff
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.notifications.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_collector_holds_a_case_and_personalizes_a_reminder(live_server, page, screenshot):
    standard_policy()
    InvoiceFactory(due_on=timezone.localdate() - dt.timedelta(days=5), total=10_000, customer__name="Ada Lovelace")
    tick()
    case = Case.objects.get()
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
    expect(page.get_by_role("region", name="Timeline")).to_contain_text("collections.case.paused")
    page.get_by_role("button", name="Resume the case").click()
    expect(page.locator("#case-status")).to_contain_text("Open")
    screenshot("case-after-resume")

    # Personalize the next reminder: the preview follows the typing, for this customer.
    page.get_by_role("button", name="Personalize, then send").click()
    expect(page.get_by_role("heading", name="Personalize the email to Ada Lovelace")).to_be_visible()
    page.get_by_label("Message").fill("Dear {{ customer_name }}, {{ total_overdue }} is still open.")
    preview = page.get_by_role("region", name="Preview: what Ada Lovelace receives")
    expect(preview).to_contain_text("Dear Ada Lovelace, €100.00 is still open.")
    page.get_by_label("Message").fill("Dear {{ customer_nme }}")
    expect(preview).to_contain_text("“customer_nme” is not something a message can use")
    page.get_by_label("Message").fill("Dear {{ customer_name }}, as agreed: {{ total_overdue }}.")
    expect(preview).to_contain_text("Dear Ada Lovelace, as agreed: €100.00.")
    screenshot("personalize")
    page.get_by_role("button", name="Send now").click()
    expect(page.get_by_role("status").first).to_contain_text("Sent to the outbox")
    expect(page.get_by_role("region", name="Messages")).to_contain_text("Queued")
    sent = Message.objects.get(edited_by=collector)
    assert sent.body == "Dear Ada Lovelace, as agreed: €100.00.\n"
