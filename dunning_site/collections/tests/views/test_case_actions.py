"""A collector acts on the case page: each action as a plain post and in place with htmx."""

import datetime as dt

import django_rq
import pytest
from django.core import mail
from django.test import Client
from django.utils.html import escape

from dunning_site.accounts.models import Channel, Customer, Invoice, Payment
from dunning_site.accounts.services import OVERPAYMENT, consent_record
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from dunning_site.collections.case_core import HOLD_TOO_FAR
from dunning_site.collections.forms import (
    DISPUTE_NEEDS_A_REASON,
    HOLD_UNTIL_IN_PAST,
    PAID_IN_FUTURE,
    PROMISE_NEEDS_AMOUNT,
    PROMISE_NEEDS_DATE,
)
from dunning_site.collections.ladder import STEP_ALREADY_PERFORMED
from dunning_site.collections.models import Approval, Case, CaseEvent, Policy, Step, StepExecution
from dunning_site.collections.promises import PROMISE_ABOVE_OWED, PROMISE_DATE_IN_PAST, PROMISE_TOO_FAR, promise_record
from dunning_site.collections.roles import COLLECTOR, VIEWER
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.conftest import signed_in
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.tick import tick
from dunning_site.collections.views.case_actions import NOT_A_DRAFT, SUBJECT_TOO_LONG
from dunning_site.lib.money import AMOUNT_TOO_LARGE, TOO_MANY_DECIMALS
from dunning_site.notifications.models import Message
from dunning_site.notifications.rules import OPTED_OUT, OUTSIDE_HOURS
from dunning_site.notifications.services import SCHEDULE_IN_PAST, SCHEDULE_TOO_FAR

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
# NOW is Monday 16 March 2026, 10:00 UTC; the collector works in UTC. The case owes €100.00 and
# its policy takes promises up to 30 days ahead.
PROMISE_BEYOND_POLICY = PROMISE_TOO_FAR % {"days": 30, "latest": "Wed 15 Apr 2026"}
PROMISE_ABOVE_CASE = PROMISE_ABOVE_OWED % {"amount": "€100.01", "owed": "€100.00"}
TOO_FAR = SCHEDULE_TOO_FAR % {"days": 90, "latest": "Sun 14 Jun 2026, 10:00"}
TOO_LARGE_IN_EUR = AMOUNT_TOO_LARGE % {"currency": "EUR", "largest": "€92,233,720,368,547,758.07"}


@pytest.fixture
def case():
    """Five days overdue: the day-3 reminder went out, the day-10 firm reminder is next."""
    standard_policy()
    customer = CustomerFactory(name="Ada Lovelace", time_zone="Europe/Paris")
    InvoiceFactory(customer=customer, number="INV-1", due_on=NOW.date() - dt.timedelta(days=5), total=10_000)
    tick()
    return customer.cases.get()


def firm_reminder(case: Case) -> Step:
    return case.policy.steps.get(position=2)


def page_of(response) -> str:
    return response.content.decode()


# ---------------------------------------------------------------------------------------------
# The next step, now


def test_do_it_now_sends_the_next_step_once_through_the_engine(
    client, collector, case, run_jobs, django_capture_on_commit_callbacks
):
    step = firm_reminder(case)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/cases/{case.pk}/send-now/", {"step": step.pk}, follow=True)
    assert response.redirect_chain == [(f"/cases/{case.pk}/", 302)]
    assert "Day 10: Reminder (Email): the email goes out now." in page_of(response)
    run_jobs()
    assert [email.subject for email in mail.outbox] == ["[firm] Day 10: €100.00 overdue"]
    case.refresh_from_db()
    assert (case.current_step, str(case.next_step)) == (step, "Day 20: Final notice (Email)")
    assert CaseEvent.objects.get(type="collections.step.brought_forward").user == collector

    # A second click (or a stale page) does not send it again.
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(f"/cases/{case.pk}/send-now/", {"step": step.pk}, follow=True)
    assert STEP_ALREADY_PERFORMED in page_of(again)
    run_jobs()
    assert len(mail.outbox) == 1
    assert StepExecution.objects.filter(case=case, step=step).count() == 1
    # The tick does not send it either: the case waits for day 20.
    tick(now=NOW + dt.timedelta(days=2))
    assert StepExecution.objects.filter(case=case).count() == 2


def test_do_it_now_with_htmx_answers_with_the_refreshed_case(client, collector, case):
    response = client.post(f"/cases/{case.pk}/send-now/", {"step": firm_reminder(case).pk}, **HTMX)
    assert response.status_code == 200
    page = page_of(response)
    assert page.lstrip().startswith('<div id="case-main"')
    assert "<html" not in page
    assert "the email goes out now." in page
    assert "Day 20: Final notice (Email)" in page  # the next step moved on
    assert "[firm] Day 10" in page  # in the messages list
    assert "Step brought forward" in page  # and on the timeline


def test_a_stale_do_it_now_with_htmx_says_so(client, collector, case):
    client.post(f"/cases/{case.pk}/send-now/", {"step": firm_reminder(case).pk})
    response = client.post(f"/cases/{case.pk}/send-now/", {"step": firm_reminder(case).pk}, **HTMX)
    assert response.status_code == 409
    assert STEP_ALREADY_PERFORMED in page_of(response)


