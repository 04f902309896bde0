"""A signed Anymail webhook for a hard bounce changes the message status, marks the address, and
the next step goes out by SMS (with consent) or becomes a call task; an unsigned or wrongly signed
webhook gets 4xx and changes nothing.

The webhooks are Mailgun's "new-style" JSON ones, built and signed as Mailgun does (HMAC-SHA256 of
timestamp + token with the webhook signing key) and sent with Anymail's basic-auth shared secret,
so Anymail's own view authenticates and parses them before our receiver runs. Without a configured
webhook secret every Anymail webhook is refused (Anymail alone would only warn), and an event finds
its message by the unguessable token the email carried, never by our sequential id.

Invoice due on Monday 5 January 2026 (day 0); the ladder emails on day 3 and day 10 at 09:00
Paris time (08:00 UTC in winter).
"""

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from typing import Any

import pytest
import time_machine
from django.core import mail

from dunning_site.accounts.models import Channel, Consent
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from dunning_site.collections.case_core import case_assign
from dunning_site.collections.models import Case, CaseEvent, Step
from dunning_site.collections.tests.factories import PolicyFactory, ladder
from dunning_site.collections.tick import tick
from dunning_site.notifications import sms, tracking
from dunning_site.notifications.models import DeliveryEvent, Message
from dunning_site.notifications.sms import sms_segments

pytestmark = pytest.mark.django_db

WEBHOOK_URL = "/webhooks/anymail/mailgun/tracking/"
SIGNING_KEY = "whsec-test-mailgun-0123456789abcdef"
WEBHOOK_SECRET = "user:pass"
PHONE = "+33612345678"
PAY_URL = "https://invoice.stripe.com/i/acct_1Nv0FG2eZvKYlo2C/live_YWNjdF8xTnYwRkcyZVp2S1lsbzJDLF9QV3pT"
BOUNCE_REASON = "550 5.1.1 The email account that you tried to reach does not exist."

DAY_0 = dt.date(2026, 1, 5)  # a Monday


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(DAY_0 + dt.timedelta(days=day), dt.time(hour, minute), tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def webhook_settings(settings):
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    settings.SMS_BACKEND = "dunning_site.notifications.sms.LocmemBackend"
    sms.outbox.clear()
    yield settings
    sms.outbox.clear()


@pytest.fixture
def clock():
    with time_machine.travel(at(3, 8), tick=False) as traveller:  # Thursday, 09:00 in Paris
        yield traveller


@pytest.fixture
def engine(django_capture_on_commit_callbacks, run_jobs):
    def run() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            tick()
        run_jobs()

    return run


def customer_owing(*, sms_consent: bool):
    customer = CustomerFactory(email="ap@customer.example", phone=PHONE, time_zone="Europe/Paris")
    if sms_consent:
        Consent.objects.create(customer=customer, channel=Channel.SMS, granted=True, source=Consent.Source.SIGNUP)
    InvoiceFactory(customer=customer, due_on=DAY_0, total=12_000, currency="EUR", hosted_payment_url=PAY_URL)
    ladder(
        PolicyFactory(),
        (3, Step.Action.REMINDER, "friendly", False),
        (10, Step.Action.REMINDER, "firm", False),
    )
    return customer


@pytest.fixture
def customer_with_sms_consent():
    return customer_owing(sms_consent=True)


@pytest.fixture
def customer_without_sms_consent():
    return customer_owing(sms_consent=False)


@pytest.fixture
def sent_email(clock, engine, customer_with_sms_consent) -> Message:
    """The day-3 reminder, handed to the ESP (Anymail's test backend)."""
    engine()
    assert len(mail.outbox) == 1
    message = Message.objects.get()
    assert (message.channel, message.status) == (Channel.EMAIL, Message.Status.SENT)
    return message


def mailgun_event(message: Message, event: str, *, when: dt.datetime, key: str = SIGNING_KEY, **fields) -> dict:
    """A Mailgun tracking webhook body, signed as Mailgun signs it: the token is unique per event."""
    timestamp = str(int(when.timestamp()))
    token = secrets.token_hex(25)
    signature = hmac.new(key.encode("ascii"), f"{timestamp}{token}".encode("ascii"), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "id": secrets.token_urlsafe(16),
            "event": event,
            "timestamp": when.timestamp(),
            "recipient": message.to_address,
            "recipient-domain": message.to_address.rsplit("@", 1)[-1],
            "tags": ["dunning"],
            "message": {"headers": {"message-id": message.provider_message_id, "to": message.to_address}},
            # Anymail sends the message's metadata as Mailgun user variables; they come back here.
            "user-variables": {"tracking_token": message.tracking_token, "idempotency_key": message.idempotency_key},
            **fields,
        },
    }


