"""`manage.py dunning_setup`: a fresh install gets a policy and its messages in four languages, and duns."""

import datetime as dt
import io
import re

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import CommandError, call_command

from dunning_site.accounts.models import Customer
from dunning_site.accounts.tests.factories import InvoiceFactory, UserFactory
from dunning_site.collections import defaults
from dunning_site.collections.context import message_context
from dunning_site.collections.models import Case, Policy, Step
from dunning_site.collections.roles import MANAGER
from dunning_site.collections.tests import stripe_fake
from dunning_site.collections.tests.factories import PolicyFactory
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import ContactRules, Message, MessageTemplate
from dunning_site.notifications.rendering import render_message, template_errors, template_warnings

pytestmark = pytest.mark.django_db

# The invoice falls due on Monday 2 March 2026; the Default ladder's friendly reminder is due on day 2,
# Wednesday the 4th, at 09:00 in the customer's zone (Berlin: 08:00 UTC); the next one on day 6.
DUE = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
KEYS = set(defaults.TONES)
PAY_URL = "https://invoice.stripe.com/i/in_de1"
CARD_PATH = "/portal/card/"
# What the final notice warns of, in each language.
SUSPENSION_WORD = {"en": "suspend", "fr": "suspendre", "de": "sperren", "es": "suspender"}
# Words asking the customer to authenticate or confirm a payment: a budget that ran out never uses them.
CONFIRMATION_WORDS = ("authenticat", "confirm", "bestätig", "authentifi", "3-d secure")


def setup(**kwargs) -> str:
    out = io.StringIO()
    call_command("dunning_setup", stdout=out, **kwargs)
    return out.getvalue()


def test_twice_on_an_empty_database_one_policy_every_message_in_four_languages_and_a_staff_edit_kept(client):
    output = setup()

    policy = Policy.objects.get()
    assert (policy.name, policy.is_active, policy.grace_days) == ("Default", True, 1)
    assert [
        (step.offset_days, step.action, step.template.key if step.template else None, step.requires_approval)
        for step in policy.steps.order_by("position")
    ] == [
        (2, Step.Action.REMINDER, "reminder-friendly", False),
        (6, Step.Action.REMINDER, "reminder-second", False),
        (12, Step.Action.REMINDER, "reminder-firm", False),
        (20, Step.Action.FINAL_NOTICE, "final-notice", True),
        (30, Step.Action.SUSPEND_SERVICE, None, True),
    ]
    rules = policy.contact_rules
    assert (rules.window_start, rules.window_end) == (dt.time(8), dt.time(20))
    assert 6 not in rules.contact_days, "no Sundays"
    assert rules.max_contacts_per_week == 3
    for key in KEYS:
        languages = sorted(MessageTemplate.objects.filter(key=key).values_list("language", flat=True))
        assert languages == ["de", "en", "es", "fr"], key
    assert MessageTemplate.objects.count() == len(KEYS) * 4
    assert "Created the policy “Default”" in output
    assert "08:00–20:00 in the customer's time zone, Monday to Saturday, at most 3 contacts" in output
    assert "Created 32 message template(s)" in output

    # A manager rewords the German friendly reminder in the finance UI; a translation gets deleted.
    manager = UserFactory(username="maria")
    manager.groups.add(Group.objects.get(name=MANAGER))
    client.force_login(manager)
    german = MessageTemplate.objects.get(key="reminder-friendly", language="de")
    edited = {
        "key": german.key,
        "channel": german.channel,
        "language": "de",
        "segment": "",
        "tone": german.tone,
        "subject": "Erinnerung: {{ total_overdue }}",
        "body": "Hallo {{ customer_name }},\nbitte zahlen: {{ action_url }}",
        "html_body": "",
        "save": "1",
    }
    assert client.post(f"/message-templates/{german.pk}/", edited).status_code == 302
    MessageTemplate.objects.filter(key=defaults.NOT_COLLECTED, language="fr").delete()

    again = setup()

    assert Policy.objects.count() == 1
    assert ContactRules.objects.count() == 1
    assert Step.objects.count() == len(defaults.LADDER) == 5
    assert MessageTemplate.objects.count() == len(KEYS) * 4
    german.refresh_from_db()
    assert german.subject == "Erinnerung: {{ total_overdue }}", "a staff edit is kept"
    assert "Created 1 message template(s): payment-not-collected (fr)." in again
    assert defaults.POLICIES_KEPT % {"names": "“Default”"} in again
    assert setup().splitlines() == [defaults.NOTHING_CREATED, defaults.POLICIES_KEPT % {"names": "“Default”"}]