def test_a_step_that_needs_approval_goes_to_a_manager_not_to_the_customer(client, collector, case):
    client.post(f"/cases/{case.pk}/send-now/", {"step": firm_reminder(case).pk})
    final_notice = case.policy.steps.get(position=3)
    response = client.post(f"/cases/{case.pk}/send-now/", {"step": final_notice.pk}, follow=True)
    assert "approval: it is now waiting for one" in page_of(response)
    approval = Approval.objects.get(case=case, step=final_notice)
    assert (approval.status, approval.requested_by) == (Approval.Status.PENDING, collector)
    assert Case.objects.get(pk=case.pk).status == Case.Status.AWAITING_APPROVAL
    assert not StepExecution.objects.filter(case=case, step=final_notice).exists()
    # Asking again while it waits changes nothing.
    client.post(f"/cases/{case.pk}/send-now/", {"step": final_notice.pk})
    assert Approval.objects.filter(case=case).count() == 1


def test_a_paused_case_cannot_be_sent_now(client, collector, case):
    client.post(f"/cases/{case.pk}/pause/", {"kind": "dispute", "reason": "Wrong amount"})
    response = client.post(f"/cases/{case.pk}/send-now/", {"step": firm_reminder(case).pk}, follow=True)
    assert "is paused, so its next step cannot be performed now" in page_of(response)
    assert StepExecution.objects.filter(case=case).count() == 1


# ---------------------------------------------------------------------------------------------
# Personalizing


def test_personalize_writes_the_next_step_as_a_draft_and_opens_it(client, collector, case):
    response = client.post(f"/cases/{case.pk}/personalize/", {"step": firm_reminder(case).pk})
    draft = Message.objects.get(status=Message.Status.DRAFT)
    assert response.status_code == 302
    assert response["Location"] == f"/cases/{case.pk}/messages/{draft.pk}/edit/"
    assert draft.subject == "[firm] Day 10: €100.00 overdue"
    assert StepExecution.objects.get(case=case, step=firm_reminder(case)).message == draft
    page = page_of(client.get(response["Location"]))
    assert "Personalize the email to Ada Lovelace" in page
    assert "[firm] Day 10: €100.00 overdue" in page
    assert 'hx-trigger="input changed delay:400ms, change"' in page
    # The case page lists the draft with a link to edit it.
    case_page = page_of(client.get(f"/cases/{case.pk}/"))
    assert "Drafts to personalize" in case_page
    assert f'href="/cases/{case.pk}/messages/{draft.pk}/edit/"' in case_page


def test_personalize_with_htmx_sends_the_browser_to_the_editor(client, collector, case):
    response = client.post(f"/cases/{case.pk}/personalize/", {"step": firm_reminder(case).pk}, **HTMX)
    draft = Message.objects.get(status=Message.Status.DRAFT)
    assert response["HX-Redirect"] == f"/cases/{case.pk}/messages/{draft.pk}/edit/"


@pytest.fixture
def draft(client, collector, case) -> Message:
    client.post(f"/cases/{case.pk}/personalize/", {"step": firm_reminder(case).pk})
    return Message.objects.get(status=Message.Status.DRAFT)


def test_the_preview_renders_what_is_typed_for_this_customer_without_saving(client, case, draft):
    response = client.post(
        f"/cases/{case.pk}/messages/{draft.pk}/preview/",
        {"subject": "For {{ company_name }}", "body": "Dear {{ customer_name }}, {{ total_overdue }} is open."},
        **HTMX,
    )
    page = page_of(response)
    assert response.status_code == 200
    assert page.lstrip().startswith('<section id="preview"')
    assert "Dear Ada Lovelace, €100.00 is open." in page
    draft.refresh_from_db()
    assert draft.subject == "[firm] Day 10: €100.00 overdue"  # nothing saved


def test_the_preview_shows_template_errors_clearly(client, case, draft):
    response = client.post(
        f"/cases/{case.pk}/messages/{draft.pk}/preview/",
        {"subject": "Hello", "body": "Dear {{ customer_nme }},\n{% if %}"},
        **HTMX,
    )
    page = page_of(response)
    assert "This cannot be sent as it is" in page
    assert "Message: Line 2:" in page


def test_the_preview_shows_a_scheduled_time_in_both_zones(client, case, draft):
    response = client.post(
        f"/cases/{case.pk}/messages/{draft.pk}/preview/",
        {"subject": "Hello", "body": "Hi", "send_at": "2026-03-17T09:00"},
        **HTMX,
    )
    # The viewer works in UTC; the customer is in Paris, an hour ahead.
    assert "Tue 17 Mar, 09:00</strong> your time, which is <strong>Tue 17 Mar, 10:00" in page_of(response)


def test_the_edited_text_is_what_the_customer_receives(
    client, collector, case, draft, run_jobs, django_capture_on_commit_callbacks
):
    typed = "Dear {{ customer_name }},\n\nas agreed on the phone, {{ total_overdue }} is still open.\n\nGrace"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/cases/{case.pk}/messages/{draft.pk}/edit/",
            {"subject": "As agreed: {{ total_overdue }}", "body": typed, "send": "now"},
            follow=True,
        )
    assert response.redirect_chain == [(f"/cases/{case.pk}/", 302)]
    assert "Sent to the outbox: it goes out now." in page_of(response)
    run_jobs()
    expected = "Dear Ada Lovelace,\n\nas agreed on the phone, €100.00 is still open.\n\nGrace\n"
    (email,) = mail.outbox
    assert (email.subject, email.body) == ("As agreed: €100.00", expected)
    draft.refresh_from_db()
    assert (draft.status, draft.body, draft.edited_by) == (Message.Status.SENT, expected, collector)
    page = page_of(client.get(f"/cases/{case.pk}/"))
    assert "As agreed: €100.00" in page  # the messages list
    assert "Message personalized" in page and "Message sent" in page  # the timeline


