from django.http import HttpRequest

from dunning_site.accounts.billing import PaymentsMode, payments_mode

# What each state means, for the badge's tooltip on every staff page.
PAYMENTS_NOTES = {
    PaymentsMode.STRIPE: "Card payments, retries and card updates go through Stripe.",
    PaymentsMode.SANDBOX: "No STRIPE_API_KEY: card payments are simulated by the local sandbox gateway.",
    PaymentsMode.NOT_CONFIGURED: (
        "No STRIPE_API_KEY and the sandbox is off: no card is charged and customers cannot update their card online."
    ),
}


def billing(request: HttpRequest) -> dict:
    """Every staff page says whether payments are real: the sandbox must never pass for Stripe, and
    nobody should believe retries are collecting money when no billing system is configured."""
    mode = payments_mode()
    return {"payments_mode": mode.name.lower(), "payments_label": mode.value, "payments_note": PAYMENTS_NOTES[mode]}
