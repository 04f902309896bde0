"""The unsubscribe pages speak the customer's language (Customer.language); the confirmation page
offers the language switcher, which keeps the signed link and stores the choice on the customer. A
link that is not valid knows no customer: its page follows the browser."""

import pytest
from django.test import Client
from django.urls import reverse

from dunning_site.accounts.models import Channel, Consent
from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications.unsubscribe import unsubscribe_token

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("language", "channel", "question", "done"),
    [
        (
            "de",
            Channel.EMAIL,
            "Keine Erinnerungen mehr per E-Mail erhalten?",
            "keine Zahlungserinnerungen mehr per E-Mail",
        ),
        ("de-CH", Channel.SMS, "Keine Erinnerungen mehr per SMS erhalten?", "keine Zahlungserinnerungen mehr per SMS"),
        (
            "fr",
            Channel.EMAIL,
            "Ne plus recevoir de relances par e-mail\N{NO-BREAK SPACE}?",
            "plus de relances de paiement par e-mail",
        ),
        (
            "es",
            Channel.EMAIL,
            "¿Dejar de recibir recordatorios por correo electrónico?",
            "Ya no recibirá recordatorios de pago por correo electrónico",
        ),
        ("en", Channel.SMS, "Stop SMS reminders?", "You will not receive payment reminders by SMS any more."),
    ],
)
def test_the_unsubscribe_pages_speak_the_customers_language(language, channel, question, done):
    customer = CustomerFactory(language=language)
    path = reverse("notifications:unsubscribe", args=[unsubscribe_token(customer_id=customer.pk, channel=channel)])
    confirm = Client().get(path)
    assert confirm.status_code == 200
    assert confirm["Content-Language"] == language[:2]
    assert f"<h1>{question}</h1>" in confirm.content.decode()
    assert '<form method="post">' in confirm.content.decode()
    assert not Consent.objects.exists()

    # The one-click POST of a mail program (no cookie, no CSRF token) still opts out, and says so.
    unsubscribed = Client(enforce_csrf_checks=True).post(path)
    assert unsubscribed.status_code == 200
    assert done in unsubscribed.content.decode()
    consent = Consent.objects.get(customer=customer, channel=channel)
    assert consent.granted is False


def test_a_link_that_is_not_valid_follows_the_browser():
    path = reverse("notifications:unsubscribe", args=["not-a-token"])
    german = Client().get(path, headers={"accept-language": "de-DE,de;q=0.8"})
    assert german.status_code == 404 and german["Content-Language"] == "de"
    assert "Accept-Language" in german["Vary"]
    assert "<h1>Dieser Link ist nicht gültig</h1>" in german.content.decode()
    assert "<h1>This link is not valid</h1>" in Client().get(path).content.decode()


def test_the_switcher_stores_the_language_and_returns_to_the_confirmation():
    customer = CustomerFactory(language="en")
    token = unsubscribe_token(customer_id=customer.pk)
    path = reverse("notifications:unsubscribe", args=[token])
    client = Client(enforce_csrf_checks=True)
    page = client.get(path).content.decode()
    switch = reverse("notifications:unsubscribe_language", args=[token])
    assert f'action="{switch}"' in page and '<option value="fr" lang="fr">français</option>' in page

    csrf = client.cookies["csrftoken"].value
    response = client.post(switch, {"language": "fr", "next": path, "csrfmiddlewaretoken": csrf})
    assert response.status_code == 302 and response["Location"] == path
    customer.refresh_from_db()
    assert (customer.language, customer.language_source) == ("fr", "customer")
    assert not Consent.objects.exists(), "switching the language unsubscribes nobody"
    assert "Ne plus recevoir de relances par e-mail" in client.get(path).content.decode()

    # Elsewhere than the link's own page: back to it.
    response = client.post(switch, {"language": "de", "next": "https://evil.example/", "csrfmiddlewaretoken": csrf})
    assert response["Location"] == path
    # Without the CSRF token: refused, nothing changed.
    assert client.post(switch, {"language": "es", "next": path}).status_code == 403
    customer.refresh_from_db()
    assert customer.language == "de"


def test_the_switcher_refuses_a_link_that_is_not_valid():
    response = Client().post(reverse("notifications:unsubscribe_language", args=["nope"]), {"language": "de"})
    assert response.status_code == 404
