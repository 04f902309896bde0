import datetime as dt
import json
import re

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.db import IntegrityError, transaction

from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.case_core import case_open
from dunning_site.collections.models import POLICY_DAYS_MAX, POLICY_DAYS_TOO_MANY, Case, Policy, Step, StepExecution
from dunning_site.collections.policy_forms import (
    MESSAGE_NEEDS_CHANNEL,
    MIN_AMOUNT_NEEDS_CURRENCY,
    OFFSETS_MUST_INCREASE,
    POSITION_TAKEN,
    STEP_HAS_HISTORY,
    STEP_IN_USE_CHANGED,
    STEP_IN_USE_DELETED,
)
from dunning_site.collections.roles import MANAGER
from dunning_site.collections.tests.factories import PolicyFactory, standard_policy
from dunning_site.collections.tests.views.conftest import signed_in
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db

POLICY_FIELDS = {
    "name": "Enterprise",
    "is_active": "on",
    "priority": "10",
    "segment": "enterprise",
    "currency": "EUR",
    "min_amount": "500.00",
    "grace_days": "3",
    "contact_rules": "",
    "retry_max_attempts": "8",
    "retry_window_days": "30",
    "pre_dunning_days": "30",
    "max_promise_days": "30",
    "max_broken_promises": "2",
}


def step_row(position, offset, action="reminder", channel="email", **fields) -> dict:
    return {"position": position, "offset_days": offset, "action": action, "channel": channel, "tone": "friendly"} | {
        name: value for name, value in fields.items() if value not in (False, None)
    }


def saved_rows(policy: Policy) -> list[dict]:
    """The steps as the page shows them, ready to be posted back (changed or not)."""
    return [
        step_row(
            step.position,
            step.offset_days,
            step.action,
            step.channel,
            id=step.pk,
            template=step.template_id or "",
            tone=step.tone,
            requires_approval=step.requires_approval and "on",
            review_before_send=step.review_before_send and "on",
        )
        for step in policy.steps.order_by("position")
    ]


def fields_of(policy: Policy) -> dict:
    return {
        "name": policy.name,
        "is_active": policy.is_active and "on",
        "priority": policy.priority,
        "segment": policy.segment,
        "currency": policy.currency,
        "min_amount": "0",
        "grace_days": policy.grace_days,
        "contact_rules": policy.contact_rules_id or "",
        "retry_max_attempts": policy.retry_max_attempts,
        "retry_window_days": policy.retry_window_days,
        "pre_dunning_days": policy.pre_dunning_days,
        "max_promise_days": policy.max_promise_days,
        "max_broken_promises": policy.max_broken_promises,
    }


def posted(rows: list[dict], policy: Policy | None = None, **fields) -> dict:
    data = (fields_of(policy) if policy else POLICY_FIELDS) | fields
    data |= {
        "steps-TOTAL_FORMS": len(rows),
        "steps-INITIAL_FORMS": sum(1 for row in rows if "id" in row),
        "steps-MIN_NUM_FORMS": 0,
        "steps-MAX_NUM_FORMS": 1000,
    }
    for index, row in enumerate(rows):
        data |= {f"steps-{index}-{name}": value for name, value in row.items()}
    return {name: value for name, value in data.items() if value is not None and value is not False}


def active_case(policy: Policy) -> Case:
    """A case 70 days overdue: it has gone up to the final notice, which waits for approval."""
    invoice = InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=70))
    return case_open(customer=invoice.customer, currency="EUR", policy=policy, invoices=[invoice])


