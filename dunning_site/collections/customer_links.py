"""The links that messages carry to the customer: the portal's (every choice: pay, card, plan, promise,
something wrong, preferences) and the card-update link that goes straight to a new card. Signed,
expiring, revocable.

A link is the only thing a customer holds, so it carries no secret of its own beyond Django's
signature: the customer's id and the `portal_link_version` it was issued under. Raising that
version on the customer revokes every link sent so far (a forwarded email, a shared screen);
the timestamp inside the signature makes a link die after CARD_UPDATE_LINK_MAX_AGE, so an old
email found in an inbox years later opens nothing.

Messages are written here (the tick has no request) and the page that opens a link lives in the
portal app, above this one. So the link's shape is defined here, and the portal routes its pages
from CARD_UPDATE_PATH: links already sent keep working only as long as that path never changes.
"""

import datetime as dt

from django.conf import settings
from django.core import signing

from dunning_site.accounts.models import Customer

CARD_UPDATE_SALT = "dunning.card-update"
CARD_UPDATE_LINK_MAX_AGE = dt.timedelta(days=14)
# The card page is CARD_UPDATE_PATH + "<token>/" (portal/urls.py); it is in every card link sent.
CARD_UPDATE_PATH = "portal/card/"
# The portal's home is PORTAL_PATH + "<token>/", its pages below it (portal/urls.py). A portal link lives
# longer than a card link: it is the one a customer keeps to come back to a plan or a promise.
PORTAL_SALT = "dunning.portal"
PORTAL_PATH = "portal/"
PORTAL_LINK_MAX_AGE = dt.timedelta(days=45)


class PortalLinkInvalid(Exception):
    """Tampered, revoked, or for a customer who no longer exists: the customer needs a new link."""


class PortalLinkExpired(PortalLinkInvalid):
    """Authentic but older than its lifetime."""


def card_update_token(customer: Customer) -> str:
    return _token(customer, salt=CARD_UPDATE_SALT)


def card_update_url(customer: Customer) -> str:
    """The absolute card-update link for messages (SITE_URL, not a request: the tick has none)."""
    return f"{settings.SITE_URL.rstrip('/')}/{CARD_UPDATE_PATH}{card_update_token(customer)}/"


def read_card_update_token(token: str, *, max_age: dt.timedelta = CARD_UPDATE_LINK_MAX_AGE) -> Customer:
    """The customer a link is for. Raises PortalLinkExpired or PortalLinkInvalid; the two get
    different pages only because "ask for a new one" is the only advice either can give."""
    return _read(token, salt=CARD_UPDATE_SALT, max_age=max_age)


def portal_token(customer: Customer) -> str:
    return _token(customer, salt=PORTAL_SALT)


def portal_url(customer: Customer, page: str = "") -> str:
    """The absolute link to the customer's portal (its home, or `page` below it, like "plan/")."""
    return f"{settings.SITE_URL.rstrip('/')}/{PORTAL_PATH}{portal_token(customer)}/{page}"


def read_portal_token(token: str, *, max_age: dt.timedelta = PORTAL_LINK_MAX_AGE) -> Customer:
    """The customer a portal link is for; raises as read_card_update_token does. A card link is not a
    portal link (another salt): the card page gives a card, nothing else."""
    return _read(token, salt=PORTAL_SALT, max_age=max_age)


def _token(customer: Customer, *, salt: str) -> str:
    # Short keys: the link also goes out by SMS, where every character counts.
    return signing.dumps({"c": customer.pk, "v": customer.portal_link_version}, salt=salt, compress=True)


def _read(token: str, *, salt: str, max_age: dt.timedelta) -> Customer:
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired as error:  # checked after the signature: the link is authentic
        raise PortalLinkExpired(str(error)) from error
    except signing.BadSignature as error:
        raise PortalLinkInvalid(str(error)) from error
    try:
        customer = Customer.objects.get(pk=int(data["c"]))
        version = int(data["v"])
    except (Customer.DoesNotExist, KeyError, TypeError, ValueError) as error:
        raise PortalLinkInvalid("No such customer") from error
    if customer.portal_link_version != version:
        raise PortalLinkInvalid("Revoked: the customer's links were reissued")
    return customer
