"""Collectors in charge: drafts they personalize, ad-hoc messages, call outcomes; the template editor."""

import datetime as dt

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError

from dunning_site.accounts.models import Customer
from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.calls import call_outcome_record, case_message_compose
from dunning_site.collections.case_core import case_pause
from dunning_site.collections.ladder import DRAFT_WAITS, case_step_perform_now
from dunning_site.collections.models import Case, CaseEvent, Step
from dunning_site.collections.promises import PROMISE_ABOVE_OWED, PROMISE_TOO_FAR, promise_record
from dunning_site.collections.tests.factories import PolicyFactory, ladder
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message, MessageTemplate
from dunning_site.notifications.services import SCHEDULE_HORIZON, SCHEDULE_TOO_FAR, message_release

pytestmark = pytest.mark.django_db

# A Thursday, 11:00 in Paris: inside the default contact hours.
NOW = dt.datetime(2026, 3, 5, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def collector(admin_user):
    return admin_user


@pytest.fixture
def reviewed_case(clock, collector, django_capture_on_commit_callbacks):
    """A case whose first reminder waits as a draft for its collector."""
    policy = PolicyFactory()
    (step, _) = ladder(policy, (3, Step.Action.REMINDER, "friendly", False), (10, Step.Action.REMINDER, "firm", False))
    Step.objects.filter(pk=step.pk).update(review_before_send=True)
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4), total=45_000)
    with django_capture_on_commit_callbacks(execute=True):
        tick()
    case = Case.objects.get()
    Case.objects.filter(pk=case.pk).update(assignee=collector)
    return case


def test_a_step_marked_review_before_send_waits_as_a_draft(reviewed_case, run_jobs):
    run_jobs()
    draft = Message.objects.get()
    assert draft.status == Message.Status.DRAFT
    assert mail.outbox == []
    assert CaseEvent.objects.filter(case=reviewed_case, type="collections.step.drafted").exists()


def test_the_collectors_edited_draft_is_what_the_customer_receives(
    reviewed_case, collector, admin_client, run_jobs, django_capture_on_commit_callbacks
):
    draft = Message.objects.get()
    edited_body = "Dear Ada,\n\nAs we discussed on the phone, €450.00 is still open. Thank you for settling it today.\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/collections/draft/{draft.pk}/change/",
            {"subject": "As discussed: €450.00", "body": edited_body, "html_body": "", "send": "now", "send_at": ""},
        )
    assert response.status_code == 302
    run_jobs()
    (email,) = mail.outbox
    assert email.subject == "As discussed: €450.00"
    assert email.body == edited_body
    draft.refresh_from_db()
    assert (draft.status, draft.edited_by, draft.body) == (Message.Status.SENT, collector, edited_body)
    edited = CaseEvent.objects.get(case=reviewed_case, type="collections.message.edited")
    assert edited.user == collector and edited.actor == "user"
    assert edited.data["body"] == edited_body
    released = CaseEvent.objects.get(case=reviewed_case, type="collections.message.released")
    assert released.user == collector
    assert CaseEvent.objects.filter(case=reviewed_case, type="collections.message.sent").exists()


def test_a_draft_can_be_scheduled_and_the_time_must_be_in_the_future(reviewed_case, admin_client):
    draft = Message.objects.get()
    form = {"subject": draft.subject, "body": draft.body, "html_body": "", "send": "later"}
    response = admin_client.post(f"/admin/collections/draft/{draft.pk}/change/", form | {"send_at": ""})
    assert "Say when to send it." in response.content.decode()
    later = NOW + dt.timedelta(days=1)
    admin_client.post(
        f"/admin/collections/draft/{draft.pk}/change/",
        form | {"send_at_0": later.date().isoformat(), "send_at_1": "09:30:00", "send_at": "2026-03-06 09:30"},
    )
    draft.refresh_from_db()
    assert draft.status == Message.Status.QUEUED
    assert draft.send_after == dt.datetime(2026, 3, 6, 9, 30, tzinfo=dt.UTC)
    assert CaseEvent.objects.get(type="collections.message.scheduled").data["at"].startswith("2026-03-06T09:30")


