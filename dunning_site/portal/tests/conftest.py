"""Fixtures for the customer's pages: Stripe is the local fake the collections tests use too."""

import pytest

from dunning_site.collections.tests import stripe_fake


@pytest.fixture
def stripe_api(settings):
    """stripe-python talking to the local fake Stripe (collections/tests/stripe_fake.py), over HTTP."""
    fake = stripe_fake.FakeStripe()
    with stripe_fake.FakeStripeServer(fake) as server:
        settings.STRIPE_API_KEY = "sk_test_fake"
        settings.STRIPE_API_BASE = server.url
        settings.STRIPE_WEBHOOK_SECRET = stripe_fake.WEBHOOK_SECRET
        yield fake
