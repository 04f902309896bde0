"""Which channel, which template, which words: composing a case's message."""

import datetime as dt

import pytest
import time_machine

from dunning_site.accounts.models import Consent, Invoice
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.models import Case, Step
from dunning_site.collections.tests.factories import PolicyFactory, ladder
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import ContactRules, Message, MessageTemplate
from dunning_site.notifications.sms import sms_segments
from dunning_site.notifications.tests.test_rendering import TEMPLATE_ATTACKS

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 5, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


def overdue(customer, total=12_000):
    return InvoiceFactory(customer=customer, due_on=NOW.date() - dt.timedelta(days=4), total=total)


def one_step_policy(channel="email", **policy):
    policy = PolicyFactory(**policy)
    (step,) = ladder(policy, (3, Step.Action.REMINDER, "friendly", False))
    Step.objects.filter(pk=step.pk).update(channel=channel)
    step.refresh_from_db()
    return policy, step


@pytest.mark.parametrize(
    ("language", "segment", "expected"),
    [
        ("pt-BR", "smb", "pt-BR"),
        ("pt-PT", "smb", "pt"),
        ("de", "smb", "en"),
        ("fr", "enterprise", "fr enterprise"),
        ("fr", "smb", "fr"),
    ],
)
def test_the_customers_language_and_segment_choose_the_version(language, segment, expected):
    _, step = one_step_policy()
    key = step.template.key
    MessageTemplate.objects.filter(pk=step.template.pk).update(subject="en")
    for version_language, version_segment, subject in [
        ("pt-BR", "", "pt-BR"),
        ("pt", "", "pt"),
        ("fr", "", "fr"),
        ("fr", "enterprise", "fr enterprise"),
    ]:
        MessageTemplate.objects.create(
            key=key, language=version_language, segment=version_segment, subject=subject, body="x"
        )
    overdue(CustomerFactory(language=language, segment=segment))
    tick()
    assert Message.objects.get().subject == expected


def sms_customer(**fields):
    customer = CustomerFactory(name="Ada Lovelace", company="Analytical Engines", phone="+33612345678", **fields)
    Consent.objects.create(customer=customer, channel="sms", granted=True, source="signup")
    invoice = overdue(customer, total=98_765)
    Invoice.objects.filter(pk=invoice.pk).update(hosted_payment_url="https://invoice.stripe.com/i/acct_1/test_abc")
    return customer


def test_a_discreet_sms_carries_no_name_no_amount_and_no_link_that_shows_them(settings):
    # The pay link is the billing system's invoice page (name and amount for whoever opens it), the
    # card link a checkout showing the customer's email: a number that changed hands gets neither.
    settings.DUNNING_SENDER_COMPANY, settings.DUNNING_SENDER_PHONE = "Example SaaS", "+33 1 23 45 67 89"
    rules = ContactRules.objects.create(name="Discreet", discreet_sms=True)
    _, step = one_step_policy(channel="sms", contact_rules=rules)
    MessageTemplate.objects.filter(pk=step.template.pk).update(
        channel="sms",
        subject="",
        body="{{ customer_name }} ({{ company_name }}), {{ total_overdue }} is overdue. Pay: {{ pay_url }} "
        "Card: {{ card_update_url }} Plan: {{ plan_offer_url }} Stop: {{ unsubscribe_url }} "
        "{% for invoice in invoices %}{{ invoice.number }} {{ invoice.pay_url }}{% endfor %}"
        "{{ sender_company }}, {{ sender_phone }}",
    )
    sms_customer()
    tick()
    sms = Message.objects.get()
    assert sms.channel == "sms"
    for revealing in ("Ada", "Analytical", "987", "http", "/portal/", "INV-"):
        assert revealing not in sms.body
    assert sms.body == "(), is overdue. Pay: Card: Plan: Stop: Example SaaS, +33 1 23 45 67 89"


def test_a_discreet_sms_in_the_built_in_words_points_to_the_email_and_our_phone(settings):
    settings.DUNNING_SENDER_COMPANY, settings.DUNNING_SENDER_PHONE = "Example SaaS", "+33 1 23 45 67 89"
    rules = ContactRules.objects.create(name="Discreet", discreet_sms=True)
    _, step = one_step_policy(channel="sms", contact_rules=rules)
    Step.objects.filter(pk=step.pk).update(template=None)
    sms_customer()
    tick()
    assert Message.objects.get().body == (
        "Example SaaS: a payment on your account is overdue. Please see our email or call us on +33 1 23 45 67 89."
    )


def test_an_sms_that_is_not_discreet_keeps_its_pay_link(settings):
    settings.DUNNING_SENDER_COMPANY = "Example SaaS"
    _, step = one_step_policy(channel="sms")
    Step.objects.filter(pk=step.pk).update(template=None)
    sms_customer()
    tick()
    assert Message.objects.get().body == (
        "Example SaaS: a payment on your account is overdue. Please pay here: https://invoice.stripe.com/i/acct_1/test_abc"
    )


def test_a_long_sms_is_cut_to_two_segments_and_stored_as_sent():
    _, step = one_step_policy(channel="sms")
    MessageTemplate.objects.filter(pk=step.template.pk).update(
        channel="sms", subject="", body="{{ customer_name }} " + "please pay the overdue balance now " * 20
    )
    customer = CustomerFactory(phone="+33612345678")
    Consent.objects.create(customer=customer, channel="sms", granted=True, source="signup")
    overdue(customer)
    tick()
    assert sms_segments(Message.objects.get().body) <= 2


def test_without_sms_consent_an_sms_step_falls_back_to_email():
    one_step_policy(channel="sms")
    overdue(CustomerFactory(phone="+33612345678", email="ada@example.com"))
    tick()
    assert Message.objects.get().channel == "email"


def test_with_no_usable_channel_a_call_task_is_created():
    one_step_policy(channel="email")
    customer = CustomerFactory(email="", phone="")
    overdue(customer)
    tick()
    message = Message.objects.get()
    assert message.channel == "call"
    assert "Call" in message.subject
    case = Case.objects.get()
    assert case.messages.filter(pk=message.pk).exists()


@pytest.mark.parametrize(
    "hostile",
    [
        '{{ customer_name|rjust:"400000000" }}',
        "".join(f"{{% for c{level} in customer_name %}}" for level in range(6)) + "x" + "{% endfor %}" * 6,
        # Refused unread, before compiling (1.7 MB of empty ifs took 1.5 s to compile per message).
        *(attack for attack, _ in TEMPLATE_ATTACKS.values()),
    ],
)
def test_a_hostile_template_saved_in_the_database_falls_back_on_the_built_in_words(hostile, caplog):
    # Written straight into the database, so never validated: the engine must still not hang or
    # swell, and the reminder still goes out, in the built-in words.
    _, step = one_step_policy()
    MessageTemplate.objects.filter(pk=step.template.pk).update(subject="Reminder", body=hostile)
    overdue(CustomerFactory(name="Ada Lovelace"))
    tick()
    message = Message.objects.get()
    assert message.template is None
    assert message.body.startswith("Hello Ada Lovelace,\n\n1 invoice(s) on your account are overdue")
    assert len(message.body) < 1_000
    (record,) = [record for record in caplog.records if "cannot be rendered" in record.getMessage()]
    assert "using the built-in text" in record.getMessage()
    assert Case.objects.get().current_step == step
