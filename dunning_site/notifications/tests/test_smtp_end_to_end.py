"""End to end through a real SMTP server.

The engine ticks on a controlled clock, a real RQ worker delivers through Django's SMTP backend to
a local aiosmtpd server, and the bytes it received are read back as a mail client would: a German
customer's reminder, with a text and an HTML part, amounts written the German way, and a one-click
unsubscribe (RFC 8058) that really opts the customer out.

Invoice due on Monday 5 January 2026 (day 0); the policy emails on day 3 and day 10 at 09:00
Berlin time (08:00 UTC in winter). Contact hours are the defaults: 08:00–20:00 local, no Sundays.
"""

import datetime as dt
import email
import email.policy
import re
import socket
import zoneinfo
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.test import Client

from dunning_site.accounts.models import Channel, Consent
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.models import Case, CaseEvent, Step
from dunning_site.collections.tests.factories import PolicyFactory
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message, MessageTemplate, Tone
from dunning_site.notifications.rendering import template_errors
from dunning_site.notifications.rules import OPTED_OUT, OUTSIDE_HOURS

pytestmark = pytest.mark.django_db

DAY_0 = dt.date(2026, 1, 5)  # a Monday
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
SITE_URL = "https://dunning.example.com"
INVOICE_NUMBER = "RE-2026-0042"
# What a German reader expects for 1234.56 EUR: dot for thousands, comma for decimals, the sign
# after a (non-breaking) space.
AMOUNT_DE = "1.234,56\N{NO-BREAK SPACE}€"
DUE_ON_DE = "05.01.2026"

SUBJECT_DE = "Zahlungserinnerung: {{ total_overdue }} überfällig"
BODY_DE = (
    "Guten Tag {{ customer_name }},\n\n"
    "für {{ company_name }} sind {{ invoice_count }} Rechnung(en) überfällig, insgesamt {{ total_overdue }}:\n"
    "{% for invoice in invoices %}- {{ invoice.number }}, fällig am {{ invoice.due_on }}: {{ invoice.amount_due }}\n"
    "{% endfor %}\nJetzt bezahlen: {{ pay_url }}\n\n{{ collector_signature }}"
)
HTML_DE = (
    "<p>Guten Tag {{ customer_name }},</p>\n"
    "<p>für {{ company_name }} sind {{ invoice_count }} Rechnung(en) überfällig, "
    "insgesamt <strong>{{ total_overdue }}</strong>:</p>\n<table>\n"
    "{% for invoice in invoices %}<tr><td>{{ invoice.number }}</td><td>{{ invoice.due_on }}</td>"
    "<td>{{ invoice.amount_due }}</td></tr>\n{% endfor %}</table>\n"
    '<p><a href="{{ pay_url }}">Jetzt bezahlen</a></p>\n'
    '<p><a href="{{ unsubscribe_url }}">Keine Erinnerungen mehr per E-Mail</a></p>'
)