# Monday 16 March 2026, 23:28 UTC: 00:28 on Tuesday in Berlin, outside the default contact hours.
BERLIN_NIGHT = dt.datetime(2026, 3, 16, 23, 28, tzinfo=dt.UTC)
HELD_UNTIL_BERLIN_MORNING = escape(
    "is held by the contact rules until Tue 17 Mar, 07:00 your time (Tue 17 Mar, 08:00 for the customer): "
    + OUTSIDE_HOURS % {"start": "08:00", "end": "20:00", "days": "Mon–Sat", "zone": "Europe/Berlin"}
)


def test_send_now_at_night_says_the_contact_hours_hold_the_message_until_when(
    client, collector, case, draft, clock, run_jobs, django_capture_on_commit_callbacks
):
    Customer.objects.filter(pk=case.customer_id).update(time_zone="Europe/Berlin")
    clock.move_to(BERLIN_NIGHT)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/cases/{case.pk}/messages/{draft.pk}/edit/", {"subject": "Hi", "body": "Hi", "send": "now"}, follow=True
        )
    page = page_of(response)
    assert f'class="flash flash-warning" role="status">Sent to the outbox: it {HELD_UNTIL_BERLIN_MORNING}' in page
    assert "goes out now" not in page
    # The delivery decides the same: nothing goes, and the message waits for 08:00 in Berlin.
    run_jobs()
    assert mail.outbox == []
    draft.refresh_from_db()
    assert (draft.status, draft.send_after) == (Message.Status.QUEUED, dt.datetime(2026, 3, 17, 7, tzinfo=dt.UTC))


def test_send_now_says_a_message_the_contact_rules_forbid_will_not_go(
    client, collector, case, draft, run_jobs, django_capture_on_commit_callbacks
):
    consent_record(customer=case.customer, channel=Channel.EMAIL, granted=False, source="unsubscribe")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/cases/{case.pk}/messages/{draft.pk}/edit/", {"subject": "Hi", "body": "Hi", "send": "now"}, **HTMX
        )
    assert response["HX-Redirect"] == f"/cases/{case.pk}/"
    reason = OPTED_OUT % {"channel": "Email"}
    assert f"Sent to the outbox: it will not go: {reason}" in page_of(client.get(f"/cases/{case.pk}/"))
    run_jobs()
    assert mail.outbox == []
    draft.refresh_from_db()
    assert (draft.status, draft.error) == (Message.Status.CANCELLED, reason)


def test_a_draft_scheduled_for_a_sunday_says_the_contact_rules_hold_it_to_monday(client, collector, case, draft):
    data = {"subject": "Hello", "body": "Hello again", "send": "later", "send_at": "2026-03-22T10:00"}
    response = client.post(f"/cases/{case.pk}/messages/{draft.pk}/edit/", data, follow=True)
    hours = OUTSIDE_HOURS % {"start": "08:00", "end": "20:00", "days": "Mon–Sat", "zone": "Europe/Paris"}
    assert escape(
        "Scheduled for Sun 22 Mar, 10:00 your time (Sun 22 Mar, 11:00 for the customer). Then it is held by the "
        f"contact rules until Mon 23 Mar, 07:00 your time (Mon 23 Mar, 08:00 for the customer): {hours}"
    ) in page_of(response)


def test_do_it_now_at_night_says_the_step_is_held_until_the_customers_morning(client, collector, case, clock):
    Customer.objects.filter(pk=case.customer_id).update(time_zone="Europe/Berlin")
    clock.move_to(BERLIN_NIGHT)
    response = client.post(f"/cases/{case.pk}/send-now/", {"step": firm_reminder(case).pk}, **HTMX)
    assert response.status_code == 200
    assert f"Day 10: Reminder (Email): the email {HELD_UNTIL_BERLIN_MORNING}" in page_of(response)
    assert "goes out now" not in page_of(response)


def test_an_email_with_an_html_version_is_personalized_in_both(client, collector, case):
    template = firm_reminder(case).template
    template.html_body = "<p>Dear {{ customer_name }},</p><p>{{ total_overdue }} is open.</p>"
    template.save()
    client.post(f"/cases/{case.pk}/personalize/", {"step": firm_reminder(case).pk})
    draft = Message.objects.get(status=Message.Status.DRAFT)
    assert draft.html_body == "<p>Dear Ada Lovelace,</p><p>€100.00 is open.</p>"
    editor = page_of(client.get(f"/cases/{case.pk}/messages/{draft.pk}/edit/"))
    assert 'name="html_body"' in editor and "<iframe" in editor
    preview = client.post(
        f"/cases/{case.pk}/messages/{draft.pk}/preview/",
        {"subject": "Hi", "body": "Hi", "html_body": "<p>Hi {{ customer_name }} <b>now</b></p>"},
        **HTMX,
    )
    assert 'srcdoc="&lt;p&gt;Hi Ada Lovelace &lt;b&gt;now&lt;/b&gt;&lt;/p&gt;"' in page_of(preview)
    client.post(
        f"/cases/{case.pk}/messages/{draft.pk}/edit/",
        {
            "subject": "Hi",
            "body": "Hi {{ customer_name }}",
            "html_body": "<p>Hi {{ customer_name }}</p>",
            "send": "now",
        },
    )
    draft.refresh_from_db()
    assert (draft.status, draft.body, draft.html_body) == ("queued", "Hi Ada Lovelace\n", "<p>Hi Ada Lovelace</p>")


