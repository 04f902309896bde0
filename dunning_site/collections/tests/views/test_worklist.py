import datetime as dt
import re

import pytest

from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.models import Case
from dunning_site.collections.services import case_assign, tick
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.moment import NOW

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