def hard_bounce(message: Message, *, when: dt.datetime, **options) -> dict:
    return mailgun_event(
        message,
        "failed",
        when=when,
        severity="permanent",
        reason="bounce",
        **{
            "delivery-status": {
                "code": 550,
                "message": BOUNCE_REASON,
                "description": "",
                "attempt-no": 1,
                "session-seconds": 0.4,
                "mx-host": "mx.customer.example",
            }
        },
        **options,
    )


def basic_auth(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode("ascii")}


def post_webhook(client, payload: dict, *, headers: dict[str, str] | None = None):
    headers = basic_auth(WEBHOOK_SECRET) if headers is None else headers
    return client.post(WEBHOOK_URL, data=json.dumps(payload), content_type="application/json", headers=headers)


def snapshot(message: Message) -> dict[str, Any]:
    """What a webhook could change, to show that a refused one changed none of it."""
    message.refresh_from_db()
    customer = message.customer
    customer.refresh_from_db()
    return {
        "status": message.status,
        "error": message.error,
        "failed_at": message.failed_at,
        "delivered_at": message.delivered_at,
        "opened_at": message.opened_at,
        "email_unusable_since": customer.email_unusable_since,
        "email_unusable_reason": customer.email_unusable_reason,
        "consents": list(customer.consents.values_list("channel", "granted")),
        "delivery_events": DeliveryEvent.objects.count(),
        "case_events": CaseEvent.objects.count(),
    }


def test_a_signed_hard_bounce_marks_the_message_and_the_address(client, clock, sent_email):
    bounced_at = at(3, 8, 2)
    clock.move_to(at(3, 8, 5))
    response = post_webhook(client, hard_bounce(sent_email, when=bounced_at))
    assert response.status_code == 200

    sent_email.refresh_from_db()
    assert sent_email.status == Message.Status.BOUNCED
    assert sent_email.error == BOUNCE_REASON
    assert sent_email.failed_at == bounced_at
    event = DeliveryEvent.objects.get(message=sent_email)
    assert event.kind == "bounced"
    assert event.at == bounced_at
    assert event.provider_event_id.startswith("Mailgun:")
    assert event.data["event_type"] == "bounced"

    customer = sent_email.customer
    customer.refresh_from_db()
    assert customer.email_unusable_since == bounced_at
    assert customer.email_unusable_reason == BOUNCE_REASON

    timeline = CaseEvent.objects.get(case=Case.objects.get(), type="collections.message.bounced")
    assert timeline.data["message_id"] == sent_email.pk
    assert timeline.data["reason"] == BOUNCE_REASON


def test_after_a_hard_bounce_the_next_step_goes_out_by_sms_to_a_customer_who_agreed(client, clock, engine, sent_email):
    assert post_webhook(client, hard_bounce(sent_email, when=at(3, 8, 2))).status_code == 200

    clock.move_to(at(10, 8))  # Thursday, 09:00 in Paris
    engine()
    assert len(mail.outbox) == 1, "no second email to an address that bounced"
    follow_up = Message.objects.exclude(pk=sent_email.pk).get()
    assert follow_up.channel == Channel.SMS
    assert follow_up.to_address == PHONE
    assert follow_up.status == Message.Status.SENT
    assert len(sms.outbox) == 1
    sent_sms = sms.outbox[0]
    assert sent_sms.to == PHONE
    assert follow_up.provider_message_id == sent_sms.provider_id
    assert sent_sms.idempotency_key == follow_up.idempotency_key
    assert sms_segments(sent_sms.body) <= 2
    assert PAY_URL in sent_sms.body, "the payment link must survive the fitting to two segments"
    performed = CaseEvent.objects.filter(type="collections.step.performed").last()
    assert performed.data["sent_on"] == Channel.SMS


def test_after_a_hard_bounce_without_sms_consent_the_next_step_is_a_call_task_for_the_assignee(
    client, clock, engine, customer_without_sms_consent
):
    engine()
    email = Message.objects.get()
    collector = UserFactory(username="collector", time_zone="Europe/Paris")
    case_assign(case=Case.objects.get(), assignee=collector)
    assert post_webhook(client, hard_bounce(email, when=at(3, 8, 2))).status_code == 200

    clock.move_to(at(10, 8))  # Thursday, 09:00 in Paris and for the collector
    engine()
    assert len(mail.outbox) == 1
    assert sms.outbox == []
    call = Message.objects.exclude(pk=email.pk).get()
    assert call.channel == Channel.CALL
    assert call.to_address == PHONE
    assert call.assigned_to == collector
    assert call.status == Message.Status.SENT
    assert call.provider_message_id == f"call-task-{call.pk}"


