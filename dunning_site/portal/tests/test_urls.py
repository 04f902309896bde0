"""The portal's URLs: every one is public (the signed link is the key, never a login), sits where the
links already sent point, and shows no staff chrome."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.collections.customer_links import CARD_UPDATE_PATH, card_update_url

pytestmark = pytest.mark.django_db

# name → the path of its page for the token "t"; a new portal URL without an entry here fails the test.
PUBLIC = {
    "portal:card": "/portal/card/t/",
    "portal:card_done": "/portal/card/t/done/",
    "portal:card_sandbox": "/portal/card/t/sandbox/",
    "portal:home": "/portal/t/",
    "portal:something_wrong": "/portal/t/something-wrong/",
    "portal:something_wrong_received": "/portal/t/something-wrong/received/",
    "portal:preferences": "/portal/t/preferences/",
    "portal:invoice_pdf": "/portal/t/invoices/1/pdf/",
    "portal:promise": "/portal/t/promise/",
    "portal:pay": "/portal/t/pay/",
    "portal:pay_status": "/portal/t/pay/status/",
    "portal:language": "/portal/card/t/language/",
    "portal:home_language": "/portal/t/language/",
}
# What a URL names besides the token (an invoice's id).
MORE_ARGS = {"portal:invoice_pdf": [1]}
POSTED = {
    "portal:card_sandbox",
    "portal:language",
    "portal:something_wrong",
    "portal:preferences",
    "portal:promise",
    "portal:pay",
    "portal:home_language",
}


def named_urls(resolver=None, namespace="") -> set[str]:
    names = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            names |= named_urls(entry, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            names.add(f"{namespace}{entry.name}")
    return names


def test_every_portal_url_is_listed_and_keeps_its_path():
    assert {name for name in named_urls() if name.startswith("portal:")} == set(PUBLIC)
    for name, path in PUBLIC.items():
        assert reverse(name, args=["t", *MORE_ARGS.get(name, [])]) == path


def test_the_link_messages_carry_opens_the_card_page(settings):
    settings.SITE_URL = "https://dunning.example.com/"
    customer = CustomerFactory()
    url = card_update_url(customer)
    token = url.removeprefix(f"https://dunning.example.com/{CARD_UPDATE_PATH}").removesuffix("/")
    assert url == "https://dunning.example.com" + reverse("portal:card", args=[token])


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_no_portal_page_asks_for_a_login(client, settings, name):
    """Whoever holds a bad link gets the portal's own refusal page: no login page, no staff badge."""
    settings.STRIPE_API_KEY, settings.PAYMENTS_SANDBOX = "", True
    method = client.post if name in POSTED else client.get
    response = method(reverse(name, args=["not-a-token", *MORE_ARGS.get(name, [])]))
    assert response.status_code == 404
    content = response.content.decode()
    assert "new link" in content
    assert "Payments: " not in content


def test_the_customer_portal_shows_no_payments_badge(client, settings):
    settings.STRIPE_API_KEY, settings.PAYMENTS_SANDBOX = "", False
    page = client.get(reverse("portal:card", args=["not-a-token"])).content.decode()
    assert "Payments: " not in page