def test_a_draft_is_scheduled_in_the_viewers_zone(client, collector, case, draft):
    collector.time_zone = "America/New_York"
    collector.save()
    response = client.post(
        f"/cases/{case.pk}/messages/{draft.pk}/edit/",
        {"subject": "Hello", "body": "Hello again", "send": "later", "send_at": "2026-03-17T09:00"},
        follow=True,
    )
    draft.refresh_from_db()
    assert draft.status == Message.Status.QUEUED
    assert draft.send_after == dt.datetime(2026, 3, 17, 13, 0, tzinfo=dt.UTC)  # 09:00 in New York
    assert "Scheduled for Tue 17 Mar, 09:00 your time (Tue 17 Mar, 14:00 for the customer)" in page_of(response)


def test_a_draft_scheduled_on_the_last_day_of_the_horizon_goes(client, collector, case, draft):
    data = {"subject": "Hello", "body": "Hello again", "send": "later", "send_at": "2026-06-14T10:00"}
    client.post(f"/cases/{case.pk}/messages/{draft.pk}/edit/", data)
    draft.refresh_from_db()
    assert (draft.status, draft.send_after) == (Message.Status.QUEUED, dt.datetime(2026, 6, 14, 10, tzinfo=dt.UTC))


def test_a_time_in_another_year_is_shown_with_its_year(client, collector, case, draft, clock):
    clock.move_to(dt.datetime(2026, 12, 21, 10, 0, tzinfo=dt.UTC))
    client.force_login(collector)  # nine months on, the session has expired
    response = client.post(
        f"/cases/{case.pk}/messages/{draft.pk}/edit/",
        {"subject": "Hello", "body": "Hello again", "send": "later", "send_at": "2027-01-05T09:00"},
        follow=True,
    )
    page = page_of(response)
    assert "Scheduled for Tue 5 Jan 2027, 09:00 your time (Tue 5 Jan 2027, 10:00 for the customer)" in page
    assert "to go Tue 5 Jan 2027, 09:00" in page
    assert "Mon 16 Mar, 10:00" in page  # when the draft was written: this year, no year


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"subject": "Hi", "body": "Hi", "send": "later", "send_at": "2026-03-16T09:00"}, SCHEDULE_IN_PAST),
        ({"subject": "Hi", "body": "Hi", "send": "later", "send_at": "9999-12-31T23:59"}, TOO_FAR),
        ({"subject": "Hi", "body": "Hi", "send": "later", "send_at": "2026-06-14T10:01"}, TOO_FAR),
        ({"subject": "Hi", "body": "Hi", "send": "later", "send_at": ""}, "Say when to send it."),
        ({"subject": "Hi", "body": "{{ nope }}", "send": "now"}, "“nope” is not something a message can use"),
        ({"subject": "Hi", "body": "", "send": "now"}, "This field is required."),
    ],
)
def test_bad_edits_are_refused_next_to_the_field_and_nothing_is_saved(client, case, draft, data, error):
    response = client.post(f"/cases/{case.pk}/messages/{draft.pk}/edit/", data)
    assert response.status_code == 400
    assert error in page_of(response)
    draft.refresh_from_db()
    assert (draft.status, draft.subject) == (Message.Status.DRAFT, "[firm] Day 10: €100.00 overdue")
    htmx = client.post(f"/cases/{case.pk}/messages/{draft.pk}/edit/", data, **HTMX)
    assert htmx.status_code == 400
    assert page_of(htmx).lstrip().startswith('<form id="draft-form"') and error in page_of(htmx)


def test_a_subject_that_renders_longer_than_a_subject_can_be_is_refused_next_to_it(client, case, draft):
    # 106 characters as typed, 26 times "Ada Lovelace " once written out for the customer.
    subject = '{% for x in "abcdefghijklmnopqrstuvwxyz" %}{{ customer_name }} {% endfor %}'
    error = SUBJECT_TOO_LONG % {"length": 337, "max_length": 255}
    for extra in ({}, HTMX):
        response = client.post(
            f"/cases/{case.pk}/messages/{draft.pk}/edit/", {"subject": subject, "body": "Hi", "send": "now"}, **extra
        )
        assert response.status_code == 400
        assert f'id="draft-subject_error"><li>{error}</li>' in page_of(response)  # next to the subject
    draft.refresh_from_db()
    assert (draft.status, draft.subject) == (Message.Status.DRAFT, "[firm] Day 10: €100.00 overdue")
    preview = client.post(f"/cases/{case.pk}/messages/{draft.pk}/preview/", {"subject": subject, "body": "Hi"}, **HTMX)
    assert error in page_of(preview)


def test_saving_keeps_the_draft_and_htmx_goes_back_to_the_case(client, case, draft):
    response = client.post(
        f"/cases/{case.pk}/messages/{draft.pk}/edit/", {"subject": "Hi", "body": "Kept", "send": "save"}, **HTMX
    )
    assert response["HX-Redirect"] == f"/cases/{case.pk}/"
    draft.refresh_from_db()
    assert (draft.status, draft.body) == (Message.Status.DRAFT, "Kept\n")