def test_a_webhook_with_a_wrong_signature_is_refused_and_changes_nothing(client, clock, sent_email):
    before = snapshot(sent_email)
    payload = hard_bounce(sent_email, when=at(3, 8, 2), key="not-the-signing-key")
    response = post_webhook(client, payload)
    assert response.status_code == 400  # Anymail answers a bad signature with 400
    assert snapshot(sent_email) == before


def test_a_webhook_whose_signature_was_tampered_with_is_refused_and_changes_nothing(client, clock, sent_email):
    before = snapshot(sent_email)
    payload = hard_bounce(sent_email, when=at(3, 8, 2))
    payload["signature"]["timestamp"] = str(int(payload["signature"]["timestamp"]) + 1)
    assert post_webhook(client, payload).status_code == 400
    assert snapshot(sent_email) == before


@pytest.mark.parametrize(
    "headers",
    [{}, basic_auth("user:wrong"), {"Authorization": "Bearer user:pass"}],
    ids=["no-basic-auth", "wrong-password", "not-basic-auth"],
)
def test_a_correctly_signed_webhook_without_the_shared_secret_is_refused_and_changes_nothing(
    client, clock, sent_email, headers
):
    before = snapshot(sent_email)
    response = post_webhook(client, hard_bounce(sent_email, when=at(3, 8, 2)), headers=headers)
    # Anymail refuses every failed authentication (basic auth included) with 400, not 401/403.
    assert response.status_code == 400
    assert snapshot(sent_email) == before


def test_replaying_the_same_signed_event_changes_nothing_the_second_time(client, clock, sent_email):
    payload = hard_bounce(sent_email, when=at(3, 8, 2))
    assert post_webhook(client, payload).status_code == 200
    # Meanwhile staff corrected the address: a replay of the old bounce must not undo that.
    customer = sent_email.customer
    customer.refresh_from_db()
    customer.email_unusable_since, customer.email_unusable_reason = None, ""
    customer.save()
    before = snapshot(sent_email)

    assert post_webhook(client, payload).status_code == 200
    assert snapshot(sent_email) == before
    assert DeliveryEvent.objects.filter(message=sent_email).count() == 1
    assert CaseEvent.objects.filter(type="collections.message.bounced").count() == 1


def test_delivered_and_opened_events_record_when_they_happened(client, clock, sent_email):
    delivered_at, opened_at = at(3, 8, 1), at(3, 9, 30)
    clock.move_to(at(3, 10))
    assert post_webhook(client, mailgun_event(sent_email, "delivered", when=delivered_at)).status_code == 200
    sent_email.refresh_from_db()
    assert sent_email.status == Message.Status.DELIVERED
    assert sent_email.delivered_at == delivered_at

    assert post_webhook(client, mailgun_event(sent_email, "opened", when=opened_at)).status_code == 200
    sent_email.refresh_from_db()
    assert sent_email.status == Message.Status.DELIVERED
    assert sent_email.delivered_at == delivered_at
    assert sent_email.opened_at == opened_at
    kinds = list(DeliveryEvent.objects.filter(message=sent_email).values_list("kind", flat=True))
    assert kinds == ["delivered", "opened"]
    types = set(CaseEvent.objects.values_list("type", flat=True))
    assert {"collections.message.delivered", "collections.message.opened"} <= types


def test_a_late_delivered_or_opened_event_does_not_undo_a_hard_bounce(client, clock, sent_email):
    bounced_at = at(3, 8, 2)
    clock.move_to(at(3, 10))
    assert post_webhook(client, hard_bounce(sent_email, when=bounced_at)).status_code == 200

    # Out of order (or from a forwarding server): a "delivered", then an "opened", after the bounce.
    assert post_webhook(client, mailgun_event(sent_email, "delivered", when=at(3, 8, 1))).status_code == 200
    assert post_webhook(client, mailgun_event(sent_email, "opened", when=at(3, 9))).status_code == 200

    sent_email.refresh_from_db()
    assert sent_email.status == Message.Status.BOUNCED
    assert sent_email.error == BOUNCE_REASON
    assert sent_email.failed_at == bounced_at
    assert sent_email.opened_at == at(3, 9)
    customer = sent_email.customer
    customer.refresh_from_db()
    assert customer.email_unusable_since == bounced_at
    assert DeliveryEvent.objects.filter(message=sent_email).count() == 3


# ---------------------------------------------------------------------------------------------
# Forged events: without a secret nothing is accepted; with one, a guessed id still touches nothing.


def test_the_email_carries_its_tracking_token_not_its_id(sent_email):
    (email,) = mail.outbox
    assert email.metadata == {
        "tracking_token": sent_email.tracking_token,
        "idempotency_key": sent_email.idempotency_key,
    }
    assert len(sent_email.tracking_token) >= 32
    assert str(sent_email.pk) not in email.metadata.values()