def berlin(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A wall-clock time in Berlin on day `day` of the scenario, as the aware instant."""
    return dt.datetime.combine(DAY_0 + dt.timedelta(days=day), dt.time(hour, minute), tzinfo=BERLIN)


class Recorder:
    """An aiosmtpd handler that keeps the raw bytes of every message, as the server received them."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(envelope.content)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def inbox(settings, smtp_server) -> Recorder:
    """Django's SMTP backend pointed at the local server, in plain text (no TLS, no login)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.hostname
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
    settings.SITE_URL = SITE_URL
    return smtp_server.handler


@pytest.fixture
def german_customer():
    """A customer in Berlin who reads German, owing 1,234.56 EUR, on a two-email policy whose
    template has a German version (chosen) and an English one (not)."""
    customer = CustomerFactory(
        name="Jürgen Müller",
        company="Müller & Söhne GmbH",
        email="buchhaltung@mueller-soehne.example",
        language="de",
        time_zone="Europe/Berlin",
    )
    InvoiceFactory(customer=customer, number=INVOICE_NUMBER, currency="EUR", total=123_456, due_on=DAY_0)
    assert template_errors(subject=SUBJECT_DE, body=BODY_DE, html_body=HTML_DE) == {}
    template = MessageTemplate.objects.create(
        key="reminder",
        channel=Channel.EMAIL,
        language="de",
        tone=Tone.FRIENDLY,
        subject=SUBJECT_DE,
        body=BODY_DE,
        html_body=HTML_DE,
    )
    MessageTemplate.objects.create(
        key="reminder",
        channel=Channel.EMAIL,
        language="en",
        subject="Reminder: {{ total_overdue }} overdue",
        body="Hello {{ customer_name }}",
        html_body="<p>Hello {{ customer_name }}</p>",
    )
    policy = PolicyFactory()
    for position, offset in enumerate((3, 10), start=1):
        Step.objects.create(
            policy=policy,
            position=position,
            offset_days=offset,
            action=Step.Action.REMINDER,
            channel=Channel.EMAIL,
            template=template,
        )
    return customer


@pytest.fixture
def clock():
    with time_machine.travel(berlin(3, 9, 30), tick=False) as traveller:  # Thursday, 09:30 in Berlin
        yield traveller


@pytest.fixture
def engine(django_capture_on_commit_callbacks, run_jobs):
    def run() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            tick()
        run_jobs()

    return run


@pytest.fixture
def received_reminder(clock, inbox, german_customer, engine) -> EmailMessage:
    """The day-3 reminder, as the SMTP server received it."""
    engine()
    assert len(inbox.received) == 1, "the day-3 reminder should have gone out through SMTP"
    return email.message_from_bytes(inbox.received[0], policy=email.policy.default)


def unsubscribe_link(received: EmailMessage) -> str:
    match = re.fullmatch(r"<(https?://[^>]+)>", str(received["List-Unsubscribe"]).strip())
    assert match, f"List-Unsubscribe should hold one <URL>, not {received['List-Unsubscribe']!r}"
    return match.group(1)


def unsubscribe_path(received: EmailMessage) -> str:
    return urlsplit(unsubscribe_link(received)).path


def one_click(path: str):
    """What an RFC 8058 mail client sends: a form POST, no cookie, no CSRF token."""
    client = Client(enforce_csrf_checks=True)
    return client.post(path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")


def test_the_reminder_arrives_in_german_with_a_text_and_an_html_part(received_reminder, inbox, german_customer):
    received = received_reminder
    # Django 5.2 folds a non-ASCII subject right after "Subject:", and Python's parser keeps that
    # folding white space in front of the decoded words; mail clients drop it, so do we.
    assert received["Subject"].strip() == f"Zahlungserinnerung: {AMOUNT_DE} überfällig"
    assert received["To"] == german_customer.email
    assert inbox.recipients == [[german_customer.email]]
    assert received.get_content_type() == "multipart/alternative"

    text = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    assert text.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    text_content, html_content = text.get_content(), html.get_content()
    for content in (text_content, html_content):
        assert AMOUNT_DE in content
        assert INVOICE_NUMBER in content
        assert DUE_ON_DE in content
        assert "Guten Tag Jürgen Müller" in content
    # The text part is not escaped; the HTML part is.
    assert "Müller & Söhne GmbH" in text_content
    assert "Müller &amp; Söhne GmbH" in html_content
    assert f"<strong>{AMOUNT_DE}</strong>" in html_content

    message = Message.objects.get()
    assert message.status == Message.Status.SENT
    assert message.provider_message_id == received["Message-ID"]
    assert message.template.language == "de"


def test_the_reminder_offers_a_one_click_unsubscribe_link(received_reminder):
    link = unsubscribe_link(received_reminder)
    assert re.fullmatch(re.escape(SITE_URL) + r"/u/[^/]+/", link)
    assert received_reminder["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_one_click_unsubscribe_opts_the_customer_out_and_the_queued_next_reminder_is_cancelled_at_send_time(
    received_reminder, clock, engine, inbox, german_customer, run_jobs
):
    # Day 10, 20:30 in Berlin: the second reminder is written, but contact hours are over.
    clock.move_to(berlin(10, 20, 30))
    engine()
    second = Message.objects.exclude(pk=Message.objects.get(status=Message.Status.SENT).pk).get()
    assert second.channel == Channel.EMAIL
    assert second.status == Message.Status.QUEUED
    assert second.send_after == berlin(11, 8)
    assert second.deferred_reason.startswith(OUTSIDE_HOURS.split("(")[0])

    # That evening the customer clicks the unsubscribe button of the first reminder.
    response = one_click(unsubscribe_path(received_reminder))
    assert response.status_code == 200
    # The customer reads German: so does the page (portal/tests/test_languages.py, the other pages).
    assert "Sie erhalten keine Zahlungserinnerungen mehr per E-Mail." in response.content.decode()
    consent = Consent.objects.get(customer=german_customer, channel=Channel.EMAIL)
    assert consent.granted is False
    assert consent.source == Consent.Source.UNSUBSCRIBE

    # The next morning the deferred delivery runs: the rules, checked at send time, cancel it.
    clock.move_to(berlin(11, 8))
    run_jobs()
    second.refresh_from_db()
    assert second.status == Message.Status.CANCELLED
    reason = OPTED_OUT % {"channel": "Email"}
    assert second.error == reason
    assert len(inbox.received) == 1, "nothing more may reach the customer by email"
    case = Case.objects.get()
    cancelled = CaseEvent.objects.get(case=case, type="collections.message.cancelled")
    assert cancelled.data["reason"] == reason
    assert cancelled.data["message_id"] == second.pk


# A customer reachable by email only: once that is gone, the step goes to a person (finding a
# number is part of a collector's job), and the tick must not trip over the empty address.
def test_a_step_due_after_the_opt_out_is_not_emailed_but_becomes_a_call_task(
    received_reminder, clock, engine, inbox, german_customer
):
    assert not german_customer.phone
    assert one_click(unsubscribe_path(received_reminder)).status_code == 200

    clock.move_to(berlin(10, 10))
    engine()
    first = Message.objects.get(channel=Channel.EMAIL)
    second = Message.objects.exclude(pk=first.pk).get()
    assert second.channel == Channel.CALL
    assert second.to_address == ""
    assert second.status == Message.Status.SENT
    assert second.provider_message_id == f"call-task-{second.pk}"
    assert len(inbox.received) == 1


def test_a_tampered_unsubscribe_link_shows_the_friendly_404_page_and_changes_nothing(
    received_reminder, german_customer
):
    path = unsubscribe_path(received_reminder)
    token = path.rstrip("/").rsplit("/", 1)[-1]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    response = one_click(path.replace(token, tampered))
    assert response.status_code == 404
    assert b"This link is not valid" in response.content
    assert not Consent.objects.filter(customer=german_customer).exists()


def test_opening_the_unsubscribe_link_asks_for_confirmation_and_changes_nothing(received_reminder, german_customer):
    path = unsubscribe_path(received_reminder)
    response = Client().get(path)
    assert response.status_code == 200
    assert "<h1>Keine Erinnerungen mehr per E-Mail erhalten?</h1>" in response.content.decode()
    assert b'<form method="post">' in response.content
    assert not Consent.objects.filter(customer=german_customer).exists()

    # Confirming (the page's form posts back to the same address) opts the customer out.
    response = Client(enforce_csrf_checks=True).post(path)
    assert response.status_code == 200
    consent = Consent.objects.get(customer=german_customer, channel=Channel.EMAIL)
    assert (consent.granted, consent.source) == (False, Consent.Source.UNSUBSCRIBE)