def test_a_collector_writes_an_ad_hoc_message_from_a_template(clock, collector):
    policy = PolicyFactory()
    ladder(policy, (3, Step.Action.REMINDER, "friendly", False))
    template = MessageTemplate.objects.create(
        key="goodwill",
        subject="About {{ total_overdue }}",
        body="Hello {{ customer_name }}, {{ collector_name }} here.",
    )
    invoice = InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4), total=1_000)
    tick()
    case = Case.objects.get()
    collector.first_name, collector.last_name = "Grace", "Hopper"
    collector.save()
    draft = case_message_compose(case=case, template=template, channel="email", user=collector)
    assert draft.status == Message.Status.DRAFT
    assert draft.subject == "About €10.00"
    assert draft.body == f"Hello {invoice.customer.name}, Grace Hopper here.\n"
    assert case.messages.filter(pk=draft.pk).exists()
    assert CaseEvent.objects.filter(case=case, type="collections.message.composed", user=collector).exists()


def test_the_admin_action_writes_a_draft_and_opens_it(clock, admin_client):
    policy = PolicyFactory()
    ladder(policy, (3, Step.Action.REMINDER, "friendly", False))
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4))
    tick()
    case = Case.objects.get()
    response = admin_client.post(
        "/admin/collections/case/",
        {"action": "write_message", "_selected_action": [case.pk], "compose": "1", "channel": "email", "template": ""},
    )
    draft = Message.objects.get(status=Message.Status.DRAFT)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/collections/draft/{draft.pk}/change/"


@pytest.fixture
def call_case(clock, collector):
    policy = PolicyFactory()
    ladder(policy, (3, Step.Action.CALL_TASK, "firm", False))
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4), total=30_000, customer__phone="+33612345678")
    tick()
    case = Case.objects.get()
    return case, case.messages.get()


def test_a_call_task_carries_its_script_and_a_promise_pauses_the_case(call_case, collector):
    case, call = call_case
    assert call.channel == "call"
    assert "€300.00" in call.body
    promised_on = NOW.date() + dt.timedelta(days=5)
    call_outcome_record(
        message=call, outcome="promise", user=collector, promised_on=promised_on, promised_amount=30_000
    )
    case.refresh_from_db()
    assert case.status == Case.Status.PAUSED
    assert case.pause_reason == f"Promise to pay €300.00 by {promised_on.isoformat()}"
    logged = CaseEvent.objects.get(case=case, type="collections.call.logged")
    assert logged.data["outcome"] == "promise" and logged.user == collector


def test_a_wrong_number_makes_the_phone_unusable_and_a_dispute_pauses(call_case, collector):
    case, call = call_case
    call_outcome_record(message=call, outcome="wrong_number", user=collector)
    assert Customer.objects.get(pk=case.customer_id).phone_unusable_since == NOW
    call_outcome_record(message=call, outcome="dispute", user=collector, note="Says the invoice was cancelled")
    case.refresh_from_db()
    assert (case.status, case.pause_reason) == (Case.Status.PAUSED, "dispute")


def test_recording_a_call_outcome_in_the_admin(call_case, admin_client):
    case, call = call_case
    response = admin_client.post(
        f"/admin/collections/calltask/{call.pk}/change/",
        {"outcome": "promise", "note": "", "promised_on": "2026-03-12", "promised_amount": "300.00"},
    )
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.status == Case.Status.PAUSED
    assert CaseEvent.objects.get(type="collections.call.logged").data["promised_amount"] == 30_000


def test_nothing_goes_to_a_do_not_contact_customer_and_the_timeline_says_why(
    clock, run_jobs, django_capture_on_commit_callbacks
):
    policy = PolicyFactory()
    ladder(policy, (3, Step.Action.REMINDER, "friendly", False))
    invoice = InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4))
    Customer.objects.filter(pk=invoice.customer_id).update(do_not_contact=True, do_not_contact_reason="bankruptcy")
    with django_capture_on_commit_callbacks(execute=True):
        tick()
    run_jobs()
    assert mail.outbox == []
    message = Message.objects.get()
    assert message.status == Message.Status.CANCELLED
    event = CaseEvent.objects.get(type="collections.message.cancelled")
    assert event.data["reason"] == "The customer must not be contacted (Bankruptcy)."


