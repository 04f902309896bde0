import datetime as dt

import django_rq
import pytest
import time_machine
from anymail.exceptions import AnymailAPIError
from django.core import mail

from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications.jobs import deliver
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import (
    DELIVERY_BACKOFF,
    STUCK_SENDING,
    message_deliver,
    messages_create,
    messages_sweep,
)
from dunning_site.notifications.transports import NO_TRANSPORT, TRANSPORTS

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def new_message(channel: str = "email", key: str = "test:1") -> Message:
    customer = CustomerFactory(email="ada@customer.example")
    return Message(
        customer=customer,
        channel=channel,
        to_address=customer.email,
        subject="Your invoice INV-1 is overdue",
        body="Please pay €120.00.\n",
        idempotency_key=key,
    )


def test_a_message_is_enqueued_on_commit_and_sent_by_the_worker(clock, django_capture_on_commit_callbacks, run_jobs):
    with django_capture_on_commit_callbacks(execute=True):
        (message,) = messages_create([new_message()])
    assert django_rq.get_queue("messages").count == 1
    run_jobs()
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert message.sent_at == NOW
    (email,) = mail.outbox
    assert email.to == ["ada@customer.example"]
    assert email.subject == "Your invoice INV-1 is overdue"
    assert email.metadata == {"tracking_token": message.tracking_token, "idempotency_key": "test:1"}
    assert message.provider_message_id == str(email.anymail_status.message_id)


def test_nothing_is_enqueued_when_the_transaction_rolls_back(clock, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        messages_create([new_message()])
    assert len(callbacks) == 1  # registered for commit, not run inside the transaction
    assert django_rq.get_queue("messages").count == 0


def test_running_the_delivery_job_twice_sends_once(clock):
    (message,) = messages_create([new_message()])
    assert deliver(message.pk) == "sent"
    assert deliver(message.pk) == "not claimable"
    assert len(mail.outbox) == 1
    message.refresh_from_db()
    assert message.attempts == 1


def test_a_transient_failure_puts_the_message_back_with_backoff(clock, settings):
    (message,) = messages_create([new_message()])
    settings.EMAIL_BACKEND = f"{__name__}.ProviderDown"
    assert message_deliver(message_id=message.pk) == "retrying"
    message.refresh_from_db()
    assert message.status == Message.Status.QUEUED
    assert message.send_after == NOW + dt.timedelta(seconds=DELIVERY_BACKOFF[0])
    assert "503" in message.error
    # Not sent before its next attempt is due…
    assert message_deliver(message_id=message.pk) == "not due"
    # …and sent once the provider is back.
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    clock.shift(dt.timedelta(seconds=DELIVERY_BACKOFF[0]))
    assert message_deliver(message_id=message.pk) == "sent"


class ProviderDown:
    """An email backend whose provider answers 503, as a down ESP does."""

    def __init__(self, *args, **kwargs):
        self.fail_silently = False

    def open(self):
        return None

    def close(self):
        return None

    def send_messages(self, messages):
        raise AnymailAPIError("ESP returned 503 Service Unavailable")


def test_a_channel_without_transport_fails_permanently_with_a_reason(clock, monkeypatch):
    monkeypatch.delitem(TRANSPORTS, "letter")
    (message,) = messages_create([new_message(channel="letter")])
    assert message_deliver(message_id=message.pk) == "failed"
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert message.error == NO_TRANSPORT % {"channel": "letter"}


def test_the_sweeper_reenqueues_a_message_whose_job_was_lost(
    clock, settings, django_capture_on_commit_callbacks, redis_connection, run_jobs
):
    with django_capture_on_commit_callbacks(execute=True):
        (message,) = messages_create([new_message()])
    redis_connection.flushdb()  # Redis restarted: the delivery job is gone
    run_jobs()
    assert mail.outbox == []

    assert messages_sweep() == 0, "too early: the job may just be waiting in the queue"
    clock.shift(dt.timedelta(seconds=settings.DUNNING_SWEEP_AFTER_SECONDS))
    assert messages_sweep() == 1
    run_jobs()
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert len(mail.outbox) == 1


def test_a_message_stuck_in_sending_is_failed_not_sent_again(clock):
    (message,) = messages_create([new_message()])
    Message.objects.filter(pk=message.pk).update(status=Message.Status.SENDING, claimed_at=NOW)
    clock.shift(dt.timedelta(minutes=31))
    messages_sweep()
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert message.error == STUCK_SENDING
    assert deliver(message.pk) == "not claimable"
    assert mail.outbox == []
