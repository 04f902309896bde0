"""One-click unsubscribe links: signed, so nobody can opt someone else out by guessing an id."""

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "dunning.unsubscribe"


def unsubscribe_token(*, customer_id: int, channel: str = "email") -> str:
    return signing.dumps({"customer": customer_id, "channel": channel}, salt=SALT, compress=True)


def unsubscribe_url(*, customer_id: int, channel: str = "email") -> str:
    token = unsubscribe_token(customer_id=customer_id, channel=channel)
    return settings.SITE_URL.rstrip("/") + reverse("notifications:unsubscribe", args=[token])


def read_unsubscribe_token(token: str) -> tuple[int, str]:
    """Raises signing.BadSignature for a tampered token. Links do not expire: an opt-out must work
    from an old email as well as a new one."""
    data = signing.loads(token, salt=SALT)
    return int(data["customer"]), str(data["channel"])