def test_the_template_editor_refuses_unsafe_templates_and_warns_about_marketing(admin_client):
    form = {"key": "k", "channel": "email", "language": "en", "segment": "", "tone": "friendly", "html_body": ""}
    response = admin_client.post(
        "/admin/notifications/messagetemplate/add/",
        form | {"subject": "Hi", "body": "Hello\n{{ settings.SECRET_KEY }}"},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["body"][0].startswith("Line 2: “settings.SECRET_KEY” is not something a message can use")
    assert not MessageTemplate.objects.exists()

    response = admin_client.post(
        "/admin/notifications/messagetemplate/add/",
        form | {"subject": "Overdue", "body": "Pay {{ total_overdue }} now and get a coupon!"},
        follow=True,
    )
    assert "Dunning messages must stay transactional" in response.content.decode()
    assert MessageTemplate.objects.count() == 1


def test_the_template_editor_previews_with_a_real_customer(clock, admin_client):
    invoice = InvoiceFactory(customer__name="Zoë Martin", customer__language="fr", total=123_456)
    template = MessageTemplate.objects.create(key="p", subject="{{ total_overdue }}", body="{{ customer_name }}")
    response = admin_client.get(
        f"/admin/notifications/messagetemplate/{template.pk}/change/?preview_customer={invoice.customer_id}"
    )
    page = response.content.decode()
    assert "Preview for Zoë Martin" in page
    assert "1\u202f234,56\xa0€" in page


def test_editing_the_text_of_an_html_draft_sends_the_edited_text_only(reviewed_case, collector, admin_client):
    draft = Message.objects.get()
    Message.objects.filter(pk=draft.pk).update(html_body="<p>The template's words</p>")
    admin_client.post(
        f"/admin/collections/draft/{draft.pk}/change/",
        {"subject": draft.subject, "body": "My own words.", "html_body": "<p>The template's words</p>", "send": "keep"},
    )
    draft.refresh_from_db()
    assert (draft.body, draft.html_body) == ("My own words.\n", "")


def test_pausing_cancels_reminders_waiting_to_go_out(clock, collector, django_capture_on_commit_callbacks):
    policy = PolicyFactory()
    ladder(policy, (3, Step.Action.REMINDER, "friendly", False))
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4))
    tick()  # the reminder is queued; no worker has sent it yet
    case = Case.objects.get()
    case_pause(case=case, until=None, reason="dispute", user=collector)
    assert Message.objects.get().status == Message.Status.CANCELLED
    assert CaseEvent.objects.get(type="collections.case.paused").data["cancelled_messages"] == 1


# ---------------------------------------------------------------------------------------------
# Promises within the policy's limit and what is owed; schedules within the horizon (issue 9)

# NOW is 5 March 2026; the policy takes promises up to 30 days ahead, the call's case owes €300.00.
TOO_FAR = PROMISE_TOO_FAR % {"days": 30, "latest": "Sat 4 Apr 2026"}
TOO_MUCH = PROMISE_ABOVE_OWED % {"amount": "€300.01", "owed": "€300.00"}


@pytest.mark.parametrize(
    ("promised_on", "amount", "problems"),
    [
        (dt.date(2026, 4, 5), 30_000, {"promised_on": [TOO_FAR]}),
        (dt.date(9999, 12, 31), 30_000, {"promised_on": [TOO_FAR]}),
        (dt.date(2026, 3, 10), 30_001, {"promised_amount": [TOO_MUCH]}),
        (dt.date(2026, 4, 5), 30_001, {"promised_on": [TOO_FAR], "promised_amount": [TOO_MUCH]}),
    ],
)
def test_the_services_refuse_a_promise_beyond_the_policy_or_above_what_is_owed(
    call_case, collector, promised_on, amount, problems
):
    case, call = call_case
    with pytest.raises(ValidationError) as refused:
        call_outcome_record(
            message=call, outcome="promise", user=collector, promised_on=promised_on, promised_amount=amount
        )
    assert refused.value.message_dict == problems
    with pytest.raises(ValidationError) as refused:
        promise_record(source="case_page", case=case, promised_on=promised_on, amount=amount, user=collector)
    assert refused.value.message_dict == problems
    call.refresh_from_db()
    case.refresh_from_db()
    assert (call.call_outcome, case.status) == ("", Case.Status.OPEN)
    assert not CaseEvent.objects.filter(type__in=["collections.call.logged", "collections.case.paused"]).exists()


