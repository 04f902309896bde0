"""Validators shared by models and forms; messages are constants the tests reuse."""

import zoneinfo
from functools import cache

import phonenumbers
from django.core.exceptions import ValidationError

from dunning_site.lib.money import UNKNOWN_CURRENCY, is_known_currency

UNKNOWN_TIME_ZONE = "“%(value)s” is not an IANA time zone such as Europe/Paris."
INVALID_PHONE = "“%(value)s” is not a valid phone number in international format, like +33612345678."
PHONE_NOT_E164 = "Write the phone number in E.164 form: %(suggestion)s."


@cache
def _time_zones() -> frozenset[str]:
    # "localtime" is whatever zone the server runs in, "Factory" a placeholder that names no place:
    # neither tells where a customer lives.
    return frozenset(zoneinfo.available_timezones()) - NOT_PLACES


NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})


def validate_time_zone(value: str) -> None:
    if value not in _time_zones():
        raise ValidationError(UNKNOWN_TIME_ZONE, code="time_zone", params={"value": value})


def validate_currency(value: str) -> None:
    if not is_known_currency(value):
        raise ValidationError(UNKNOWN_CURRENCY, code="currency", params={"code": value})


def validate_e164_phone(value: str) -> None:
    """The stored form: a valid number written exactly in E.164 (forms normalize before this)."""
    e164 = phone_to_e164(value)
    if e164 != value:
        raise ValidationError(PHONE_NOT_E164, code="phone_format", params={"suggestion": e164})


def phone_to_e164(value: str) -> str:
    """A phone number however it is typed (+33 6 12 34 56 78) in E.164, or "" for a blank one.
    The one place numbers are read: the admin's form, imports and billing-system sync."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValidationError(INVALID_PHONE, code="phone", params={"value": value}) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(INVALID_PHONE, code="phone", params={"value": value})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_phone(value: str) -> str:
    """Like phone_to_e164, but "" for a number that cannot be read (for data we cannot send back)."""
    try:
        return phone_to_e164(value)
    except ValidationError:
        return ""
