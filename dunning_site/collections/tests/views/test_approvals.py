import datetime as dt

import django_rq
import pytest
from django.test import Client

from dunning_site.accounts.tests.factories import InvoiceFactory, UserFactory
from dunning_site.collections.approvals import (
    SELF_APPROVAL,
    STEP_NO_LONGER_NEXT,
    case_escalation_request,
    case_step_skip_request,
    case_write_off_request,
)
from dunning_site.collections.models import Approval, Case, CaseEvent
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.tick import tick
from dunning_site.collections.views.approvals import CHOOSE_A_DECISION

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting():
    standard_policy()
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=21), total=9_900, customer__name="Ada Lovelace")
    tick()
    return Approval.objects.get()


def test_a_manager_approves_a_final_notice_from_the_queue_and_the_case_moves_on(
    client, manager, waiting, django_capture_on_commit_callbacks
):
    page = client.get("/approvals/").content.decode()
    assert "Day 20: Final notice (Email)" in page and "Ada Lovelace" in page and "€99.00" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/approvals/{waiting.pk}/decide/", {"decision": "approve", "note": "Go ahead"}, follow=True
        )
    assert "Approved: Day 20: Final notice (Email) for Ada Lovelace" in response.content.decode()
    waiting.refresh_from_db()
    assert (waiting.status, waiting.decided_by) == (Approval.Status.APPROVED, manager)
    assert Case.objects.get().status == Case.Status.OPEN
    assert django_rq.get_queue("default").count == 1  # the tick that sends it, at once
    event = CaseEvent.objects.get(type="collections.approval.approved")
    assert (event.user, event.data["note"]) == (manager, "Go ahead")


def test_a_manager_cannot_approve_their_own_request(client, manager, waiting):
    Approval.objects.filter(pk=waiting.pk).update(requested_by=manager)
    assert "another manager decides it" in client.get("/approvals/").content.decode()
    response = client.post(f"/approvals/{waiting.pk}/decide/", {"decision": "approve"}, follow=True)
    assert SELF_APPROVAL in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == Approval.Status.PENDING


def test_rejecting_skips_the_step(client, manager, waiting):
    client.post(f"/approvals/{waiting.pk}/decide/", {"decision": "reject", "note": "Key account"})
    waiting.refresh_from_db()
    assert waiting.status == Approval.Status.REJECTED
    assert CaseEvent.objects.get(type="collections.approval.rejected").data["note"] == "Key account"


def test_the_csrf_token_is_required(manager, waiting):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(manager)
    assert strict.post(f"/approvals/{waiting.pk}/decide/", {"decision": "approve"}).status_code == 403
    waiting.refresh_from_db()
    assert waiting.status == Approval.Status.PENDING


@pytest.mark.parametrize("count", [10, 100])
def test_the_queue_costs_the_same_queries_for_10_or_100_approvals(
    client, manager, count, django_assert_max_num_queries
):
    standard_policy()
    for _ in range(count):
        InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=21))
    tick()
    assert Approval.objects.count() == count
    with django_assert_max_num_queries(10):
        assert client.get("/approvals/").status_code == 200


def collectors_requests(case: Case, collector) -> list[Approval]:
    """One request of each kind a collector can make on the case."""
    return [
        case_escalation_request(case=case, user=collector, reason="Promised twice, paid nothing"),
        case_step_skip_request(case=case, user=collector, reason="They answer the phone"),
        case_write_off_request(case=case, user=collector, amount=1_250, reason="Late fee waived"),
    ]


def test_the_queue_says_what_each_kind_of_request_asks(client, manager):
    standard_policy()
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=5), total=9_900, customer__name="Ada Lovelace")
    tick()
    grace = UserFactory(username="grace", first_name="Grace", last_name="Hopper")
    collectors_requests(Case.objects.get(), grace)
    page = client.get("/approvals/").content.decode()
    assert page.count("Ada Lovelace") == 3 and page.count("by Grace Hopper") == 3
    assert "Escalate now</span>" in page and "Asks to perform <strong>Day 10: Reminder (Email)</strong> now" in page
    assert "Skip a step</span>" in page and "Asks to pass over <strong>Day 10: Reminder (Email)</strong>" in page
    assert "Write-off</span>" in page and "Asks to write off <strong>€12.50</strong> of the €99.00 overdue" in page
    assert "part of it — dunning goes on for the rest" in page
    assert "“Promised twice, paid nothing”" in page and "“Late fee waived”" in page


def test_a_request_for_a_step_no_longer_next_says_so(client, manager, clock):
    standard_policy()
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=5))
    tick()
    case_step_skip_request(case=Case.objects.get(), user=UserFactory(username="grace"), reason="x")
    clock.move_to(NOW + dt.timedelta(days=6))
    tick()  # day 11: the firm reminder went on its day
    page = client.get("/approvals/").content.decode()
    assert "Day 10: Reminder (Email) is no longer this case's next step" in page
    approval = Approval.objects.get(kind=Approval.Kind.SKIP)
    response = client.post(f"/approvals/{approval.pk}/decide/", {"decision": "approve"}, follow=True)
    assert STEP_NO_LONGER_NEXT % {"step": "Day 10: Reminder (Email)"} in response.content.decode().replace(
        "&#x27;", "'"
    )
    assert client.post(f"/approvals/{approval.pk}/decide/", {"decision": "reject"}).status_code == 302
    approval.refresh_from_db()
    assert approval.status == Approval.Status.REJECTED


@pytest.mark.parametrize("count", [10, 100])
def test_the_queue_costs_the_same_queries_with_every_kind_of_request(
    client, manager, count, django_assert_max_num_queries
):
    standard_policy()
    for _ in range(count):
        InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=5))
    tick()
    grace = UserFactory(username="grace")
    for case in Case.objects.all():
        collectors_requests(case, grace)
    assert Approval.objects.count() == 3 * count
    with django_assert_max_num_queries(10):
        assert client.get("/approvals/").status_code == 200


def test_a_post_without_a_clear_decision_decides_nothing(client, manager, waiting):
    for data in [{"note": "No, they are solvent"}, {"decision": "maybe"}]:
        response = client.post(f"/approvals/{waiting.pk}/decide/", data, follow=True)
        assert CHOOSE_A_DECISION in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == Approval.Status.PENDING


def test_with_htmx_the_card_becomes_the_decision_in_place(client, manager, waiting):
    response = client.post(
        f"/approvals/{waiting.pk}/decide/", {"decision": "approve", "note": "Go"}, headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page
    assert 'role="status">Approved: Day 20: Final notice (Email) for' in page
    # The navigation's count follows, out of band: nothing waits any more.
    assert '<span class="nav-count" id="nav-count-approvals" hx-swap-oob="true"></span>' in page
    waiting.refresh_from_db()
    assert waiting.status == Approval.Status.APPROVED
    again = client.post(f"/approvals/{waiting.pk}/decide/", {"decision": "approve"}, headers={"HX-Request": "true"})
    assert again.status_code == 409 and "flash-error" in again.content.decode()  # app.js swaps it in


def test_the_queue_posts_in_place_and_still_works_without_javascript(client, manager, waiting):
    page = client.get("/approvals/").content.decode()
    assert f'hx-post="/approvals/{waiting.pk}/decide/"' in page
    assert f'action="/approvals/{waiting.pk}/decide/"' in page