def test_a_message_already_sent_cannot_be_edited(client, case, draft):
    client.post(f"/cases/{case.pk}/messages/{draft.pk}/edit/", {"subject": "Hi", "body": "Go", "send": "now"})
    response = client.get(f"/cases/{case.pk}/messages/{draft.pk}/edit/", follow=True)
    assert NOT_A_DRAFT % {"status": "queued"} in page_of(response)


def test_a_message_of_another_case_is_not_found(client, collector, case, draft):
    other = InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=5))
    tick()
    other_case = Case.objects.get(customer=other.customer)
    assert client.get(f"/cases/{other_case.pk}/messages/{draft.pk}/edit/").status_code == 404


# ---------------------------------------------------------------------------------------------
# Pause and resume


def test_a_promise_to_pay_pauses_the_case_until_the_day_after(client, collector, case):
    response = client.post(
        f"/cases/{case.pk}/pause/",
        {"kind": "promise", "promised_on": "2026-03-20", "promised_amount": "60.50"},
        follow=True,
    )
    assert "On hold: Promise to pay €60.50 by 20 Mar." in page_of(response)
    case.refresh_from_db()
    assert case.status == Case.Status.PAUSED
    assert case.pause_reason == "Promise to pay €60.50 by 2026-03-20"
    assert case.paused_until == dt.datetime(2026, 3, 21, tzinfo=dt.UTC)
    assert CaseEvent.objects.get(type="collections.case.paused").user == collector


def test_a_dispute_pauses_with_its_reason_in_place(client, collector, case):
    response = client.post(f"/cases/{case.pk}/pause/", {"kind": "dispute", "reason": "Never received"}, **HTMX)
    assert response.status_code == 200
    assert "Paused (Dispute: Never received)" in page_of(response)
    assert "Resume the case" in page_of(response)


def test_a_manual_hold_and_resume(client, collector, case):
    client.post(f"/cases/{case.pk}/pause/", {"kind": "hold", "reason": "Talking to their CFO", "until": "2026-03-25"})
    case.refresh_from_db()
    assert (case.status, case.paused_until) == (Case.Status.PAUSED, dt.datetime(2026, 3, 25, tzinfo=dt.UTC))
    response = client.post(f"/cases/{case.pk}/resume/", **HTMX)
    assert "Resumed: the ladder goes on." in page_of(response)
    case.refresh_from_db()
    assert (case.status, case.pause_reason) == (Case.Status.OPEN, "")
    again = client.post(f"/cases/{case.pk}/resume/", follow=True)
    assert "is not on hold" in page_of(again)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"kind": "promise", "promised_amount": "10"}, PROMISE_NEEDS_DATE),
        ({"kind": "promise", "promised_on": "2026-03-20"}, PROMISE_NEEDS_AMOUNT),
        ({"kind": "promise", "promised_on": "2026-03-10", "promised_amount": "10"}, PROMISE_DATE_IN_PAST),
        (
            {"kind": "promise", "promised_on": "2026-03-20", "promised_amount": "10.005"},
            TOO_MANY_DECIMALS % {"currency": "EUR", "decimals": 2},
        ),
        ({"kind": "promise", "promised_on": "2026-03-20", "promised_amount": "0"}, "Enter an amount above zero."),
        ({"kind": "promise", "promised_on": "2026-04-16", "promised_amount": "10"}, PROMISE_BEYOND_POLICY),
        ({"kind": "promise", "promised_on": "9999-12-31", "promised_amount": "10"}, PROMISE_BEYOND_POLICY),
        ({"kind": "promise", "promised_on": "2026-03-20", "promised_amount": "100.01"}, PROMISE_ABOVE_CASE),
        ({"kind": "dispute", "reason": "  "}, DISPUTE_NEEDS_A_REASON),
        ({"kind": "hold", "reason": "Wait", "until": "2026-03-16"}, HOLD_UNTIL_IN_PAST),
        ({"kind": "holiday"}, "Select a valid choice."),
    ],
)
def test_bad_pauses_are_refused_next_to_the_field(client, collector, case, data, error):
    for extra in ({}, HTMX):
        response = client.post(f"/cases/{case.pk}/pause/", data, **extra)
        assert response.status_code == 400
        assert error in page_of(response)
    assert Case.objects.get(pk=case.pk).status == Case.Status.OPEN


@pytest.mark.parametrize("amount", ["1e250", "1e999999", "92233720368547758.08"])
def test_a_promise_larger_than_any_amount_is_refused_next_to_the_field(client, collector, case, amount):
    data = {"kind": "promise", "promised_on": "2026-03-20", "promised_amount": amount}
    for extra in ({}, HTMX):
        response = client.post(f"/cases/{case.pk}/pause/", data, **extra)
        assert response.status_code == 400
        assert TOO_LARGE_IN_EUR in page_of(response)
    assert Case.objects.get(pk=case.pk).status == Case.Status.OPEN
    assert not CaseEvent.objects.filter(type="collections.case.paused").exists()


# ---------------------------------------------------------------------------------------------
# Assign, note