def test_everyone_on_the_team_reads_the_policies(client, viewer):
    policy = standard_policy(name="Standard", currency="EUR", min_amount=50_000, segment="smb")
    active_case(policy)
    PolicyFactory(name="Anything else", priority=200)
    response = client.get("/policies/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Standard" in page and "smb" in page and "€500.00" in page and "Any amount" in page
    row = page[page.index("Standard") : page.index("</tr>", page.index("Standard"))]
    assert "<td>4</td>" in row and "<td>1</td>" in row  # four steps, one active case
    assert "New policy" not in page


def test_a_viewer_sees_the_policy_and_its_ladder_without_a_form(client, viewer):
    policy = standard_policy(name="Standard")
    active_case(policy)
    page = client.get(f"/policies/{policy.pk}/").content.decode()
    assert "Day 3" in page and "Day 30" in page and "needs a manager's approval" in page
    assert "1 waits for it" in page and "1 active case on this policy" in page
    assert 'method="post" novalidate' not in page and "Only managers can change policies." in page


@pytest.mark.parametrize("role", ["viewer", "collector"])
def test_viewers_and_collectors_cannot_change_a_policy(client, request, role):
    request.getfixturevalue(role)
    policy = standard_policy(name="Standard")
    assert client.get("/policies/new/").status_code == 403
    assert client.post("/policies/new/", posted([step_row(1, 3)])).status_code == 403
    response = client.post(f"/policies/{policy.pk}/", posted(saved_rows(policy), name="Hijacked"))
    assert response.status_code == 403
    policy.refresh_from_db()
    assert policy.name == "Standard"
    assert not LogEntry.objects.exists()


def test_a_manager_creates_a_policy_with_its_ladder(client, manager):
    response = client.post(
        "/policies/new/",
        posted(
            [
                step_row(1, 5),
                step_row(2, 15, "call_task", channel=""),
                step_row(3, 25, "final_notice", channel="letter", requires_approval="on"),
                step_row("", "", action=""),  # the row left for a new step, untouched
            ]
        ),
        follow=True,
    )
    policy = Policy.objects.get()
    assert response.redirect_chain == [(f"/policies/{policy.pk}/", 302)]
    assert "Policy “Enterprise” saved." in response.content.decode()
    assert (policy.segment, policy.currency, policy.min_amount, policy.grace_days) == ("enterprise", "EUR", 50_000, 3)
    assert [(step.position, step.offset_days, step.action, step.channel) for step in policy.steps.all()] == [
        (1, 5, "reminder", "email"),
        (2, 15, "call_task", "call"),
        (3, 25, "final_notice", "letter"),
    ]
    assert policy.steps.get(position=3).requires_approval
    entry = LogEntry.objects.get()
    assert (entry.user, entry.action_flag, entry.object_id) == (manager, ADDITION, str(policy.pk))
    assert {"added": {"name": "step", "object": "Day 15: Call task"}} in json.loads(entry.change_message)


def test_a_manager_edits_reorders_and_deletes_steps_in_one_save(client, manager):
    policy = standard_policy(name="Standard")
    first, second, third, fourth = saved_rows(policy)
    # The firm reminder moves up to day 5 and swaps places with the friendly one (now day 7), the
    # suspension goes, and a call comes in on day 25.
    first |= {"position": 2, "offset_days": 7}
    second |= {"position": 1, "offset_days": 5}
    fourth |= {"DELETE": "on"}
    response = client.post(
        f"/policies/{policy.pk}/",
        posted([first, second, third, fourth, step_row(4, 25, "call_task")], policy, name="Standard v2"),
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.name == "Standard v2"
    assert [(step.pk, step.position, step.offset_days) for step in policy.steps.order_by("position")] == [
        (second["id"], 1, 5),
        (first["id"], 2, 7),
        (third["id"], 3, 20),
        (policy.steps.get(position=4).pk, 4, 25),
    ]
    assert not Step.objects.filter(pk=fourth["id"]).exists()
    entry = LogEntry.objects.get()
    assert (entry.user, entry.action_flag) == (manager, CHANGE)
    message = json.loads(entry.change_message)
    assert {"deleted": {"name": "step", "object": "Day 30: Suspend service"}} in message
    assert {"changed": {"fields": ["Name"]}} in message


def test_bad_input_is_shown_next_to_the_fields_and_nothing_is_saved(client, manager):
    policy = standard_policy(name="Standard")
    first, second, third, fourth = saved_rows(policy)
    second |= {"offset_days": 2}  # before the first step's day 3
    third |= {"channel": ""}  # a final notice with no channel
    fourth |= {"position": 3}  # the final notice's place
    response = client.post(
        f"/policies/{policy.pk}/", posted([first, second, third, fourth], name="Renamed", currency="", min_amount="5")
    )
    assert response.status_code == 400
    form, steps = response.context["form"], response.context["steps"]
    assert form.errors["currency"] == [MIN_AMOUNT_NEEDS_CURRENCY]
    assert steps.forms[1].errors["offset_days"] == [OFFSETS_MUST_INCREASE % {"offset": 2, "position": 2, "previous": 3}]
    assert steps.forms[2].errors["channel"] == [MESSAGE_NEEDS_CHANNEL % {"action": "final notice"}]
    assert steps.forms[3].errors["position"] == [POSITION_TAKEN % {"position": 3}]
    page = response.content.decode()
    assert "correct the fields marked below" in page
    policy.refresh_from_db()
    assert policy.name == "Standard"
    assert [step.offset_days for step in policy.steps.all()] == [3, 10, 20, 30]
    assert not LogEntry.objects.exists()


def test_an_amount_with_too_many_decimals_for_its_currency_is_refused(client, manager):
    response = client.post("/policies/new/", posted([step_row(1, 3)], currency="JPY", min_amount="10.5"))
    assert response.status_code == 400
    assert response.context["form"].errors["min_amount"] == ["JPY amounts have at most 0 decimal places."]
    assert not Policy.objects.exists()


def test_a_step_that_active_cases_stand_on_cannot_be_deleted_or_changed(client, manager):
    policy = standard_policy(name="Standard")
    case = active_case(policy)
    rows = saved_rows(policy)
    waiting = next(row for row in rows if row["id"] == case.next_step_id)
    waiting["DELETE"] = "on"
    response = client.post(f"/policies/{policy.pk}/", posted(rows))
    assert response.status_code == 400
    message = STEP_IN_USE_DELETED % {"position": case.next_step.position, "step": case.next_step, "count": 1}
    assert message in response.context["steps"].non_form_errors()
    assert "stand on it or wait for it" in response.content.decode()

    rows = saved_rows(policy)
    waiting = next(row for row in rows if row["id"] == case.next_step_id)
    waiting["offset_days"] = 21
    response = client.post(f"/policies/{policy.pk}/", posted(rows))
    assert response.status_code == 400
    form = next(form for form in response.context["steps"].forms if form.instance.pk == case.next_step_id)
    assert form.non_field_errors() == [STEP_IN_USE_CHANGED % {"count": 1}]
    assert Step.objects.get(pk=case.next_step_id).offset_days == 20
    assert not LogEntry.objects.exists()


def test_a_step_in_the_history_of_closed_cases_cannot_be_deleted(client, manager):
    policy = standard_policy(name="Standard")
    case = active_case(policy)
    step = policy.steps.get(position=1)
    StepExecution.objects.create(case=case, step=step)
    Case.objects.filter(pk=case.pk).update(status=Case.Status.RESOLVED)
    rows = saved_rows(policy)
    rows[0]["DELETE"] = "on"
    response = client.post(f"/policies/{policy.pk}/", posted(rows))
    assert response.status_code == 400
    assert STEP_HAS_HISTORY % {"position": 1, "step": step} in response.context["steps"].non_form_errors()
    assert Step.objects.filter(pk=step.pk).exists()


@pytest.mark.parametrize("count", [10, 100])
def test_the_list_takes_the_same_queries_for_10_or_100_policies(client, viewer, django_assert_max_num_queries, count):
    for _ in range(count):
        active_case(standard_policy())
    with django_assert_max_num_queries(6):
        response = client.get("/policies/")
    assert response.content.decode().count("<tr>") == count + 1


@pytest.mark.parametrize("steps", [4, 40])
def test_the_policy_page_takes_the_same_queries_for_few_or_many_steps(
    client, manager, django_assert_max_num_queries, steps
):
    policy = PolicyFactory()
    Step.objects.bulk_create(
        Step(policy=policy, position=position, offset_days=position * 2, action="reminder")
        for position in range(1, steps + 1)
    )
    active_case(policy)
    with django_assert_max_num_queries(15):
        response = client.get(f"/policies/{policy.pk}/")
    assert response.status_code == 200


def test_a_manager_sets_how_far_ahead_promises_may_go(client, manager, admin_client):
    policy = standard_policy(name="Standard")
    response = client.post(f"/policies/{policy.pk}/", posted(saved_rows(policy), policy, max_promise_days="14"))
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.max_promise_days == 14
    assert 'name="max_promise_days" value="14"' in client.get(f"/policies/{policy.pk}/").content.decode()
    for wrong, error in (("0", "greater than or equal to 1"), ("366", "less than or equal to 365")):
        response = client.post(f"/policies/{policy.pk}/", posted(saved_rows(policy), policy, max_promise_days=wrong))
        assert response.status_code == 400
        assert error in response.context["form"].errors["max_promise_days"][0]
    policy.refresh_from_db()
    assert policy.max_promise_days == 14
    assert (
        'name="max_promise_days"' in admin_client.get(f"/admin/collections/policy/{policy.pk}/change/").content.decode()
    )


def test_the_ladder_says_where_the_active_cases_stand_in_numbers_that_add_up(client, viewer):
    policy = standard_policy(name="Standard")
    for days in (2, 5, 6, 12, 21):  # overdue by: before day 3, twice past it, past day 10, at day 20
        InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=days))
    tick()
    assert Case.objects.filter(policy=policy, status__in=Case.ACTIVE_STATUSES).count() == 5
    page = client.get(f"/policies/{policy.pk}/").content.decode()
    ladder = page[page.index('<ol class="ladder">') : page.index("</ol>", page.index('<ol class="ladder">'))]
    badges = [re.findall(r'<span class="badge">([^<]*)</span>', step) for step in ladder.split("<li>")[1:]]
    assert badges == [
        ["2 went through it last", "1 waits for it"],  # day 3
        ["1 went through it last", "2 wait for it"],  # day 10
        ["2 wait for it"],  # day 20: one due, one waiting for a manager's approval
        [],  # day 30
    ]
    # Each count adds up to at most the active cases, which the page names.
    assert "5 active cases on this policy: each counts once on the last step it went through" in page
    assert "active case here" not in page
    # A manager's form says why a step can only move: the cases that stand on it, whichever way.
    signed_in(client, MANAGER, "maria")
    form = client.get(f"/policies/{policy.pk}/").content.decode()
    assert "In use by 3 active cases: their last step, their next, or waiting for approval" in form  # day 3


