"""The language a customer reads: their pages, the branded part of their emails.

A customer's record holds a BCP 47 tag (Customer.language: de, de-AT, pt-BR), learned from the billing
system, set by staff, or chosen by the customer on one of their pages. The pages speak the languages
of settings.LANGUAGES; a tag they do not speak reads English (pt-BR), a regional one its language
(de-AT reads German). Staff pages never switch: nothing here runs for them, and no middleware reads a
browser's Accept-Language. Only a page that refuses a link, where no customer is known (the holder
of a bad link may not be them), follows the browser's languages.

A choice made on a page is stored on the customer (language_source "customer"), so the messages that
follow are written in it too: the billing system's preferred locales never replace it, staff may.
"""

from django.conf import global_settings, settings
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import check_for_language, get_language_info
from django.utils.translation import get_supported_language_variant as page_language_variant
from django.utils.translation.trans_real import LANG_INFO

CHOSEN_BY_CUSTOMER = "customer"  # Customer.language_source of a language chosen on the customer's page


def known_language_variant(code: str) -> str:
    """Django's get_supported_language_variant over every language Django knows, not only the pages'
    (staff write message templates in any of them): de-DE → de, pt-BR → pt-br, xx → LookupError."""
    code = code.lower()
    known = [language.lower() for language, _ in global_settings.LANGUAGES]
    possible = [code, *LANG_INFO.get(code, {}).get("fallback", [])]
    cut = None
    while (cut := code.rfind("-", 0, cut)) > -1:
        possible.append(code[:cut])
    for candidate in possible:
        if candidate in known and check_for_language(candidate):
            return candidate
    generic = possible[-1]
    for language in known:
        if language.startswith(generic + "-"):
            return language
    raise LookupError(code)


def page_language(language: str) -> str:
    """The language of settings.LANGUAGES a page is written in for this BCP 47 tag: English when the
    pages do not speak it."""
    try:
        return page_language_variant((language or "").replace("_", "-").lower())
    except LookupError:
        return page_language_variant(settings.LANGUAGE_CODE)


def browser_language(request: HttpRequest) -> str:
    """For a page that knows no customer (a refused link): the browser's preferred language among the
    pages', else English."""
    return page_language(translation.get_language_from_request(request))


def language_choices() -> list[tuple[str, str]]:
    """The switcher's options, each in its own language (Deutsch, Français): a reader who cannot read
    the page must still find theirs."""
    return [(code, get_language_info(code)["name_local"]) for code, _ in settings.LANGUAGES]