def test_assign_to_a_collector_then_to_nobody(client, collector, case):
    colleague = signed_in(Client(), COLLECTOR, "linus", first_name="Linus", last_name="T")
    response = client.post(f"/cases/{case.pk}/assign/", {"assignee": colleague.pk}, **HTMX)
    assert "Assigned to Linus T." in page_of(response)
    assert "collector Linus T" in page_of(response)
    assert Case.objects.get(pk=case.pk).assignee == colleague
    client.post(f"/cases/{case.pk}/assign/", {"assignee": ""})
    assert Case.objects.get(pk=case.pk).assignee is None
    assert CaseEvent.objects.filter(type="collections.case.assigned", user=collector).count() == 2


def test_a_viewer_cannot_be_given_cases(client, collector, case):
    onlooker = signed_in(Client(), VIEWER, "olive")
    response = client.post(f"/cases/{case.pk}/assign/", {"assignee": onlooker.pk})
    assert response.status_code == 400
    assert "Select a valid choice" in page_of(response)
    assert Case.objects.get(pk=case.pk).assignee is None


def test_a_note_goes_on_the_timeline(client, collector, case):
    response = client.post(f"/cases/{case.pk}/notes/", {"text": "  CFO back on Friday.  "}, **HTMX)
    assert "“CFO back on Friday.”" in page_of(response)
    event = CaseEvent.objects.get(type="collections.case.note_added")
    assert (event.user, event.data["note"]) == (collector, "CFO back on Friday.")


@pytest.mark.parametrize(("text", "error"), [("   ", "This field is required."), ("x" * 2001, "at most 2000")])
def test_a_bad_note_is_refused(client, collector, case, text, error):
    response = client.post(f"/cases/{case.pk}/notes/", {"text": text})
    assert response.status_code == 400 and error in page_of(response)
    assert not CaseEvent.objects.filter(type="collections.case.note_added").exists()


# ---------------------------------------------------------------------------------------------
# Calls


@pytest.fixture
def call(case) -> Message:
    message = Message.objects.create(
        customer=case.customer,
        channel="call",
        to_address="+33612345678",
        subject="Call Ada about €100.00",
        body="Script",
        status=Message.Status.SENT,
        idempotency_key="test-call",
    )
    case.messages.add(message)
    return message


def test_a_call_outcome_with_a_promise_pauses_the_case(client, collector, case, call):
    page = page_of(client.get(f"/cases/{case.pk}/"))
    assert f'action="/cases/{case.pk}/calls/{call.pk}/outcome/"' in page
    response = client.post(
        f"/cases/{case.pk}/calls/{call.pk}/outcome/",
        {"outcome": "promise", "promised_on": "2026-03-19", "promised_amount": "100", "note": "Paying Thursday"},
        **HTMX,
    )
    assert "Call logged: Promise to pay." in page_of(response)
    call.refresh_from_db()
    assert (call.call_outcome, call.call_outcome_by) == ("promise", collector)
    case.refresh_from_db()
    assert case.pause_reason == "Promise to pay €100.00 by 2026-03-19"
    assert CaseEvent.objects.get(type="collections.call.logged").data["note"] == "Paying Thursday"


def test_promise_dates_read_in_words_on_the_case_page_its_timeline_and_the_worklist(
    client, collector, case, call, clock
):
    clock.move_to(dt.datetime(2026, 12, 21, 10, 0, tzinfo=dt.UTC))  # a Monday, nine months on
    client.force_login(collector)
    client.post(
        f"/cases/{case.pk}/calls/{call.pk}/outcome/",
        {"outcome": "promise", "promised_on": "2027-01-05", "promised_amount": "100"},
    )
    assert Case.objects.get(pk=case.pk).pause_reason == "Promise to pay €100.00 by 2027-01-05"  # as stored
    page = page_of(client.get(f"/cases/{case.pk}/"))
    assert "(Promise to pay €100.00 by 5 Jan 2027), until Wed 6 Jan 2027, 00:00" in page  # the status line
    assert '<p class="muted">Promise to pay €100.00 by 5 Jan 2027</p>' in page  # "On hold"
    assert "<br>Promise to pay €100.00 by 5 Jan 2027" in page  # the timeline's hold
    assert "Promised: €100.00 by 5 Jan 2027" in page  # the timeline's call
    assert ">Mon 21 Dec, 10:00</time>" in page and "<td>11 Mar</td>" in page  # this year's: no year
    assert "2027-01-05" not in page

    clock.move_to(dt.datetime(2027, 1, 5, 10, 0, tzinfo=dt.UTC))  # the promise falls due: now it is this year's
    client.force_login(collector)
    worklist = page_of(client.get("/"))
    assert f'<a href="/cases/{case.pk}/">{case.customer}</a> — Promise to pay €100.00 by 5 Jan</p>' in worklist
    page = page_of(client.get(f"/cases/{case.pk}/"))
    assert "by 5 Jan)" in page and "<td>11 Mar 2026</td>" in page and ">Mon 21 Dec 2026, 10:00</time>" in page


def test_a_bad_call_outcome_is_refused(client, collector, case, call):
    response = client.post(f"/cases/{case.pk}/calls/{call.pk}/outcome/", {"outcome": "promise"})
    assert response.status_code == 400
    assert PROMISE_NEEDS_DATE in page_of(response) and PROMISE_NEEDS_AMOUNT in page_of(response)
    assert Message.objects.get(pk=call.pk).call_outcome == ""


