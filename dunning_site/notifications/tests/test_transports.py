"""Delivery through providers' HTTP APIs that misbehave: an ESP through Anymail (Postmark's API) and
Twilio, each played by a real local HTTP server (tests/http_fake.py), counted exactly.

The request handed over and the answer lost (the connection dropped, no answer in time, an answer
that cannot be read) means the message may have gone out: never asked again. The provider busy or
down (HTTP 429, 5xx), or not reached at all (connection refused), is asked again after the backoff.
Any other refusal (4xx) fails the message at once; a refused recipient retires the address.

The clock stands on Monday 2 March 2026, 12:00 UTC (13:00 in Paris, inside contact hours).
"""

import datetime as dt
import socket
import uuid

import pytest
import time_machine
from twilio.http.http_client import TwilioHttpClient

from dunning_site.accounts.models import Channel, Consent
from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications.jobs import deliver
from dunning_site.notifications.models import DeliveryEvent, Message
from dunning_site.notifications.services import DELIVERY_BACKOFF, messages_create
from dunning_site.notifications.sms import TWILIO_NO_ANSWER, TwilioBackend
from dunning_site.notifications.tests.http_fake import DROP, HANG, NOT_JSON, ProviderApi, Request
from dunning_site.notifications.transports import MAY_HAVE_GONE_OUT, RECIPIENT_REFUSED, REFUSED

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
TIMEOUT = 0.5
MAY_HAVE_GONE_OUT_START = MAY_HAVE_GONE_OUT.split("(")[0]
PHONE = "+33612345678"
ACCOUNT_SID = "AC" + "1" * 32


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def closed_port_url() -> str:
    """An address where nothing listens: the connection is refused before anything is sent."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/"


@pytest.fixture
def send(clock, django_capture_on_commit_callbacks, deliver_all):
    """Write one message on `channel` and let the workers deliver it, retries included."""

    def run(channel: str, customer=None) -> Message:
        customer = customer or CustomerFactory(phone=PHONE)
        if channel == Channel.SMS:
            Consent.objects.create(customer=customer, channel=Channel.SMS, granted=True, source=Consent.Source.SIGNUP)
        message = Message(
            customer=customer,
            channel=channel,
            to_address=customer.phone if channel == Channel.SMS else customer.email,
            subject="Invoice INV-1 is overdue",
            body="Please pay €120.00.\n",
            idempotency_key=f"test:{channel}:{customer.pk}",
        )
        with django_capture_on_commit_callbacks(execute=True):
            messages_create([message])
        deliver_all(clock)
        message.refresh_from_db()
        return message

    return run


# ---------------------------------------------------------------------------------------------
# An ESP through Anymail


def postmark_accepts(request: Request) -> tuple[int, dict]:
    return 200, {
        "To": request.json["To"],
        "SubmittedAt": "2026-03-02T12:00:00Z",
        "MessageID": str(uuid.uuid4()),
        "ErrorCode": 0,
        "Message": "OK",
    }


@pytest.fixture
def esp(settings):
    with ProviderApi(postmark_accepts) as api:
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "server-token", "POSTMARK_API_URL": api.url + "/"}
        settings.ANYMAIL["REQUESTS_TIMEOUT"] = TIMEOUT
        yield api


@pytest.mark.parametrize(
    "lost", [DROP, HANG, NOT_JSON], ids=["connection dropped", "no answer in time", "unreadable answer"]
)
def test_an_email_whose_answer_from_the_esp_was_lost_is_never_sent_again(esp, send, lost):
    esp.plan(lost)
    message = send(Channel.EMAIL)

    assert message.status == Message.Status.FAILED
    assert message.error.startswith(MAY_HAVE_GONE_OUT_START)
    assert message.attempts == 1
    assert len(esp.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param((500, {"ErrorCode": 500, "Message": "Internal server error"}), id="500"),
        pytest.param((503, {"ErrorCode": 503, "Message": "Service unavailable"}), id="503"),
        pytest.param((429, {"ErrorCode": 429, "Message": "Rate limit exceeded"}), id="429"),
        pytest.param((401, {"ErrorCode": 10, "Message": "Bad or missing server token"}), id="401 wrong token"),
    ],
)
def test_an_email_the_esp_could_not_take_now_is_sent_once_on_the_next_attempt(esp, send, answer):
    esp.plan(answer, answer)
    message = send(Channel.EMAIL)

    assert message.status == Message.Status.SENT
    assert message.attempts == 3
    assert len(esp.requests) == 3
    assert message.error == ""


def test_an_email_is_sent_once_the_esp_can_be_reached(esp, settings, clock):
    settings.ANYMAIL["POSTMARK_API_URL"] = closed_port_url()
    customer = CustomerFactory()
    message = Message.objects.create(
        customer=customer,
        channel=Channel.EMAIL,
        to_address=customer.email,
        subject="Invoice INV-1 is overdue",
        body="Please pay.\n",
        idempotency_key="refused:1",
        send_after=NOW,
    )
    assert deliver(message.pk) == "retrying"
    message.refresh_from_db()
    assert message.status == Message.Status.QUEUED
    assert message.send_after == NOW + dt.timedelta(seconds=DELIVERY_BACKOFF[0])
    assert "Connection refused" in message.error

    settings.ANYMAIL["POSTMARK_API_URL"] = esp.url + "/"
    clock.move_to(message.send_after + dt.timedelta(seconds=1))
    assert deliver(message.pk) == "sent"
    assert len(esp.requests) == 1


def test_an_email_the_esp_refuses_fails_at_once_with_its_answer(esp, send):
    esp.plan((422, {"ErrorCode": 300, "Message": "Invalid 'From' address: 'billing@example.com'."}))
    message = send(Channel.EMAIL)

    assert message.status == Message.Status.FAILED
    assert message.error.startswith(REFUSED % {"reply": ""})
    assert "Invalid 'From' address" in message.error
    assert message.attempts == 1
    assert len(esp.requests) == 1
    message.customer.refresh_from_db()
    assert message.customer.email_unusable_since is None


def test_an_address_the_esp_refuses_is_retired_as_a_hard_bounce_retires_it(esp, send):
    customer = CustomerFactory(email="gone@customer.example")
    esp.plan(
        (
            422,
            {
                "ErrorCode": 406,
                "Message": "You tried to send to a recipient that has been marked as inactive.\n"
                "Found inactive addresses: gone@customer.example.\n"
                "Inactive recipients are ones that have generated a hard bounce or a spam complaint. ",
            },
        )
    )
    message = send(Channel.EMAIL, customer)

    assert message.status == Message.Status.BOUNCED
    assert message.error.startswith(RECIPIENT_REFUSED % {"reply": ""})
    assert message.failed_at == NOW
    assert DeliveryEvent.objects.get(message=message).kind == "bounced"
    customer.refresh_from_db()
    assert customer.email_unusable_since == NOW
    assert customer.email_unusable_reason == message.error[:255]
    assert len(esp.requests) == 1


# ---------------------------------------------------------------------------------------------
# Twilio


def twilio_accepts(request: Request) -> tuple[int, dict]:
    sid = "SM" + uuid.uuid4().hex
    return 201, {"sid": sid, "account_sid": ACCOUNT_SID, "to": request.form["To"], "status": "queued"}


# The fixture points it at the local server; Twilio's own client builds and reads every request.
_twilio_url = ""


class LocalTwilioBackend(TwilioBackend):
    def __init__(self) -> None:
        super().__init__(http_client=_LocalTwilioHttpClient(timeout=TIMEOUT))


class _LocalTwilioHttpClient(TwilioHttpClient):
    def request(self, method, url, *args, **kwargs):
        return super().request(method, url.replace("https://api.twilio.com", _twilio_url), *args, **kwargs)


@pytest.fixture
def twilio(settings, monkeypatch):
    with ProviderApi(twilio_accepts) as api:
        monkeypatch.setattr(f"{__name__}._twilio_url", api.url)
        settings.SMS_BACKEND = f"{__name__}.LocalTwilioBackend"
        settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
        settings.TWILIO_AUTH_TOKEN = "auth-token"
        settings.TWILIO_FROM_NUMBER = "+15005550006"
        settings.TWILIO_MESSAGING_SERVICE_SID = ""
        yield api


@pytest.mark.parametrize("lost", [DROP, HANG], ids=["connection dropped", "no answer in time"])
def test_an_sms_whose_answer_from_twilio_was_lost_is_never_sent_again(twilio, send, lost):
    twilio.plan(lost)
    message = send(Channel.SMS)

    assert message.status == Message.Status.FAILED
    assert message.error == TWILIO_NO_ANSWER
    assert message.attempts == 1
    assert len(twilio.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param((503, {"code": 20503, "message": "Service unavailable", "status": 503}), id="503"),
        pytest.param((429, {"code": 20429, "message": "Too Many Requests", "status": 429}), id="429"),
    ],
)
def test_an_sms_twilio_could_not_take_now_is_sent_once_on_the_next_attempt(twilio, send, answer):
    twilio.plan(answer)
    message = send(Channel.SMS)

    assert message.status == Message.Status.SENT
    assert message.attempts == 2
    assert len(twilio.requests) == 2
    assert message.provider_message_id.startswith("SM")


def test_an_sms_is_sent_once_twilio_can_be_reached(twilio, monkeypatch, clock):
    monkeypatch.setattr(f"{__name__}._twilio_url", closed_port_url().rstrip("/"))
    customer = CustomerFactory(phone=PHONE)
    Consent.objects.create(customer=customer, channel=Channel.SMS, granted=True, source=Consent.Source.SIGNUP)
    message = Message.objects.create(
        customer=customer,
        channel=Channel.SMS,
        to_address=PHONE,
        body="Please pay.",
        idempotency_key="refused:sms",
        send_after=NOW,
    )
    assert deliver(message.pk) == "retrying"
    message.refresh_from_db()
    assert "Connection refused" in message.error
    assert message.send_after == NOW + dt.timedelta(seconds=DELIVERY_BACKOFF[0])

    monkeypatch.setattr(f"{__name__}._twilio_url", twilio.url)
    clock.move_to(message.send_after + dt.timedelta(seconds=1))
    assert deliver(message.pk) == "sent"
    assert len(twilio.requests) == 1