def test_the_admin_refuses_a_call_promise_beyond_the_policy_or_above_what_is_owed(call_case, admin_client):
    case, call = call_case
    response = admin_client.post(
        f"/admin/collections/calltask/{call.pk}/change/",
        {"outcome": "promise", "note": "", "promised_on": "2026-04-05", "promised_amount": "300.01"},
    )
    errors = response.context["adminform"].form.errors
    assert (errors["promised_on"], errors["promised_amount"]) == ([TOO_FAR], [TOO_MUCH])
    assert Message.objects.get(pk=call.pk).call_outcome == ""
    assert Case.objects.get(pk=case.pk).status == Case.Status.OPEN


def test_a_draft_cannot_be_scheduled_beyond_the_horizon(reviewed_case, collector, admin_client):
    draft = Message.objects.get()
    too_far = SCHEDULE_TOO_FAR % {"days": 90, "latest": "Wed 3 Jun 2026, 10:00"}
    form = {"subject": draft.subject, "body": draft.body, "html_body": "", "send": "later"}
    response = admin_client.post(f"/admin/collections/draft/{draft.pk}/change/", form | {"send_at": "9999-12-31 09:30"})
    assert response.context["adminform"].form.errors["send_at"] == [too_far]
    with pytest.raises(ValidationError) as refused:
        message_release(message=draft, user=collector, send_at=NOW + SCHEDULE_HORIZON + dt.timedelta(minutes=1))
    assert refused.value.message_dict == {"send_at": [too_far]}
    draft.refresh_from_db()
    assert draft.status == Message.Status.DRAFT
    message_release(message=draft, user=collector, send_at=NOW + SCHEDULE_HORIZON)
    draft.refresh_from_db()
    assert (draft.status, draft.send_after) == (Message.Status.QUEUED, dt.datetime(2026, 6, 3, 10, tzinfo=dt.UTC))


def test_the_ladder_waits_for_a_draft_and_goes_on_after_it_with_its_spacing(
    reviewed_case, clock, collector, run_jobs, django_capture_on_commit_callbacks
):
    """The firm reminder (day 10) never reaches a customer whose friendly one (day 3) still waits
    for a collector; once the friendly one goes, the firm one keeps its seven days' distance."""
    draft = Message.objects.get()
    day_10 = Step.objects.get(offset_days=10)
    clock.move_to(NOW + dt.timedelta(days=8))  # past the firm reminder's day
    with django_capture_on_commit_callbacks(execute=True):
        tick()
    reviewed_case.refresh_from_db()
    assert reviewed_case.next_step == day_10
    assert not reviewed_case.executions.filter(step=day_10).exists()
    assert Message.objects.count() == 1

    released_at = NOW + dt.timedelta(days=8, hours=1)
    clock.move_to(released_at)
    with django_capture_on_commit_callbacks(execute=True):
        message_release(message=draft, user=collector)
    reviewed_case.refresh_from_db()
    assert reviewed_case.next_action_at == released_at + dt.timedelta(days=7)

    clock.move_to(released_at + dt.timedelta(days=7))
    with django_capture_on_commit_callbacks(execute=True):
        tick()
    assert reviewed_case.executions.filter(step=day_10).exists()
    run_jobs()
    assert [email.subject for email in mail.outbox] == [
        "[friendly] Day 3: €450.00 overdue",
        "[firm] Day 10: €450.00 overdue",
    ]


def test_send_now_is_refused_while_the_step_before_waits_as_a_draft(reviewed_case, collector):
    with pytest.raises(ValidationError) as refused:
        case_step_perform_now(case=reviewed_case, step=reviewed_case.next_step, user=collector)
    assert refused.value.messages == [DRAFT_WAITS % {"step": reviewed_case.current_step}]
    assert Message.objects.count() == 1
