"""The customer's pages speak the customer's language (Customer.language), with amounts and days
written the way that language writes them (Babel); a switcher on the page changes the language and
keeps it on the customer's record, so the messages that follow are written in it too. A page that
refuses a link knows no customer: it follows the browser. Staff pages stay English.

The clock stands on Tuesday 10 March 2026, 14:00 UTC.
"""

import datetime as dt
import re

import pytest
import time_machine
from django.urls import reverse

from dunning_site.accounts.models import Customer
from dunning_site.accounts.services import LANGUAGE_NOT_OFFERED, customer_language_choose
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections import customer_links
from dunning_site.collections.ladder import cases_open_overdue
from dunning_site.collections.tests.factories import standard_policy

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
NBSP = "\N{NO-BREAK SPACE}"
NNBSP = "\N{NARROW NO-BREAK SPACE}"  # French thousands


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def sandbox(settings):
    settings.STRIPE_API_KEY = ""
    settings.PAYMENTS_SANDBOX = True
    settings.DUNNING_SENDER_COMPANY = "Beispiel GmbH"
    settings.DEFAULT_FROM_EMAIL = "Buchhaltung <rechnung@beispiel.example>"
    settings.DUNNING_SENDER_PHONE = "+49 30 1234567"


def overdue_customer(language: str, *, amounts=((123_456, "EUR"),)) -> Customer:
    """A customer with overdue invoices in an open case: what a new card is charged for at once."""
    standard_policy()
    customer = CustomerFactory(external_id=None, language=language, name="Jürgen Müller")
    for number, (total, currency) in enumerate(amounts, start=1):
        InvoiceFactory(
            customer=customer, number=f"RE-{number}", currency=currency, total=total, due_on=dt.date(2026, 2, 3)
        )
    cases_open_overdue(now=NOW)
    return customer


def done_path(customer: Customer) -> str:
    return reverse("portal:card_done", args=[customer_links.card_update_token(customer)])


def test_a_german_customer_is_thanked_in_german_with_the_amount_and_day_written_the_german_way(clock, sandbox, client):
    customer = overdue_customer("de")
    response = client.get(done_path(customer) + "?updated=1")
    assert response.status_code == 200
    assert response["Content-Language"] == "de"
    page = response.content.decode()
    assert '<html lang="de">' in page
    assert "<h1>Vielen Dank</h1>" in page
    assert f"Der seit dem 3. Februar 2026 fällige Betrag von 1.234,56{NBSP}€ wird in Kürze damit eingezogen" in page
    assert "Thank you" not in page


def test_amounts_in_two_currencies_are_listed_as_the_language_lists(clock, sandbox, client):
    customer = overdue_customer("de", amounts=((123_456, "EUR"), (5_000, "USD")))
    page = client.get(done_path(customer) + "?updated=1").content.decode()
    assert f"Betrag von 1.234,56{NBSP}€ und 50,00{NBSP}$ wird" in page


@pytest.mark.parametrize(
    ("language", "thanks", "sentence"),
    [
        ("en", "Thank you", "The €1,234.56 due since February 3, 2026 will be taken with them shortly"),
        ("en-GB", "Thank you", "The €1,234.56 due since 3 February 2026 will be taken with them shortly"),
        ("fr", "Merci", f"Le montant de 1{NNBSP}234,56{NBSP}€ dû depuis le 3 février 2026 sera prélevé sous peu"),
        ("es", "Gracias", f"El importe de 1.234,56{NBSP}€, vencido desde el 3 de febrero de 2026, se cobrará"),
        ("es-MX", "Gracias", "El importe de EUR1,234.56, vencido desde el 3 de febrero de 2026"),
        ("de-AT", "Vielen Dank", f"seit dem 3. Februar 2026 fällige Betrag von €{NBSP}1.234,56"),
        # A language the pages do not speak: English words, and English amounts and days among them.
        ("pt-BR", "Thank you", "The €1,234.56 due since February 3, 2026"),
    ],
)
def test_each_language_reads_its_own_words_amounts_and_days(clock, sandbox, client, language, thanks, sentence):
    page = client.get(done_path(overdue_customer(language)) + "?updated=1").content.decode()
    assert f"<h1>{thanks}</h1>" in page
    assert sentence in page


def test_the_other_card_pages_speak_german(clock, sandbox, client, settings):
    customer = overdue_customer("de")
    token = customer_links.card_update_token(customer)
    cancelled = client.get(done_path(customer)).content.decode()
    assert "<h1>Ihre Karte wurde nicht geändert</h1>" in cancelled
    assert f'<a href="{reverse("portal:card", args=[token])}">Versuchen Sie es erneut</a>' in cancelled

    # The card page itself leads to the sandbox's picker, in German.
    picker = client.get(reverse("portal:card", args=[token]), follow=True).content.decode()
    assert "<h1>Testkarte wählen</h1>" in picker and "Visa mit Endziffern 4242 – Zahlungen gelingen" in picker
    assert "Wird abgelehnt: unzureichende Deckung" in picker
    refused = client.post(reverse("portal:card_sandbox", args=[token]), {"payment_method": "pm_card_real_looking"})
    assert refused.status_code == 400
    assert "Bitte wählen Sie eine der Testkarten." in refused.content.decode()

    # Without any way to take a card online: the customer is told so, in German.
    settings.PAYMENTS_SANDBOX = False
    unavailable = client.get(reverse("portal:card", args=[token])).content.decode()
    assert "<h1>Ihre Karte kann noch nicht online aktualisiert werden</h1>" in unavailable
    assert (
        "Sie können auch auf die letzte E-Mail von Beispiel GmbH antworten, an "
        '<a href="mailto:rechnung@beispiel.example">rechnung@beispiel.example</a> schreiben oder +49 30 1234567 '
        "anrufen – wir helfen Ihnen gern." in unavailable
    )


