"""Delivery through a real SMTP server that misbehaves (tests/smtp_fake.py), counted exactly.

A failure before the message was handed over (connect, EHLO, MAIL, RCPT, the DATA command) is
retried; a connection cut, or a silence, after the final "." of DATA means the message may have gone
out and it is never sent again; a 5xx is a refusal that fails the message at once with the server's
reply, and a refused recipient retires the address as a hard bounce does.

The clock stands on Monday 2 March 2026, 12:00:00.4 UTC (13:00 in Paris, inside contact hours); the
fraction of a second is there on purpose, as a real clock has one.
"""

import datetime as dt
import time

import pytest
import time_machine
from django.core.mail import get_connection

from dunning_site.accounts.models import Channel, Consent, Customer
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.models import Case, CaseEvent, Step
from dunning_site.collections.tests.factories import PolicyFactory, ladder
from dunning_site.collections.tick import tick
from dunning_site.notifications import sms
from dunning_site.notifications.models import DeliveryEvent, Message
from dunning_site.notifications.services import DELIVERY_BACKOFF, messages_create
from dunning_site.notifications.smtp import EmailBackend
from dunning_site.notifications.tests.smtp_fake import DROP, HANG, FaultySmtpServer
from dunning_site.notifications.transports import MAY_HAVE_GONE_OUT, RECIPIENT_REFUSED, REFUSED

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, 0, 400_000, tzinfo=dt.UTC)
TIMEOUT = 0.5  # EMAIL_TIMEOUT in these tests, in seconds
MAY_HAVE_GONE_OUT_START = MAY_HAVE_GONE_OUT.split("(")[0]


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def smtp_server(settings):
    """The project's SMTP backend, pointed at a local server that can misbehave."""
    with FaultySmtpServer() as server:
        settings.EMAIL_BACKEND = "dunning_site.notifications.smtp.EmailBackend"
        settings.EMAIL_HOST = server.hostname
        settings.EMAIL_PORT = server.port
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = ""
        settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_TIMEOUT = TIMEOUT
        yield server


@pytest.fixture
def send(clock, django_capture_on_commit_callbacks, deliver_all):
    """Write a reminder to each customer (or to `count` new ones) and let the workers deliver them,
    moving the clock to each retry until no message waits any more; returns them, oldest first."""

    def run(count: int = 0, *, customers: list[Customer] | None = None) -> list[Message]:
        customers = customers or [CustomerFactory() for _ in range(count)]
        messages = [
            Message(
                customer=customer,
                channel=Channel.EMAIL,
                to_address=customer.email,
                subject=f"Invoice INV-{number} is overdue",
                body="Please pay €120.00.\n",
                idempotency_key=f"test:{number}",
            )
            for number, customer in enumerate(customers)
        ]
        with django_capture_on_commit_callbacks(execute=True):
            messages_create(messages)
        deliver_all(clock)
        return list(Message.objects.order_by("pk"))

    return run


