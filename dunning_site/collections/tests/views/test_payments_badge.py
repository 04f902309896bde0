"""Every staff page says where card payments go: Stripe, the sandbox (simulated), or nowhere."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

STAFF_PAGES = ["collections:worklist", "collections:case_list", "collections:dashboard", "collections:policy_list"]


@pytest.mark.parametrize(
    ("stripe_api_key", "sandbox", "badge"),
    [
        ("sk_live_configured", False, "Payments: Stripe"),
        ("sk_live_configured", True, "Payments: Stripe"),  # a key always wins: the sandbox never stands in
        ("", True, "Payments: sandbox"),
        ("", False, "Payments: not configured"),
    ],
)
def test_every_staff_page_says_which_payments_are_live(client, manager, settings, stripe_api_key, sandbox, badge):
    settings.STRIPE_API_KEY, settings.PAYMENTS_SANDBOX = stripe_api_key, sandbox
    for name in STAFF_PAGES:
        page = client.get(reverse(name)).content.decode()
        assert page.count("Payments: ") == 1, name
        assert badge in page, name
