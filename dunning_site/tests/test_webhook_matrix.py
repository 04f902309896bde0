"""Every webhook, generated from the URL configuration: each one refuses a request without its proof
(a signature, or the shared secret) and writes nothing; the same request with the proof is accepted,
so the refusal is the check's doing. A new URL under /webhooks/ without an entry here fails the test."""

import base64
import datetime as dt
import json

import pytest
import time_machine
from django.urls import URLPattern, URLResolver, get_resolver
from twilio.request_validator import RequestValidator

from dunning_site.accounts.models import BillingEvent, Consent
from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.collections.tests import stripe_fake
from dunning_site.notifications.models import DeliveryEvent, InboundSms, Message

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 16, 10, 0, tzinfo=dt.UTC)
TWILIO_TOKEN = "twilio-auth-token-for-the-matrix"
ANYMAIL_SECRET = "matrix-user:matrix-password"
PHONE = "+33612345678"

STRIPE = "a Stripe-Signature over the body"
TWILIO = "an X-Twilio-Signature over the URL and the form"
ANYMAIL = "the shared secret (basic auth), and the ESP's own signature where it has one"
# Every route under /webhooks/ → the proof it asks for. Anymail's come from its package: one per ESP.
NAMED = {"webhooks/stripe/": STRIPE, "webhooks/twilio/status/": TWILIO, "webhooks/twilio/inbound/": TWILIO}


def webhook_routes(resolver=None, prefix: str = "") -> dict[str, str]:
    """Route → an example path, for every URL under webhooks/ (regex routes unescaped by hand)."""
    routes = {}
    for entry in (resolver or get_resolver()).url_patterns:
        route = prefix + str(entry.pattern).lstrip("^").rstrip("$")
        if isinstance(entry, URLResolver):
            routes |= webhook_routes(entry, route)
        elif isinstance(entry, URLPattern) and route.startswith("webhooks/"):
            routes[route] = "/" + route.replace("(_mime)?", "")
    return routes


@pytest.fixture(autouse=True)
def secrets(settings):
    settings.STRIPE_WEBHOOK_SECRET = stripe_fake.WEBHOOK_SECRET
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.ANYMAIL = {"WEBHOOK_SECRET": ANYMAIL_SECRET}


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


def written() -> dict[str, int]:
    return {
        "billing events": BillingEvent.objects.count(),
        "delivery events": DeliveryEvent.objects.count(),
        "consents": Consent.objects.count(),
        "inbound SMS": InboundSms.objects.count(),
        "messages changed": Message.objects.exclude(status=Message.Status.SENT).count(),
    }


def proof_of(route: str) -> str:
    return NAMED.get(route) or (ANYMAIL if route.startswith("webhooks/anymail/") else "none")


def expected_refusal(route: str) -> set[int]:
    if proof_of(route) == STRIPE:
        return {400}
    if proof_of(route) == TWILIO:
        return {403}
    # Anymail refuses the missing basic auth (400); the webhook of an ESP that needs settings of its own
    # (a signing key, an API key) that are missing here does not exist (404), never a server error.
    return {400, 404}


def test_every_webhook_is_in_the_matrix():
    routes = webhook_routes()
    assert [route for route in routes if proof_of(route) == "none"] == [], "say what proves who sent it"
    assert set(NAMED) <= set(routes)
    assert sum(route.startswith("webhooks/anymail/") for route in routes) >= 20  # tracking and inbound per ESP


@pytest.mark.parametrize("route", sorted(webhook_routes()))
def test_a_request_without_its_proof_is_refused_and_writes_nothing(client, route):
    customer = CustomerFactory(phone=PHONE, email="ada@example.com")
    Message.objects.create(
        customer=customer, channel="email", body="Hello", status="sent", idempotency_key="m", provider_message_id="x"
    )
    before = written()
    path = webhook_routes()[route]
    if proof_of(route) == TWILIO:
        response = client.post(path, {"From": PHONE, "Body": "STOP", "MessageSid": "x", "MessageStatus": "failed"})
    else:
        body = {"id": "evt_forged", "type": "invoice.paid", "event": "bounced", "message-id": "x", "recipient": "x"}
        response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code in expected_refusal(route), response.content

    assert written() == before


def test_stripe_with_its_signature_is_accepted(client):
    body, header = stripe_fake.signed(stripe_fake.event("customer.updated", {"id": "cus_1"}, event_id="evt_1"))
    response = client.post("/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
    assert response.status_code == 200
    assert BillingEvent.objects.filter(event_id="evt_1").exists()


def test_twilio_with_its_signature_is_accepted(client):
    customer = CustomerFactory(phone=PHONE)
    params = {"From": PHONE, "Body": "STOP", "MessageSid": "SM" + "a" * 32}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature("http://testserver/webhooks/twilio/inbound/", params)
    response = client.post("/webhooks/twilio/inbound/", params, HTTP_X_TWILIO_SIGNATURE=signature)
    assert response.status_code == 200
    assert Consent.objects.get(customer=customer, channel="sms").granted is False
    assert InboundSms.objects.get().keyword == "STOP"


def test_anymail_with_the_shared_secret_is_accepted(client):
    """Postmark signs nothing of its own: the shared secret in the URL is the whole proof."""
    customer = CustomerFactory(email="ada@example.com")
    message = Message.objects.create(
        customer=customer, channel="email", body="Hello", status="sent", idempotency_key="m", provider_message_id="x"
    )
    event = {
        "RecordType": "Delivery",
        "MessageID": "x",
        "Recipient": "ada@example.com",
        "DeliveredAt": "2026-03-16T09:59:00Z",
        "Metadata": {"tracking_token": message.tracking_token},
    }
    auth = "Basic " + base64.b64encode(ANYMAIL_SECRET.encode()).decode()
    response = client.post(
        "/webhooks/anymail/postmark/tracking/",
        json.dumps(event),
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.status == Message.Status.DELIVERED
