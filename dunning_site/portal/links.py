"""What every portal page shares: who the customer is, from the signed link in the URL, and how a
refused link, an over-eager client or our own contact details are shown. A refused link shows who to
ask for a new one and nothing about the customer: whoever holds a bad link may not be them."""

import datetime as dt
import functools
from collections.abc import Callable
from email.utils import parseaddr

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.views.decorators.cache import never_cache
from django_ratelimit.decorators import ratelimit

from dunning_site.accounts.customer_pages import refusal_page
from dunning_site.accounts.languages import page_language
from dunning_site.accounts.models import Customer
from dunning_site.collections import customer_links

TOO_MANY_STATUS = 429


def sender_context() -> dict:
    return {
        "sender_company": settings.DUNNING_SENDER_COMPANY,
        "sender_email": parseaddr(settings.DEFAULT_FROM_EMAIL)[1],
        "sender_phone": settings.DUNNING_SENDER_PHONE,
        "link_days": customer_links.CARD_UPDATE_LINK_MAX_AGE.days,
    }


def link_refused(
    request: HttpRequest, error: customer_links.PortalLinkInvalid, *, lifetime: dt.timedelta | None = None
) -> HttpResponse:
    """In the browser's language: a refused link names no customer. `lifetime`: how long such a link
    lives (a card link's, unless said otherwise)."""
    expired = isinstance(error, customer_links.PortalLinkExpired)
    context = sender_context() | {"expired": expired}
    if lifetime is not None:
        context["link_days"] = lifetime.days
    return refusal_page(request, "portal/link_invalid.html", context, status=410 if expired else 404)


def _rate(group: str, request: HttpRequest) -> str:
    return f"{settings.PORTAL_RATE_PER_MINUTE}/m"


def rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """At most PORTAL_RATE_PER_MINUTE requests a minute from one client address to the portal's
    pages (all of them together): enough for a customer, too few to guess links."""

    @ratelimit(key="ip", rate=_rate, group="portal", block=False)
    @functools.wraps(view)
    def limited(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if getattr(request, "limited", False):
            response = refusal_page(request, "portal/too_many.html", sender_context(), status=TOO_MANY_STATUS)
            response["Retry-After"] = "60"  # the limit counts per minute
            return response
        return view(request, *args, **kwargs)

    return limited


def portal_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A page of the customer's portal: rate limited, never cached (the token is in the URL), and
    called with the customer the link is for, or answered with the refusal page. The view runs in the
    customer's language, so the words it puts together (a form's checks, a refusal) are theirs too."""

    @never_cache
    @rate_limited
    @functools.wraps(view)
    def page(request: HttpRequest, token: str, *args, **kwargs) -> HttpResponse:
        try:
            customer = customer_links.read_portal_token(token)
        except customer_links.PortalLinkInvalid as error:
            return link_refused(request, error, lifetime=customer_links.PORTAL_LINK_MAX_AGE)
        with translation.override(page_language(customer.language)):
            return view(request, customer, token, *args, **kwargs)

    return page


def masked_email(customer: Customer) -> str:
    """Enough for the customer to recognise their address, not enough to read it off a shared screen."""
    local, _, domain = customer.email.partition("@")
    if not domain:
        return ""
    return f"{local[:1]}{'•' * 3}@{domain}"