def test_a_database_with_a_policy_of_its_own_gets_the_messages_but_no_second_ladder():
    PolicyFactory(name="Ours")
    output = setup()
    assert list(Policy.objects.values_list("name", flat=True)) == ["Ours"]
    assert MessageTemplate.objects.count() == len(KEYS) * 4
    assert defaults.POLICIES_KEPT % {"names": "“Ours”"} in output


def test_a_message_file_that_would_not_save_writes_nothing(tmp_path, monkeypatch):
    for key, body in (("reminder-friendly", "Hello {{ customer_name }}"), ("reminder-firm", "{{ customer.password }}")):
        (tmp_path / key).mkdir()
        (tmp_path / key / "en.txt").write_text(f"Subject\n\n{body}\n")
    monkeypatch.setattr(defaults, "MESSAGES_DIRECTORY", tmp_path)
    defaults.default_messages.cache_clear()
    try:
        with pytest.raises(CommandError, match="Default message reminder-firm \\(en\\) cannot be saved"):
            setup()
        (tmp_path / "reminder-firm" / "en.txt").write_text("A subject and no body\n")
        defaults.default_messages.cache_clear()
        with pytest.raises(CommandError, match="write the subject on the first line, then an empty line"):
            setup()
    finally:
        defaults.default_messages.cache_clear()
    assert not MessageTemplate.objects.exists()
    assert not Policy.objects.exists()


@pytest.fixture
def berliner():
    return Customer.objects.create(
        external_id="cus_DE1",
        name="Grete Weber",
        company="Weber Feinmechanik GmbH",
        email="grete@weber.example",
        time_zone="Europe/Berlin",
        language="de",
    )


def test_a_fresh_install_duns_a_stripe_invoice_in_the_customers_language_with_the_pay_link(
    stripe_api, berliner, client, run_jobs, django_capture_on_commit_callbacks
):
    setup()
    stripe_api.invoices["in_de1"] = stripe_fake.invoice(
        "in_de1",
        "cus_DE1",
        amount=12_000,
        currency="eur",
        number="RE-2026-0042",
        created=int((DUE - dt.timedelta(days=14)).timestamp()),
        due_date=int(DUE.timestamp()),
        collection_method="send_invoice",
    )
    overdue = stripe_fake.event("invoice.overdue", stripe_api.invoices["in_de1"], event_id="evt_overdue_de1")

    with time_machine.travel(DUE + dt.timedelta(days=1), tick=False) as clock:
        body, header = stripe_fake.signed(overdue)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
            )
        assert response.status_code == 200
        run_jobs()
        for moment in (dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC), dt.datetime(2026, 3, 5, 8, 30, tzinfo=dt.UTC)):
            clock.move_to(moment)
            with django_capture_on_commit_callbacks(execute=True):
                tick()
            run_jobs()

    case = Case.objects.get()
    assert case.policy.name == "Default"
    assert case.current_step.position == 1
    (sent,) = mail.outbox
    assert sent.to == ["grete@weber.example"]
    assert sent.subject.startswith("Freundliche Zahlungserinnerung: 120,00")
    assert "Guten Tag Grete Weber" in sent.body
    assert "RE-2026-0042" in sent.body
    assert PAY_URL in sent.body
    assert CARD_PATH not in sent.body
    # The customer's own page, from the same email: what they owe, in German.
    (portal_path,) = re.findall(r"https?://[^/\s]+(/portal/[^/\s]+/)\n", sent.body)
    with time_machine.travel(dt.datetime(2026, 3, 5, 10, 0, tzinfo=dt.UTC), tick=False):
        portal = client.get(portal_path).content.decode()
    assert "RE-2026-0042" in portal and "120,00\xa0€" in portal and "Weber" in portal
    message = Message.objects.get()
    assert (message.status, message.template.key, message.template.language) == ("sent", "reminder-friendly", "de")


