import datetime as dt

import pytest

from dunning_site.accounts.services import payment_record
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.case_core import HOLD_TOO_FAR, case_open
from dunning_site.collections.forms import CHOOSE_AN_ACTION, CHOOSE_CASES, PAUSE_NEEDS_A_REASON
from dunning_site.collections.models import Case, CaseEvent
from dunning_site.collections.promises import promise_record
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.moment import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def cases() -> list[Case]:
    policy = standard_policy()
    opened = []
    for name in ["Ada Lovelace", "Grace Hopper", "Alan Turing"]:
        invoice = InvoiceFactory(customer=CustomerFactory(name=name), due_on=NOW.date() - dt.timedelta(days=12))
        opened.append(case_open(customer=invoice.customer, currency="EUR", policy=policy, invoices=[invoice]))
    return opened


def test_a_collector_assigns_the_ticked_cases_to_a_colleague(client, collector, manager, cases):
    client.force_login(collector)
    response = client.post(
        "/cases/bulk/",
        {"cases": [cases[0].pk, cases[1].pk], "action": "assign", "assignee": manager.pk, "query": "segment=smb"},
    )
    assert response.status_code == 302 and response["Location"] == "/cases/?segment=smb"
    assert [case.assignee for case in Case.objects.order_by("pk")] == [manager, manager, None]
    assert CaseEvent.objects.filter(type="collections.case.assigned", user=collector).count() == 2
    assert "Assigned: 2 cases." in client.get("/cases/").content.decode()


def test_putting_on_hold_needs_a_reason_and_resuming_brings_them_back(client, collector, cases):
    ids = [case.pk for case in cases]
    response = client.post("/cases/bulk/", {"cases": ids, "action": "pause", "reason": " "}, follow=True)
    assert PAUSE_NEEDS_A_REASON in response.content.decode()
    assert not Case.objects.filter(status=Case.Status.PAUSED).exists()

    client.post("/cases/bulk/", {"cases": ids, "action": "pause", "reason": "Waiting for the audit"})
    assert set(Case.objects.values_list("status", "pause_reason")) == {(Case.Status.PAUSED, "Waiting for the audit")}
    client.post("/cases/bulk/", {"cases": ids, "action": "resume"})
    assert set(Case.objects.values_list("status", flat=True)) == {Case.Status.OPEN}


def test_a_case_that_cannot_change_is_reported_and_the_others_still_change(client, collector, cases):
    payment_record(invoice=cases[2].invoices.get(), amount=cases[2].amount_overdue)  # resolved meanwhile
    response = client.post(
        "/cases/bulk/", {"cases": [case.pk for case in cases], "action": "pause", "reason": "Audit"}, follow=True
    )
    page = response.content.decode()
    assert "Put on hold: 2 cases." in page
    assert "Not changed — Alan Turing" in page and "only active cases can be changed" in page
    assert Case.objects.get(pk=cases[2].pk).status == Case.Status.RESOLVED


def test_nothing_ticked_is_a_clear_error(client, collector, cases):
    response = client.post("/cases/bulk/", {"action": "resume"}, follow=True)
    assert CHOOSE_CASES in response.content.decode()


def test_viewers_see_no_checkboxes_and_cannot_post(client, viewer, cases):
    assert 'name="cases"' not in client.get("/cases/").content.decode()
    assert client.post("/cases/bulk/", {"cases": [cases[0].pk], "action": "resume"}).status_code == 403


def test_collectors_tick_cases_by_name(client, collector, cases):
    page = client.get("/cases/").content.decode()
    assert f'<label for="tick-{cases[0].pk}" class="visually-hidden">Tick Ada Lovelace</label>' in page


def test_applying_without_choosing_an_action_changes_nothing(client, collector, manager, cases):
    client.force_login(collector)
    Case.objects.update(assignee=manager)
    response = client.post("/cases/bulk/", {"cases": [cases[0].pk], "action": "", "assignee": ""}, follow=True)
    assert CHOOSE_AN_ACTION in response.content.decode()
    assert Case.objects.get(pk=cases[0].pk).assignee == manager


def test_a_hold_of_the_ticked_cases_ends_within_90_days_or_none_is_changed(client, collector, cases):
    ids = [case.pk for case in cases]
    hold = {"cases": ids, "action": "pause", "reason": "Waiting for the audit"}
    response = client.post("/cases/bulk/", hold | {"until": "9999-12-31"}, follow=True)
    assert HOLD_TOO_FAR % {"days": 90, "latest": "Sun 14 Jun 2026"} in response.content.decode()
    assert not Case.objects.filter(status=Case.Status.PAUSED).exists()
    assert not CaseEvent.objects.filter(type="collections.case.paused").exists()

    response = client.post("/cases/bulk/", hold | {"until": "2026-06-14"}, follow=True)
    assert "Put on hold: 3 cases." in response.content.decode()
    assert set(Case.objects.values_list("status", "paused_until")) == {
        (Case.Status.PAUSED, dt.datetime(2026, 6, 14, tzinfo=dt.UTC))
    }


def test_a_bulk_hold_never_replaces_a_promise_to_pay_and_says_so(client, collector, cases):
    promised = promise_record(
        source="case_page",
        case=cases[0],
        promised_on=NOW.date() + dt.timedelta(days=10),
        amount=cases[0].amount_overdue,
    ).case
    response = client.post(
        "/cases/bulk/",
        {"cases": [case.pk for case in cases], "action": "pause", "reason": "Checking with sales"},
        follow=True,
    )
    page = response.content.decode()
    assert "Put on hold: 2 cases." in page
    assert "Not changed — Ada Lovelace" in page and "already on hold (Promise to pay €100.00 by 26 Mar)" in page
    kept = Case.objects.get(pk=promised.pk)
    assert (kept.pause_reason, kept.paused_until) == (promised.pause_reason, promised.paused_until)