@pytest.mark.parametrize(
    "field", ["grace_days", "retry_window_days", "pre_dunning_days"], ids=["grace", "retry window", "card warning"]
)
def test_a_policy_day_count_beyond_ten_years_is_refused_next_to_its_field(client, manager, field):
    policy = standard_policy(name="Standard")
    response = client.post(f"/policies/{policy.pk}/", posted(saved_rows(policy), policy, **{field: "740000"}))
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [POLICY_DAYS_TOO_MANY % {"limit_value": POLICY_DAYS_MAX}]
    assert "At most 3650 days (ten years)." in response.content.decode()
    policy.refresh_from_db()
    assert (policy.grace_days, policy.retry_window_days, policy.pre_dunning_days) == (1, 30, 30)
    assert not LogEntry.objects.exists()

    response = client.post(f"/policies/{policy.pk}/", posted(saved_rows(policy), policy, **{field: "3650"}))
    assert response.status_code == 302
    policy.refresh_from_db()
    assert getattr(policy, field) == 3650


def test_a_step_day_beyond_ten_years_is_refused_next_to_its_field(client, manager):
    policy = standard_policy(name="Standard")
    rows = saved_rows(policy)
    response = client.post(f"/policies/{policy.pk}/", posted([*rows, step_row(5, 999_999_999, "call_task")], policy))
    assert response.status_code == 400
    new_step = response.context["steps"].forms[4]
    assert new_step.errors["offset_days"] == [POLICY_DAYS_TOO_MANY % {"limit_value": POLICY_DAYS_MAX}]
    assert policy.steps.count() == 4
    assert not LogEntry.objects.exists()


def test_the_database_refuses_day_counts_beyond_ten_years_from_anywhere(manager):
    policy = standard_policy(name="Standard")
    for field in ("grace_days", "retry_window_days", "pre_dunning_days"):
        with pytest.raises(IntegrityError, match=f"policy_{field}_in_range"), transaction.atomic():
            Policy.objects.filter(pk=policy.pk).update(**{field: POLICY_DAYS_MAX + 1})
    for promise_days in (0, 366):
        with pytest.raises(IntegrityError, match="policy_max_promise_days_in_range"), transaction.atomic():
            Policy.objects.filter(pk=policy.pk).update(max_promise_days=promise_days)
    with pytest.raises(IntegrityError, match="step_offset_days_in_range"), transaction.atomic():
        Step.objects.filter(policy=policy, position=4).update(offset_days=999_999_999)
    policy.refresh_from_db()
    assert (policy.grace_days, policy.max_promise_days) == (1, 30)
