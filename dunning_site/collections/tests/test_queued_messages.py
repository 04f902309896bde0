"""Messages not yet sent keep up with what the case owes (collections.queued_messages): written again
from their template when a payment or a write-off changes the amount, or, when a collector's words
cannot be rebuilt, held back as a draft for them to read again."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client

from dunning_site.accounts.models import Channel, Consent, Invoice
from dunning_site.accounts.services import invoice_saved, payment_record
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from dunning_site.collections.messaging import CARD_UPDATE_NEEDED, TemplateBook, compose
from dunning_site.collections.models import Case, CaseEvent, Step
from dunning_site.collections.queued_messages import AMOUNTS_CHANGED
from dunning_site.collections.roles import COLLECTOR
from dunning_site.collections.tests.factories import PolicyFactory, ladder
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import ContactRules, Message
from dunning_site.notifications.services import message_edit, message_release, messages_create

pytestmark = pytest.mark.django_db

# A Thursday, 11:00 in Paris: inside the default contact hours.
NOW = dt.datetime(2026, 3, 5, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def grace():
    user = UserFactory(username="grace", first_name="Grace")
    user.groups.add(Group.objects.get(name=COLLECTOR))
    return user


def open_case(*, review: bool = False, channel: str = Channel.EMAIL, customer=None, **policy) -> Case:
    """A €450.00 case whose day-3 reminder was just written (queued, or a draft to review)."""
    policy = PolicyFactory(**policy)
    (step,) = ladder(policy, (3, Step.Action.REMINDER, "friendly", False))
    Step.objects.filter(pk=step.pk).update(review_before_send=review, channel=channel)
    customer = {"customer": customer} if customer else {}
    InvoiceFactory(number="INV-1", due_on=NOW.date() - dt.timedelta(days=4), total=45_000, **customer)
    tick()
    return Case.objects.get()


def pay(amount: int) -> None:
    payment_record(invoice=Invoice.objects.get(), amount=amount, method="bank_transfer")


def test_a_queued_reminder_is_written_again_with_what_is_owed_now(clock):
    case = open_case()
    reminder = Message.objects.get()
    before = (reminder.idempotency_key, reminder.send_after, reminder.template_id)
    pay(15_000)
    reminder.refresh_from_db()
    assert "€300.00 overdue" in reminder.subject and "INV-1 €300.00" in reminder.body
    assert (reminder.status, (reminder.idempotency_key, reminder.send_after, reminder.template_id)) == (
        Message.Status.QUEUED,
        before,
    )
    event = CaseEvent.objects.get(case=case, type="collections.message.refreshed")
    assert (event.data["previous"], event.data["amount_overdue"], event.data["message_id"]) == (
        45_000,
        30_000,
        reminder.pk,
    )


def test_news_that_changes_nothing_owed_rewrites_nothing(clock):
    open_case()
    invoice = Invoice.objects.get()
    invoice.hosted_payment_url = "https://pay.example/1"
    invoice.save()
    invoice_saved(invoice=invoice)  # staff saved the invoice: the case reconciles, the amount is the same
    assert not CaseEvent.objects.filter(type="collections.message.refreshed").exists()


def test_a_discreet_sms_says_no_amount_so_it_is_not_rewritten(clock):
    rules = ContactRules.objects.create(name="Discreet", discreet_sms=True)
    ada = CustomerFactory(phone="+33612345678")
    Consent.objects.create(customer=ada, channel=Channel.SMS, granted=True, source="staff")
    open_case(channel=Channel.SMS, contact_rules=rules, customer=ada)
    sms = Message.objects.get()
    assert sms.channel == Channel.SMS
    words = sms.body
    pay(15_000)
    sms.refresh_from_db()
    assert sms.body == words
    assert not CaseEvent.objects.filter(type="collections.message.refreshed").exists()


def test_a_draft_the_collector_personalized_keeps_their_words_and_tells_them(clock, grace):
    case = open_case(review=True)
    draft = Message.objects.get()
    message_edit(
        message=draft,
        subject="Ada, €450.00 please",
        body="As agreed on the phone: €450.00.",
        html_body=None,
        user=grace,
    )
    pay(15_000)
    draft.refresh_from_db()
    assert (draft.status, draft.subject, draft.body) == (
        Message.Status.DRAFT,
        "Ada, €450.00 please",
        "As agreed on the phone: €450.00.\n",
    )
    assert draft.review_reason == AMOUNTS_CHANGED % {"previous": "€450.00", "now": "€300.00"}
    assert CaseEvent.objects.filter(case=case, type="collections.message.review_asked").exists()
    client = Client()
    client.force_login(grace)
    page = client.get(f"/cases/{case.pk}/messages/{draft.pk}/edit/").content.decode()
    assert "what is owed changed since this message was written (€450.00, now €300.00)" in page.lower()
    # Read again and corrected: the mark goes.
    message_edit(message=draft, subject="Ada, €300.00 please", body="€300.00 left.", html_body=None, user=grace)
    draft.refresh_from_db()
    assert draft.review_reason == ""


def test_a_personalized_message_already_released_goes_back_to_its_writer_as_a_draft(clock, grace, run_jobs):
    case = open_case(review=True)
    draft = Message.objects.get()
    message_edit(message=draft, subject="Ada", body="€450.00 by Friday, as agreed.", html_body=None, user=grace)
    message_release(message=draft, user=grace, send_at=NOW + dt.timedelta(days=1))
    pay(15_000)
    draft.refresh_from_db()
    assert (draft.status, draft.assigned_to, draft.body) == (
        Message.Status.DRAFT,
        grace,
        "€450.00 by Friday, as agreed.\n",
    )
    client = Client()
    client.force_login(grace)
    assert "amounts changed: read it again" in client.get(f"/cases/{case.pk}/").content.decode()
    assert draft.pk in [item.pk for item in client.get("/").context["sections"]["drafts"]["items"]]
    with time_machine.travel(NOW + dt.timedelta(days=2), tick=False):
        run_jobs()
    assert mail.outbox == []  # nothing with the old amount went out


def test_a_message_written_before_its_template_key_was_kept_is_held_for_review(clock):
    open_case()
    reminder = Message.objects.get()
    Message.objects.filter(pk=reminder.pk).update(template_key="")  # as the migration leaves built-in words
    pay(15_000)
    reminder.refresh_from_db()
    assert (reminder.status, reminder.review_reason != "") == (Message.Status.DRAFT, True)
    assert "€450.00" in reminder.subject


def test_the_ask_for_a_new_card_keeps_its_own_words(clock):
    case = open_case()
    Message.objects.update(status=Message.Status.SENT)
    (ask,) = messages_create(
        [
            compose(
                case=Case.objects.select_related("customer", "policy").get(pk=case.pk),
                channel=Channel.EMAIL,
                template_key="card-update-needed",
                book=TemplateBook({"card-update-needed"}),
                idempotency_key="ask-1",
                now=NOW,
                built_in=CARD_UPDATE_NEEDED,
            )
        ]
    )
    case.messages.add(ask)
    pay(15_000)
    ask.refresh_from_db()
    assert ask.subject == "Please update your card: €300.00 could not be charged"
    assert "could not charge your card on file for €300.00" in ask.body


def test_a_message_being_sent_is_left_as_it_goes(clock):
    open_case()
    Message.objects.update(status=Message.Status.SENDING)
    pay(15_000)
    assert "€450.00" in Message.objects.get().subject
    assert not CaseEvent.objects.filter(type="collections.message.refreshed").exists()
