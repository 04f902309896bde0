"""The portal's own pages speak the customer's language: the home page, the promise page and "Something
is wrong" in German, French and Spanish (formal address), with amounts and days written the way that
language writes them.

The clock stands on Tuesday 10 March 2026, 14:00 UTC.
"""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from dunning_site.accounts.models import Customer
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections import customer_links
from dunning_site.collections.case_core import case_open
from dunning_site.collections.tests.factories import standard_policy

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
NBSP = "\N{NO-BREAK SPACE}"
NNBSP = "\N{NARROW NO-BREAK SPACE}"  # French thousands

# What each page must say, by language: the amount owed (1,234.50 EUR) as the language writes it.
PAGES = {
    "de": {
        "owed": f"1.234,50{NBSP}€",
        "home": ["<h1>Ihr Konto</h1>", "Rechnung RE-1:", "Fällig am 28. Februar 2026", "10 Tage überfällig"],
        "promise": ["<h1>Zahlungstermin zusagen</h1>", "Sie schulden 1.234,50", "Ich zahle bis zum"],
        "something_wrong": ["<h1>Etwas stimmt nicht</h1>", "Worum geht es?", "Ich habe bereits bezahlt", "Senden"],
    },
    "fr": {
        "owed": f"1{NNBSP}234,50{NBSP}€",
        "home": ["<h1>Votre compte</h1>", "Facture RE-1 :", "Échéance le 28 février 2026", "10 jours de retard"],
        "promise": ["<h1>Promettre une date de paiement</h1>", "Vous devez 1", "Je paierai au plus tard le"],
        "something_wrong": ["<h1>Un problème</h1>", "De quoi s’agit-il ?", "J’ai déjà payé", "Envoyer"],
    },
    "es": {
        "owed": f"1.234,50{NBSP}€",
        "home": ["<h1>Su cuenta</h1>", "Factura RE-1:", "Vence el 28 de febrero de 2026", "10 días de retraso"],
        "promise": ["<h1>Prometer una fecha de pago</h1>", "Debe 1.234,50", "Pagaré a más tardar el"],
        "something_wrong": ["<h1>Algo no está bien</h1>", "¿De qué se trata?", "Ya he pagado", "Enviar"],
    },
}
ENGLISH = ["Your account", "Promise a day to pay", "What is it about?", "days overdue", "Back to your account"]


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def customer_owing(language: str) -> Customer:
    customer = CustomerFactory(name="Camille Martin", language=language)
    invoice = InvoiceFactory(customer=customer, number="RE-1", total=123_450, due_on=dt.date(2026, 2, 28))
    case_open(customer=customer, currency="EUR", policy=standard_policy(), invoices=[invoice], now=NOW)
    return customer


@pytest.mark.parametrize("language", list(PAGES))
def test_the_home_promise_and_something_wrong_pages_speak_the_customers_language(client, language):
    customer = customer_owing(language)
    token = customer_links.portal_token(customer)
    expected = PAGES[language]

    for page_name in ("home", "promise", "something_wrong"):
        response = client.get(reverse(f"portal:{page_name}", args=[token]))
        assert response.status_code == 200 and response["Content-Language"] == language
        page = response.content.decode()
        for phrase in expected[page_name]:
            assert phrase in page, f"{page_name} in {language}: {phrase!r}"
        if page_name != "something_wrong":
            assert expected["owed"] in page, f"{page_name} in {language}: the amount as {language} writes it"
        assert not [english for english in ENGLISH if english in page], f"{page_name} in {language}"