@pytest.mark.parametrize(
    ("promise", "field", "error"),
    [
        ({"promised_on": "2026-04-16", "promised_amount": "10"}, "promised_on", PROMISE_BEYOND_POLICY),
        ({"promised_on": "2026-03-20", "promised_amount": "100.01"}, "promised_amount", PROMISE_ABOVE_CASE),
    ],
)
def test_a_promise_on_a_call_beyond_the_policy_or_above_what_is_owed_is_refused(
    client, collector, case, call, promise, field, error
):
    response = client.post(f"/cases/{case.pk}/calls/{call.pk}/outcome/", {"outcome": "promise"} | promise, **HTMX)
    assert response.status_code == 400
    assert error in page_of(response)
    assert Message.objects.get(pk=call.pk).call_outcome == ""
    assert Case.objects.get(pk=case.pk).status == Case.Status.OPEN
    assert not CaseEvent.objects.filter(type__in=["collections.call.logged", "collections.case.paused"]).exists()


def test_the_promise_limit_is_the_policys_own(client, collector, case):
    Policy.objects.filter(pk=case.policy_id).update(max_promise_days=7)
    data = {"kind": "promise", "promised_on": "2026-03-24", "promised_amount": "100"}
    response = client.post(f"/cases/{case.pk}/pause/", data)
    assert PROMISE_TOO_FAR % {"days": 7, "latest": "Mon 23 Mar 2026"} in page_of(response)
    assert "at most 7 days ahead" in page_of(response)
    client.post(f"/cases/{case.pk}/pause/", data | {"promised_on": "2026-03-23"})
    assert Case.objects.get(pk=case.pk).pause_reason == "Promise to pay €100.00 by 2026-03-23"


def test_only_a_call_of_this_case_takes_an_outcome(client, collector, case):
    email = case.messages.get()
    assert client.post(f"/cases/{case.pk}/calls/{email.pk}/outcome/", {"outcome": "reached"}).status_code == 404


# ---------------------------------------------------------------------------------------------
# Payments received


def test_a_bank_transfer_lowers_the_amount_overdue(client, collector, case):
    invoice = case.invoices.get()
    response = client.post(
        f"/cases/{case.pk}/payments/",
        {"invoice": invoice.pk, "method": "bank_transfer", "amount": "40", "paid_on": "2026-03-13", "reference": "X1"},
        **HTMX,
    )
    assert "Payment of €40.00 recorded on invoice INV-1." in page_of(response)
    assert "€60.00</strong> overdue" in page_of(response)
    payment = Payment.objects.get()
    assert (payment.amount, payment.method, payment.reference, payment.recorded_by) == (
        4_000,
        "bank_transfer",
        "X1",
        collector,
    )
    assert payment.at == dt.datetime(2026, 3, 13, 12, tzinfo=dt.UTC)


def test_paying_in_full_resolves_the_case_and_tells_stripe(
    client, collector, case, settings, django_capture_on_commit_callbacks
):
    settings.STRIPE_API_KEY = "sk_test_123"
    invoice = case.invoices.get()
    Invoice.objects.filter(pk=invoice.pk).update(external_id="in_123")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/cases/{case.pk}/payments/",
            {"invoice": invoice.pk, "method": "cheque", "amount": "100.00", "paid_on": "2026-03-16"},
            follow=True,
        )
    assert "Payment of €100.00 recorded" in page_of(response)
    case.refresh_from_db()
    assert case.status == Case.Status.RESOLVED
    (job,) = django_rq.get_queue("default").jobs
    assert job.func_name.endswith("invoice_paid_elsewhere") and job.args == (invoice.pk,)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"amount": "100.01"}, OVERPAYMENT % {"amount": "€100.01", "remaining": "€100.00", "number": "INV-1"}),
        ({"amount": "-5"}, "Enter an amount above zero."),
        ({"amount": "1.234"}, TOO_MANY_DECIMALS % {"currency": "EUR", "decimals": 2}),
        ({"paid_on": "2026-03-17"}, PAID_IN_FUTURE),
        ({"invoice": "999999"}, "Select a valid choice."),
        ({"method": "card"}, "Select a valid choice."),
    ],
)
def test_bad_payments_are_refused_next_to_the_field(client, collector, case, data, error):
    valid = {"invoice": case.invoices.get().pk, "method": "bank_transfer", "amount": "10", "paid_on": "2026-03-16"}
    for extra in ({}, HTMX):
        response = client.post(f"/cases/{case.pk}/payments/", valid | data, **extra)
        assert response.status_code == 400
        assert error in page_of(response)
    assert not Payment.objects.exists()


@pytest.mark.parametrize("amount", ["1e999999", "1e250", "-1e999999"])
def test_a_payment_larger_than_any_amount_is_refused_next_to_the_field(client, collector, case, amount):
    data = {"invoice": case.invoices.get().pk, "method": "bank_transfer", "amount": amount, "paid_on": "2026-03-16"}
    for extra in ({}, HTMX):
        response = client.post(f"/cases/{case.pk}/payments/", data, **extra)
        assert response.status_code == 400
        assert TOO_LARGE_IN_EUR in page_of(response)
    assert not Payment.objects.exists()
    assert Invoice.objects.get().amount_paid == 0


# ---------------------------------------------------------------------------------------------
# Who may act


ACTIONS = ["send-now/", "personalize/", "pause/", "resume/", "assign/", "notes/", "payments/"]


