"""A collector filters the cases list by segment and days overdue and exports CSV of what they see."""

import csv
import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.case_core import case_open
from dunning_site.collections.roles import COLLECTOR
from dunning_site.collections.tests.browser.conftest import sign_in, staff
from dunning_site.collections.tests.factories import standard_policy

pytestmark = pytest.mark.django_db(transaction=True)

# (name, segment, days overdue): the filter is "enterprise, 30 days or more".
BOOK = [
    ("Ada Lovelace", "enterprise", 45),
    ("Grace Hopper", "enterprise", 31),
    ("Alan Turing", "enterprise", 12),
    ("Edsger Dijkstra", "smb", 60),
    ("Barbara Liskov", "smb", 5),
]


def test_a_collector_filters_by_segment_and_days_overdue_and_exports_csv(live_server, page, screenshot):
    policy = standard_policy()
    today = timezone.localdate()
    for name, segment, days in BOOK:
        invoice = InvoiceFactory(
            customer=CustomerFactory(name=name, segment=segment), due_on=today - dt.timedelta(days=days), total=10_000
        )
        case_open(customer=invoice.customer, currency=invoice.currency, policy=policy, invoices=[invoice])
    sign_in(page, live_server, staff(COLLECTOR, "grace"))

    page.get_by_role("link", name="Cases").first.click()
    page.get_by_label("Segment").select_option("enterprise")
    page.get_by_label("Days overdue from").fill("30")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("table tbody")).to_contain_text("Ada Lovelace")
    expect(page.locator("table tbody")).to_contain_text("Grace Hopper")
    screenshot("cases-filtered")

    with page.expect_download() as download:
        page.get_by_role("link", name="Export these cases as CSV").click()
    with open(download.value.path(), newline="", encoding="utf-8") as exported:
        exported_rows = list(csv.DictReader(exported))
    assert sorted(row["customer"] for row in exported_rows) == ["Ada Lovelace", "Grace Hopper"]
    assert {row["segment"] for row in exported_rows} == {"enterprise"}
    assert all(int(row["days_overdue"]) >= 30 for row in exported_rows)
