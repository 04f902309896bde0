import datetime as dt

import pytest

from dunning_site.accounts.models import Consent
from dunning_site.accounts.services import payment_record
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.case_core import case_pause
from dunning_site.collections.models import CaseEvent
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db


@pytest.fixture
def case():
    standard_policy()
    customer = CustomerFactory(name="Hana Sato", time_zone="Asia/Tokyo", language="ja", phone="+81312345678")
    Consent.objects.create(customer=customer, channel="sms", granted=True, source="signup")
    InvoiceFactory(customer=customer, due_on=NOW.date() - dt.timedelta(days=12), total=45_000, currency="JPY")
    tick()
    return customer.cases.get()


def test_the_case_page_shows_the_customer_the_invoices_the_next_step_and_the_timeline(client, viewer, case):
    page = client.get(f"/cases/{case.pk}/").content.decode()
    assert "Hana Sato" in page
    assert "Mon 16 Mar, 19:00" in page  # the customer's local time now, in Tokyo
    assert "¥45,000" in page
    assert "SMS yes (sign-up form" in page
    assert "Day 20: Final notice (Email)" in page
    assert "Case opened" in page and "Step performed" in page


def test_the_timeline_speaks_words_and_amounts_not_codes(client, viewer, case):
    payment_record(invoice=case.invoices.get(), amount=5_000)  # ¥45,000 → ¥40,000 overdue
    timeline = client.get(f"/cases/{case.pk}/").content.decode().split('id="timeline"')[1]
    assert "Amount overdue changed" in timeline and "¥40,000 overdue (was ¥45,000)" in timeline
    assert "Case opened" in timeline and "¥45,000 overdue" in timeline
    assert "collections." not in timeline


def test_an_unknown_case_is_404(client, viewer):
    assert client.get("/cases/999999/").status_code == 404


@pytest.mark.parametrize("events", [10, 100])
def test_the_case_page_costs_the_same_queries_for_10_or_100_events(
    client, viewer, case, events, django_assert_max_num_queries
):
    CaseEvent.objects.bulk_create(
        CaseEvent(case=case, type="collections.case.note", data={"note": "x"}) for _ in range(events)
    )
    with django_assert_max_num_queries(14):
        assert client.get(f"/cases/{case.pk}/").status_code == 200


def test_dates_are_in_the_viewers_time_zone(client, viewer, case):
    viewer.time_zone = "America/New_York"
    viewer.save()
    page = client.get(f"/cases/{case.pk}/").content.decode()
    # The day-20 notice falls due at 09:00 in Tokyo on 24 March: 20:00 the evening before in New York.
    assert "Mon 23 Mar, 20:00" in page


def test_a_held_case_says_its_next_step_waits_for_the_hold_not_a_date_that_will_not_come(client, viewer, case):
    case_pause(case=case, until=None, reason="dispute")
    page = client.get(f"/cases/{case.pk}/").content.decode()
    nexts = page.split('id="next"')[1].split("</section>")[0]
    assert "Day 20: Final notice (Email), once the hold ends: it has no end, someone resumes the case." in nexts
    assert "Nothing is sent or charged until then." in nexts