def test_a_refused_link_follows_the_browser_not_the_customer(clock, sandbox, client):
    customer = overdue_customer("fr")
    token = customer_links.card_update_token(customer)
    path = reverse("portal:card", args=[token])
    clock.shift(customer_links.CARD_UPDATE_LINK_MAX_AGE + dt.timedelta(days=1))
    expired = client.get(path, headers={"accept-language": "de-DE,de;q=0.9,en;q=0.5"})
    assert expired.status_code == 410 and expired["Content-Language"] == "de"
    assert "Accept-Language" in expired["Vary"]
    page = expired.content.decode()
    assert "<h1>Dieser Link ist abgelaufen</h1>" in page
    assert "die Links in unseren Nachrichten 14 Tage gültig" in page
    assert "Für einen neuen Link antworten Sie einfach auf die letzte E-Mail von Beispiel GmbH" in page
    assert "language-switcher" not in page, "no customer is known: nothing to switch"

    tampered = client.get(reverse("portal:card", args=["not-a-token"]), headers={"accept-language": "es"})
    assert tampered.status_code == 404 and "<h1>Este enlace no es válido</h1>" in tampered.content.decode()
    # No language asked for, or none the pages speak: English.
    for header in ({}, {"accept-language": "ja"}):
        assert "<h1>This link has expired</h1>" in client.get(path, headers=header).content.decode()


def test_the_switcher_keeps_the_link_and_the_choice_on_the_customer(clock, sandbox, client):
    customer = overdue_customer("en")
    page_path = done_path(customer) + "?updated=1"
    page = client.get(page_path).content.decode()
    switch = reverse("portal:language", args=[customer_links.card_update_token(customer)])
    assert f'<form class="language-switcher" method="post" action="{switch}">' in page
    assert f'<input type="hidden" name="next" value="{page_path}">' in page
    assert '<option value="de" lang="de">Deutsch</option>' in page
    assert '<option value="en" lang="en" selected>English</option>' in page

    response = client.post(switch, {"language": "de", "next": page_path})
    assert response.status_code == 302 and response["Location"] == page_path
    customer.refresh_from_db()
    assert (customer.language, customer.language_source) == ("de", "customer")
    assert "<h1>Vielen Dank</h1>" in client.get(response["Location"]).content.decode()


@pytest.mark.parametrize(
    "next_path", ["https://evil.example/", "//evil.example/", "/admin/", "/portal/card/other-token/done/"]
)
def test_the_switcher_sends_nobody_away_from_the_link(clock, sandbox, client, next_path):
    customer = overdue_customer("en")
    token = customer_links.card_update_token(customer)
    response = client.post(reverse("portal:language", args=[token]), {"language": "fr", "next": next_path})
    assert response["Location"] == reverse("portal:card_done", args=[token])


def test_the_switcher_refuses_a_bad_link_and_an_unknown_language(clock, sandbox, client):
    customer = overdue_customer("en")
    token = customer_links.card_update_token(customer)
    bad = client.post(reverse("portal:language", args=["not-a-token"]), {"language": "de"})
    assert bad.status_code == 404
    client.post(reverse("portal:language", args=[token]), {"language": "pt"})
    customer.refresh_from_db()
    assert (customer.language, customer.language_source) == ("en", "staff")
    with pytest.raises(ValueError, match=re.escape(LANGUAGE_NOT_OFFERED % {"language": "pt"})):
        customer_language_choose(customer=customer, language="pt")
    assert client.get(reverse("portal:language", args=[token])).status_code == 405


def test_choosing_the_language_a_regional_tag_already_reads_as_keeps_the_tag(clock, sandbox):
    customer = overdue_customer("de-AT")
    customer = customer_language_choose(customer=customer, language="de")
    assert (customer.language, customer.language_source) == ("de-AT", "customer")
    customer = customer_language_choose(customer=customer, language="fr")
    assert customer.language == "fr"
    # A language the pages do not speak reads English; choosing English says so on the record, so the
    # messages stop being written in the old language too.
    customer.language = "pt-BR"
    customer.save()
    customer = customer_language_choose(customer=customer, language="en")
    assert (customer.language, customer.language_source) == ("en", "customer")


def test_staff_pages_stay_english_whatever_the_browser_asks(client):
    response = client.get(reverse("login"), headers={"accept-language": "de"})
    assert response.status_code == 200
    assert "Content-Language" not in response
    page = response.content.decode()
    assert "Anmelden" not in page and "Passwort" not in page