def by_status(messages: list[Message]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in messages:
        counts[message.status] = counts.get(message.status, 0) + 1
    return counts


@pytest.mark.parametrize("cut", [DROP, HANG], ids=["connection dropped", "no reply until the timeout"])
def test_ten_messages_whose_first_three_connections_fail_after_the_body_are_never_sent_twice(smtp_server, send, cut):
    smtp_server.plan("BODY", cut, times=3)
    messages = send(10)

    assert len(smtp_server.bodies) == 10, "every message reached the server exactly once"
    assert sorted(smtp_server.received_ids) == sorted(message.provider_message_id for message in messages)
    assert smtp_server.duplicates() == 0
    assert by_status(messages) == {Message.Status.SENT: 7, Message.Status.FAILED: 3}
    for message in messages[:3]:
        assert message.status == Message.Status.FAILED
        assert message.error.startswith(MAY_HAVE_GONE_OUT_START)
        assert message.attempts == 1
    assert sorted(smtp_server.accepted) == sorted(message.provider_message_id for message in messages[3:])


@pytest.mark.parametrize(
    ("stage", "action"),
    [
        pytest.param("EHLO", HANG, id="no reply to EHLO until the timeout"),
        pytest.param("MAIL", "451 4.3.0 Mail server temporarily rejected message", id="451 to MAIL"),
        pytest.param("MAIL", DROP, id="dropped at MAIL"),
        pytest.param("RCPT", "450 4.2.1 Mailbox busy, try again later", id="450 to RCPT"),
        pytest.param("RCPT", DROP, id="dropped at RCPT"),
        pytest.param("DATA", "451 4.3.0 Try again later", id="451 to the DATA command"),
        pytest.param("DATA", HANG, id="no reply to the DATA command until the timeout"),
        pytest.param("BODY", "452 4.3.1 Insufficient system storage", id="452 after the body"),
    ],
)
def test_a_temporary_failure_is_retried_and_every_message_is_delivered_once(smtp_server, send, stage, action):
    smtp_server.plan(stage, action, times=3)
    messages = send(10)

    assert by_status(messages) == {Message.Status.SENT: 10}
    assert len(smtp_server.accepted) == 10
    assert smtp_server.duplicates() == 0
    assert sorted(smtp_server.accepted) == sorted(message.provider_message_id for message in messages)
    assert [message.attempts for message in messages] == [2, 2, 2] + [1] * 7
    assert all(message.error == "" for message in messages)


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        pytest.param("MAIL", "553 5.7.1 Sender address rejected: not owned by user", id="553 to MAIL"),
        pytest.param("DATA", "554 5.7.1 Service unavailable; client host blocked", id="554 to the DATA command"),
        pytest.param("BODY", "554 5.7.1 Message rejected as spam", id="554 after the body"),
    ],
)
def test_a_permanent_refusal_fails_the_message_at_once_with_the_servers_reply(smtp_server, send, stage, reply):
    smtp_server.plan(stage, reply, times=3)
    messages = send(10)

    assert by_status(messages) == {Message.Status.SENT: 7, Message.Status.FAILED: 3}
    for message in messages[:3]:
        assert message.error == REFUSED % {"reply": reply}
        assert message.attempts == 1
    assert len(smtp_server.accepted) == 7
    assert smtp_server.duplicates() == 0
    customers = {message.customer for message in messages[:3]}
    assert all(customer.email_unusable_since is None for customer in customers), "the address is not to blame"


USER_UNKNOWN = "550 5.1.1 <%s>: Recipient address rejected: User unknown"


def test_a_550_refusal_retires_the_address_as_a_hard_bounce_does(smtp_server, send):
    gone = CustomerFactory(email="billing-gone@customer.example")
    kept = CustomerFactory(email="billing-kept@customer.example")
    smtp_server.refuse_recipient(gone.email, USER_UNKNOWN % gone.email)
    bounced, sent = send(customers=[gone, kept])

    reason = RECIPIENT_REFUSED % {"reply": USER_UNKNOWN % gone.email}
    assert bounced.status == Message.Status.BOUNCED
    assert bounced.error == reason
    assert bounced.failed_at == NOW
    assert bounced.attempts == 1, "refused once, never retried"
    assert DeliveryEvent.objects.get(message=bounced).kind == "bounced"
    gone.refresh_from_db()
    assert gone.email_unusable_since == NOW
    assert gone.email_unusable_reason == reason
    assert sent.status == Message.Status.SENT
    assert smtp_server.accepted == [sent.provider_message_id]
    assert len(smtp_server.bodies) == 1, "a refused recipient never gets the body"


