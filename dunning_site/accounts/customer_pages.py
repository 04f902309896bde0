"""Rendering a customer's page in their language, and the language switcher those pages carry.

The apps that own the customer's pages (the portal, the unsubscribe link) read their own signed
links; what they share is here: the page in the language of the customer's record (accounts.languages),
and the switcher's POST, which stores the choice on the customer so the messages that follow are
written in it too, then returns to the page it was made on.
"""

import datetime as dt

from babel import Locale, UnknownLocaleError
from babel.lists import format_list
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import translation
from django.utils.cache import patch_vary_headers

from dunning_site.accounts.languages import browser_language, language_choices, page_language
from dunning_site.accounts.models import Customer
from dunning_site.accounts.services import customer_language_choose
from dunning_site.lib.dates import day_for_reader
from dunning_site.lib.money import format_money

# The switcher's form fields.
LANGUAGE_FIELD = "language"
NEXT_FIELD = "next"


def customer_page(
    request: HttpRequest,
    template: str,
    context: dict,
    *,
    language: str,
    status: int = 200,
    switch_url: str = "",
) -> HttpResponse:
    """A customer's page rendered in `language` (the tag on the customer's record, or the browser's
    for a page that knows no customer). With `switch_url`, the page offers the language switcher,
    which posts there and comes back to this page."""
    language = page_language(language)
    with translation.override(language):
        context = context | {
            "language_choices": language_choices() if switch_url else [],
            "language_switch_url": switch_url,
            "language_next": request.get_full_path(),
        }
        response = render(request, template, context, status=status)
    response["Content-Language"] = language
    return response


def refusal_page(request: HttpRequest, template: str, context: dict, *, status: int) -> HttpResponse:
    """A page that refuses a link: no customer is known (whoever holds a bad link may not be them), so
    it speaks the browser's language among the pages', and says that it varies with it."""
    response = customer_page(request, template, context, language=browser_language(request), status=status)
    patch_vary_headers(response, ["Accept-Language"])
    return response


def language_switch(request: HttpRequest, *, customer: Customer, back_to: str) -> HttpResponse:
    """The switcher's POST: the choice is stored on the customer, then back to the page it was made
    on: a path under `back_to` (the signed link's own pages), or `back_to` itself for anything else,
    so the form cannot send anybody elsewhere."""
    language = request.POST.get(LANGUAGE_FIELD, "")
    if language in dict(settings.LANGUAGES):
        customer_language_choose(customer=customer, language=language)
    next_path = request.POST.get(NEXT_FIELD, "")
    if not next_path.startswith(back_to) or "//" in next_path or "\\" in next_path:
        next_path = back_to
    return HttpResponseRedirect(next_path)


def reader_locale(customer: Customer) -> str:
    """The locale amounts and days are written in on the customer's pages: their own tag when the
    page speaks its language (de-AT: "€ 1.234,56", the Austrian way), else the page's language, so an
    English page for a pt-BR customer does not say "3 de março"."""
    language = page_language(customer.language)
    tag = (customer.language or "").replace("_", "-")
    if tag.lower().split("-")[0] != language.split("-")[0]:
        return language
    try:
        Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return language
    return tag


def customer_money(minor: int, currency: str, customer: Customer) -> str:
    """An amount as the customer reads it on their page: 1.234,56 € for de."""
    return format_money(minor, currency, reader_locale(customer))


def customer_day(day: dt.date, customer: Customer) -> str:
    """A day as the customer reads it on their page: 3. März 2026 for de."""
    return day_for_reader(day, reader_locale(customer))


def customer_list(items: list[str], customer: Customer) -> str:
    """Words joined as the customer's language joins them: "A, B und C" for de; "" for none."""
    return format_list(items, locale=reader_locale(customer).replace("-", "_")) if items else ""


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a form refused for its missing or stale token says so plainly, in the browser's
    language (it may be a customer's: no page of ours should answer with Django's debugging words)."""
    return refusal_page(request, "403_csrf.html", {}, status=403)
