"""The customer portal: no login, the signed link is the key. Pages that refuse a link show who to
ask for a new one and nothing about the customer: whoever holds a bad link may not be them (so they
speak the browser's language, not the customer's). Every other page speaks the customer's language
(Customer.language) and offers the language switcher, which keeps the signed link."""

import functools
from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from dunning_site.accounts.customer_pages import (
    customer_day,
    customer_list,
    customer_money,
    customer_page,
    language_switch,
)
from dunning_site.accounts.models import Customer
from dunning_site.collections import customer_links, holds
from dunning_site.portal import card_update
from dunning_site.portal.links import link_refused, rate_limited, sender_context


def _page(request: HttpRequest, template: str, context: dict, *, customer: Customer, token: str, status: int = 200):
    """A page of a valid link: in the customer's language, with the switcher."""
    switch_url = reverse("portal:language", args=[token])
    return customer_page(request, template, context, language=customer.language, status=status, switch_url=switch_url)


@never_cache  # the token is in the URL: no shared cache may keep the page or the redirect
@require_GET
@rate_limited
def portal_card(request: HttpRequest, token: str) -> HttpResponse:
    """The card-update link from a message: a fresh checkout session each time it is opened."""
    try:
        customer = customer_links.read_card_update_token(token)
    except customer_links.PortalLinkInvalid as error:
        return link_refused(request, error)
    try:
        url = card_update.card_update_session_url(customer=customer, token=token)
    except card_update.CardUpdateUnavailable as error:
        return _card_unavailable(request, error, customer=customer, token=token)
    return redirect(url)


def _card_unavailable(
    request: HttpRequest, error: card_update.CardUpdateUnavailable, *, customer: Customer, token: str
) -> HttpResponse:
    context = sender_context() | {"temporary": error.temporary}
    status = 503 if error.temporary else 200
    return _page(request, "portal/card_unavailable.html", context, customer=customer, token=token, status=status)


@never_cache
@require_GET
@rate_limited
def portal_card_done(request: HttpRequest, token: str) -> HttpResponse:
    """Where the billing system sends the customer back; in the sandbox, the test-card picker."""
    max_age = customer_links.CARD_UPDATE_LINK_MAX_AGE + card_update.CHECKOUT_SESSION_LIFETIME
    try:
        customer = customer_links.read_card_update_token(token, max_age=max_age)
    except customer_links.PortalLinkInvalid as error:
        return link_refused(request, error)
    try:
        card_update.card_update_possible(customer=customer)
    except card_update.CardUpdateUnavailable as error:
        # "?updated=1" is only a URL anyone can type: with no way to give a card, none was saved.
        return _card_unavailable(request, error, customer=customer, token=token)
    if request.GET.get("sandbox") and card_update.gateway_is_sandbox():
        return _sandbox_page(request, token, customer=customer)
    due = card_update.amounts_due(customer=customer)
    context = sender_context() | {
        "updated": bool(request.GET.get("updated")),
        "retry_url": _card_path(token),
        # The card is kept, but nothing is charged while the customer's dispute is open (the hold rule).
        "disputing": holds.customer_is_disputing(customer_id=customer.pk),
        # "1.234,56 € und 20,00 $": each currency's amount, joined as the customer's language joins a list.
        "amount_due": customer_list(
            [customer_money(minor, currency, customer) for currency, minor, _ in due], customer
        ),
        "due_since": customer_day(min(since for _currency, _minor, since in due), customer) if due else "",
    }
    return _page(request, "portal/card_done.html", context, customer=customer, token=token)


def _sandbox_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Outside development and demos the sandbox's URLs do not exist, whatever the method: 404."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not card_update.gateway_is_sandbox():
            raise Http404(card_update.SANDBOX_OFF)
        return view(request, *args, **kwargs)

    return wrapped


@_sandbox_only
@never_cache
@require_POST
@rate_limited
def portal_card_sandbox(request: HttpRequest, token: str) -> HttpResponse:
    """`make run` without Stripe: the customer picks a test card; retries follow as with Stripe."""
    try:
        customer = customer_links.read_card_update_token(token)
    except customer_links.PortalLinkInvalid as error:
        return link_refused(request, error)
    payment_method = request.POST.get("payment_method", "")
    if payment_method not in card_update.SANDBOX_CARDS:
        return _sandbox_page(request, token, customer=customer, error=card_update.CHOOSE_A_CARD, status=400)
    card_update.sandbox_card_change(customer=customer, payment_method=payment_method)
    return redirect(reverse("portal:card_done", args=[token]) + "?updated=1")


def _sandbox_page(
    request: HttpRequest, token: str, *, customer: Customer, error: str = "", status: int = 200
) -> HttpResponse:
    context = sender_context() | {
        "cards": card_update.SANDBOX_CARDS.items(),
        "action": reverse("portal:card_sandbox", args=[token]),
        "error": error,
    }
    return _page(request, "portal/card_sandbox.html", context, customer=customer, token=token, status=status)


@never_cache
@require_POST
@rate_limited
def portal_language(request: HttpRequest, token: str) -> HttpResponse:
    """The language switcher of the link's pages: the choice is stored on the customer (their emails
    follow it), then back to the page it was made on."""
    max_age = customer_links.CARD_UPDATE_LINK_MAX_AGE + card_update.CHECKOUT_SESSION_LIFETIME
    try:
        customer = customer_links.read_card_update_token(token, max_age=max_age)
    except customer_links.PortalLinkInvalid as error:
        return link_refused(request, error)
    # Back to a page of this link, never to the card page itself (it would open a new checkout).
    return language_switch(request, customer=customer, back_to=reverse("portal:card_done", args=[token]))


def _card_path(token: str) -> str:
    return reverse("portal:card", args=[token])
