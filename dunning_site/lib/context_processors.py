from django.conf import settings


def billing(request) -> dict:
    """Every staff page says whether payments are real: the sandbox must never pass for Stripe."""
    return {"billing_is_sandbox": not settings.STRIPE_API_KEY}