def test_a_server_that_never_answers_gives_up_within_the_timeout_then_delivers_once(
    smtp_server, clock, django_capture_on_commit_callbacks, run_jobs
):
    smtp_server.plan("EHLO", HANG, times=1)
    customer = CustomerFactory()
    message = Message(
        customer=customer,
        channel=Channel.EMAIL,
        to_address=customer.email,
        subject="Invoice overdue",
        body="Please pay.\n",
        idempotency_key="hang:1",
    )
    with django_capture_on_commit_callbacks(execute=True):
        messages_create([message])

    started = time.perf_counter()
    run_jobs()
    assert time.perf_counter() - started < TIMEOUT * 4
    message.refresh_from_db()
    assert message.status == Message.Status.QUEUED
    assert message.send_after == NOW + dt.timedelta(seconds=DELIVERY_BACKOFF[0])
    assert "timed out" in message.error
    assert smtp_server.bodies == []

    clock.move_to(message.send_after + dt.timedelta(seconds=1))
    run_jobs()
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert smtp_server.accepted == [message.provider_message_id]


def test_the_smtp_backend_gives_up_after_20_seconds_by_default_well_inside_the_delivery_jobs_timeout():
    # The settings module as loaded from the environment, where EMAIL_TIMEOUT is not set.
    from dunning_site import settings as project_settings

    backend = get_connection(project_settings.SMTP_EMAIL_BACKEND, timeout=project_settings.EMAIL_TIMEOUT)
    assert isinstance(backend, EmailBackend)
    assert backend.timeout == 20
    # Every step of an SMTP session may wait that long; a few of them still end before RQ kills the job.
    assert backend.timeout * 3 < project_settings.RQ_QUEUES["messages"]["DEFAULT_TIMEOUT"]
    assert project_settings.ANYMAIL["REQUESTS_TIMEOUT"] == 20


# ---------------------------------------------------------------------------------------------
# Through the engine: the next step of the case takes another channel


PHONE = "+33612345678"
DAY_0 = dt.date(2026, 1, 5)  # a Monday


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime.combine(DAY_0 + dt.timedelta(days=day), dt.time(hour), tzinfo=dt.UTC)


def test_after_a_550_refusal_the_next_step_goes_out_by_sms_and_the_timeline_says_why(
    smtp_server, settings, django_capture_on_commit_callbacks, run_jobs
):
    settings.SMS_BACKEND = "dunning_site.notifications.sms.LocmemBackend"
    sms.outbox.clear()
    customer = CustomerFactory(email="ap@customer.example", phone=PHONE, time_zone="Europe/Paris")
    Consent.objects.create(customer=customer, channel=Channel.SMS, granted=True, source=Consent.Source.SIGNUP)
    InvoiceFactory(customer=customer, due_on=DAY_0, total=12_000, currency="EUR")
    ladder(
        PolicyFactory(),
        (3, Step.Action.REMINDER, "friendly", False),
        (10, Step.Action.REMINDER, "firm", False),
    )
    refusal = "550 5.1.1 <ap@customer.example>: Recipient address rejected: User unknown"
    smtp_server.refuse_recipient("ap@customer.example", refusal)

    def engine() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            tick()
        run_jobs()

    with time_machine.travel(at(3, 8), tick=False) as clock:  # Thursday, 09:00 in Paris
        engine()
        email = Message.objects.get()
        assert (email.channel, email.status) == (Channel.EMAIL, Message.Status.BOUNCED)
        reason = RECIPIENT_REFUSED % {"reply": refusal}
        timeline = CaseEvent.objects.get(case=Case.objects.get(), type="collections.message.bounced")
        assert timeline.data["message_id"] == email.pk
        assert timeline.data["reason"] == reason

        clock.move_to(at(10, 8))  # the next Thursday
        engine()
    follow_up = Message.objects.exclude(pk=email.pk).get()
    assert follow_up.channel == Channel.SMS
    assert follow_up.status == Message.Status.SENT
    assert len(sms.outbox) == 1
    assert smtp_server.bodies == [], "nothing was ever handed over to the refusing server"
    sms.outbox.clear()