def test_a_viewer_sees_no_action_forms(client, viewer, case):
    page = page_of(client.get(f"/cases/{case.pk}/"))
    assert "Act on this case" not in page
    assert not any(f"/cases/{case.pk}/{action}" in page for action in ACTIONS)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_viewer_cannot_act(client, viewer, case, action):
    data = {"step": firm_reminder(case).pk, "kind": "dispute", "reason": "x", "text": "x"}
    assert client.post(f"/cases/{case.pk}/{action}", data).status_code == 403
    assert client.post(f"/cases/{case.pk}/{action}", data, **HTMX).status_code == 403
    assert not CaseEvent.objects.filter(user=viewer).exists()
    assert StepExecution.objects.filter(case=case).count() == 1


@pytest.mark.parametrize("action", ACTIONS)
def test_an_anonymous_post_goes_to_the_login_page(client, case, action):
    response = client.post(f"/cases/{case.pk}/{action}", {"step": firm_reminder(case).pk})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_draft_editor_is_for_collectors(client, case, draft):
    signed_in(client, VIEWER, "olive")
    assert client.get(f"/cases/{case.pk}/messages/{draft.pk}/edit/").status_code == 403
    assert client.post(f"/cases/{case.pk}/messages/{draft.pk}/preview/", {"body": "x"}).status_code == 403


# ---------------------------------------------------------------------------------------------
# The page's cost


@pytest.mark.parametrize("rows", [10, 100])
def test_the_collectors_case_page_costs_the_same_queries_for_10_or_100_rows(
    client, collector, case, rows, django_assert_max_num_queries
):
    CaseEvent.objects.bulk_create(
        CaseEvent(case=case, type="collections.case.note_added", data={"note": "x"}) for _ in range(rows)
    )
    messages = Message.objects.bulk_create(
        Message(
            customer=case.customer,
            channel="call" if number % 2 else "email",
            body="x",
            status=Message.Status.SENT if number % 2 else Message.Status.DRAFT,
            idempotency_key=f"load-{number}",
        )
        for number in range(rows)
    )
    case.messages.add(*messages)
    for number in range(3):
        UserFactory(username=f"worker-{number}").groups.add(*collector.groups.all())
    with django_assert_max_num_queries(15):  # 13, one for the promises and requests, one for the plans
        response = client.get(f"/cases/{case.pk}/")
    assert response.status_code == 200
    assert page_of(response).count("Log the outcome") == rows // 2
    # 15, one each for the promises, what the customer sent, and the plans.
    with django_assert_max_num_queries(18):
        assert client.post(f"/cases/{case.pk}/notes/", {"text": "Called"}, **HTMX).status_code == 200


# NOW is Monday 16 March 2026, 10:00 UTC: a hold may end 90 days later at the latest.
HOLD_BEYOND_HORIZON = HOLD_TOO_FAR % {"days": 90, "latest": "Sun 14 Jun 2026"}


@pytest.mark.parametrize("until", ["9999-12-31", "2026-06-15"])
def test_a_manual_hold_ends_within_90_days_or_is_refused_next_to_the_field(client, collector, case, until):
    data = {"kind": "hold", "reason": "Talking to their CFO", "until": until}
    for extra in ({}, HTMX):
        response = client.post(f"/cases/{case.pk}/pause/", data, **extra)
        assert response.status_code == 400
        assert response.context["pause_form"].errors["until"] == [HOLD_BEYOND_HORIZON]
        assert HOLD_BEYOND_HORIZON in page_of(response)
    assert Case.objects.get(pk=case.pk).status == Case.Status.OPEN
    assert not CaseEvent.objects.filter(type="collections.case.paused").exists()


def test_a_manual_hold_may_end_on_the_90th_day_or_wait_until_resumed(client, collector, case):
    client.post(f"/cases/{case.pk}/pause/", {"kind": "hold", "reason": "Audit", "until": "2026-06-14"})
    case.refresh_from_db()
    assert (case.status, case.paused_until) == (Case.Status.PAUSED, dt.datetime(2026, 6, 14, tzinfo=dt.UTC))
    client.post(f"/cases/{case.pk}/resume/")
    client.post(f"/cases/{case.pk}/pause/", {"kind": "hold", "reason": "Until their CFO is back"})
    case.refresh_from_db()
    assert (case.status, case.paused_until) == (Case.Status.PAUSED, None)


def test_a_dispute_outranks_a_promise_but_a_manual_hold_does_not_replace_it(client, collector, case):
    """A dispute stops everything until it is settled; a manual hold laid over a promise would lose
    the promise's date, so it is refused and says why."""
    promised = promise_record(
        source="case_page", case=case, promised_on=NOW.date() + dt.timedelta(days=10), amount=case.amount_overdue
    ).case
    refused = client.post(f"/cases/{case.pk}/pause/", {"kind": "hold", "reason": "Checking with sales"})
    assert refused.status_code == 400
    assert "already on hold (Promise to pay" in refused.content.decode()
    assert Case.objects.get(pk=case.pk).pause_reason == promised.pause_reason

    client.post(f"/cases/{case.pk}/pause/", {"kind": "dispute", "reason": "Says the invoice was never received"})
    disputed = Case.objects.get(pk=case.pk)
    assert (disputed.pause_reason, disputed.paused_until) == ("Dispute: Says the invoice was never received", None)