@pytest.mark.parametrize("language", defaults.LANGUAGES)
@pytest.mark.parametrize(
    "key", ["reminder-friendly", "reminder-second", "reminder-firm", "final-notice", defaults.NOT_COLLECTED]
)
def test_a_case_that_needs_a_new_card_is_sent_the_card_update_link(language, key):
    """Until the case itself remembers why its last charge failed, the reason goes straight to the
    context, as the template preview and the engine build it."""
    setup()
    customer = Customer.objects.create(name="Ada", email="ada@example.com", language=language)
    invoice = InvoiceFactory(customer=customer, due_on=DUE.date(), hosted_payment_url=PAY_URL)
    template = MessageTemplate.objects.get(key=key, language=language)
    today = DUE.date() + dt.timedelta(days=12)
    for problem, link, not_there in (
        ("new_card", CARD_PATH, PAY_URL),
        ("no_funds", PAY_URL, CARD_PATH),
        ("", PAY_URL, CARD_PATH),
    ):
        context = message_context(
            customer=customer, currency=invoice.currency, invoices=[invoice], today=today, payment_problem=problem
        )
        _, body, _ = render_message(template, context)
        assert link in body, (problem, body)
        assert not_there not in body, (problem, body)


def example_context(action: str) -> dict:
    invoice = {
        "number": "INV-2026-000123",
        "issued_on": "1 Feb 2026",
        "due_on": "15 Feb 2026",
        "total": "€120.00",
        "amount_due": "€80.00",
        "days_overdue": 21,
        "pay_url": "https://billing.example.com/pay/INV-2026-000123",
    }
    links = {
        "update_card": "https://dunning.example.com/portal/card/signed",
        "confirm_payment": "https://invoice.stripe.com/i/in_sca",
        "pay": "https://billing.example.com/pay/INV-2026-000123",
    }
    return {
        "customer_name": "Ada Lovelace",
        "company_name": "Analytical Engines Ltd",
        "currency": "EUR",
        "total_overdue": "€200.00",
        "days_overdue": 21,
        "invoice_count": 2,
        "invoices": [invoice, {**invoice, "number": "INV-2026-000456"}],
        "pay_url": links["pay"],
        "card_update_url": links["update_card"],
        "confirm_payment_url": links["confirm_payment"],
        "action": action,
        "action_url": links[action],
        "payment_problem": {"update_card": "new_card", "confirm_payment": "authentication"}.get(action, ""),
        "sender_name": "The billing team",
        "sender_company": "Example SaaS Inc.",
    }


@pytest.mark.parametrize(
    "message", defaults.default_messages(), ids=lambda message: f"{message.key}-{message.language}"
)
def test_each_default_message_saves_lists_the_invoices_and_carries_the_link_that_fits(message):
    assert template_errors(subject=message.subject, body=message.body) == {}
    assert template_warnings(subject=message.subject, body=message.body) == []
    if message.key == defaults.CARD_EXPIRING:  # before anything failed: the card link and its date, no debt
        context = example_context("pay") | {"card_expires_on": "31 May 2026"}
        subject, body, _ = render_message(MessageTemplate(subject=message.subject, body=message.body), context)
        assert context["card_update_url"] in body and context["card_expires_on"] in body
        assert "€200.00" not in subject + body and "INV-2026-000123" not in body
        return
    fixed_link = {
        defaults.CARD_UPDATE_NEEDED: "card_update_url",
        defaults.AUTHENTICATION_NEEDED: "confirm_payment_url",
    }.get(message.key)
    for action in ("update_card", "confirm_payment", "pay"):
        context = example_context(action)
        subject, body, _ = render_message(MessageTemplate(subject=message.subject, body=message.body), context)
        assert "€200.00" in subject + body
        assert "INV-2026-000123" in body and "INV-2026-000456" in body
        assert "{{" not in body and "{%" not in body
        wanted = context[fixed_link] if fixed_link else context["action_url"]
        assert wanted in body, (action, body)
        others = {context[name] for name in ("pay_url", "card_update_url", "confirm_payment_url")} - {wanted}
        assert not any(link in body for link in others), (action, body)
        if message.key == defaults.NOT_COLLECTED:
            assert not any(word in body.lower() for word in CONFIRMATION_WORDS), body
        if message.key == defaults.FINAL:
            assert SUSPENSION_WORD[message.language] in body


def test_every_message_exists_in_every_language():
    found = {(message.key, message.language) for message in defaults.default_messages()}
    assert found == {(key, language) for key in KEYS for language in defaults.LANGUAGES}
