import datetime as dt
import re

import pytest

from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.case_core import case_assign
from dunning_site.collections.models import Case
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db


def nav_counts(page: str) -> dict[str, str]:
    return dict(
        re.findall(r'<a href="[^"]*"[^>]*>(\w+) <span class="nav-count" id="nav-count-\w+">(\d+)</span></a>', page)
    )


def test_the_navigation_counts_what_waits_for_me(client, manager):
    standard_policy()
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=21))  # a final notice waits for approval
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=12))
    tick()
    # Two unassigned cases to take, one approval to decide: on every page, not only the worklist.
    assert nav_counts(client.get("/cases/").content.decode()) == {"Worklist": "2", "Approvals": "1"}


def test_cases_taken_by_a_colleague_leave_my_count(client, collector, manager):
    standard_policy()
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=12), customer__name="Ada Lovelace")
    tick()

    case_assign(case=Case.objects.get(), assignee=manager, user=manager)
    page = client.get("/").content.decode()
    assert "Worklist" in page and nav_counts(page) == {}
    assert "Every case has a collector." in page


def test_worklist_items_lead_to_their_case(client, collector):
    standard_policy()
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=12), customer__name="Ada Lovelace")
    tick()

    case = Case.objects.get()
    assert f'<a href="/cases/{case.pk}/">{case.customer}</a>' in client.get("/").content.decode()


@pytest.mark.parametrize(
    ("utc_time", "zone", "greeting"),
    [
        (dt.time(0, 0), "UTC", "Good morning, Maria"),
        (dt.time(11, 59), "UTC", "Good morning, Maria"),
        (dt.time(12, 0), "UTC", "Good afternoon, Maria"),
        (dt.time(17, 59), "UTC", "Good afternoon, Maria"),
        (dt.time(18, 0), "UTC", "Good evening, Maria"),
        (dt.time(23, 27), "UTC", "Good evening, Maria"),
        (dt.time(23, 27), "Asia/Tokyo", "Good morning, Maria"),  # 08:27 the next day where she is
        (dt.time(10, 0), "America/Los_Angeles", "Good morning, Maria"),  # 03:00
        (dt.time(3, 0), "America/Los_Angeles", "Good evening, Maria"),  # 20:00 the day before
    ],
)
def test_the_worklist_greets_by_the_viewers_own_clock(client, manager, clock, utc_time, zone, greeting):
    manager.time_zone = zone
    manager.save()
    clock.move_to(dt.datetime.combine(NOW.date(), utc_time, tzinfo=dt.UTC))
    assert f"<h1>{greeting}</h1>" in client.get("/").content.decode()