def test_every_message_gets_its_own_tracking_token(clock, engine):
    customers = [customer_owing(sms_consent=False) for _ in range(3)]
    engine()
    tokens = set(Message.objects.values_list("tracking_token", flat=True))
    assert Message.objects.count() == len(customers) == len(tokens)
    assert all(len(token) >= 32 for token in tokens)


def postmark_bounce(message: Message) -> dict:
    """A Postmark bounce webhook as Postmark posts it (Postmark signs nothing: basic auth is all)."""
    return {
        "RecordType": "Bounce",
        "ID": 4323372036,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "MessageID": message.provider_message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": BOUNCE_REASON,
        "Email": message.to_address,
        "From": "billing@example.com",
        "BouncedAt": "2026-01-08T08:02:00Z",
        "Inactive": True,
        "CanActivate": True,
        "Subject": message.subject,
        "Metadata": {"tracking_token": message.tracking_token},
    }


def mailgun_inbound_stop(message: Message) -> dict:
    return {"recipient": "billing@example.com", "sender": message.to_address, "subject": "STOP", "body-plain": "STOP"}


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize("esp", ["mailgun-tracking", "postmark-tracking", "mailgun-inbound"])
def test_without_a_webhook_secret_every_anymail_webhook_is_refused_and_changes_nothing(
    client, clock, sent_email, settings, secret, esp
):
    settings.ANYMAIL = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY} | ({"WEBHOOK_SECRET": secret} if secret else {})
    before = snapshot(sent_email)
    url, payload = {
        # Correctly signed with Mailgun's key: a signature proves nothing when the key is the attacker's guess.
        "mailgun-tracking": (WEBHOOK_URL, hard_bounce(sent_email, when=at(3, 8, 2))),
        "postmark-tracking": ("/webhooks/anymail/postmark/tracking/", postmark_bounce(sent_email)),
        "mailgun-inbound": ("/webhooks/anymail/mailgun/inbound/", mailgun_inbound_stop(sent_email)),
    }[esp]
    response = client.post(url, data=json.dumps(payload), content_type="application/json")
    assert response.status_code == 403
    assert tracking.WEBHOOK_SECRET_MISSING in response.content.decode()
    assert snapshot(sent_email) == before


def test_with_the_secret_a_postmark_bounce_is_recorded(client, clock, sent_email, settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
    response = client.post(
        "/webhooks/anymail/postmark/tracking/",
        data=json.dumps(postmark_bounce(sent_email)),
        content_type="application/json",
        headers=basic_auth(WEBHOOK_SECRET),
    )
    assert response.status_code == 200
    sent_email.refresh_from_db()
    assert sent_email.status == Message.Status.BOUNCED
    assert DeliveryEvent.objects.filter(message=sent_email, kind="bounced").count() == 1


@pytest.mark.parametrize("metadata_key", ["message_id", "tracking_token"])
def test_an_authenticated_event_naming_a_guessed_message_id_touches_no_message(client, clock, sent_email, metadata_key):
    """Valid basic auth and signature, as from another application sharing the ESP account (its events
    reach every webhook of the account) or from whoever learnt the secret: the sequential id in the
    metadata, where we used to look, finds nothing now."""
    before = snapshot(sent_email)
    payload = hard_bounce(sent_email, when=at(3, 8, 2))
    payload["event-data"]["user-variables"] = {metadata_key: str(sent_email.pk)}
    payload["event-data"]["message"]["headers"]["message-id"] = "20260108080200.1.ANOTHERAPP@mg.other.example"
    response = post_webhook(client, payload)
    assert response.status_code == 200  # accepted from the ESP, so it is not retried; nothing matched
    assert snapshot(sent_email) == before
    assert DeliveryEvent.objects.count() == 0


def test_an_event_without_metadata_finds_its_message_by_the_esps_own_id(client, clock, sent_email):
    """Emails sent before the token existed carried only the id: their events still arrive."""
    Message.objects.filter(pk=sent_email.pk).update(provider_message_id="<20260108080000.1.F00D@mg.example.com>")
    sent_email.refresh_from_db()
    payload = hard_bounce(sent_email, when=at(3, 8, 2))
    payload["event-data"]["user-variables"] = {"message_id": str(sent_email.pk)}
    # Mailgun's webhook gives its id without the angle brackets its sending API put around it.
    payload["event-data"]["message"]["headers"]["message-id"] = "20260108080000.1.F00D@mg.example.com"
    assert post_webhook(client, payload).status_code == 200
    sent_email.refresh_from_db()
    assert sent_email.status == Message.Status.BOUNCED
