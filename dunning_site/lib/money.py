"""Money as integer minor units plus an ISO 4217 code, the one representation used everywhere.

Stripe speaks minor units too, so amounts cross the billing boundary without rounding. The number
of decimals of each currency (0 for JPY, 2 for EUR, 3 for KWD) and locale-aware formatting come
from CLDR through Babel rather than a hand-kept table.
"""

from decimal import Decimal, InvalidOperation, getcontext, localcontext
from functools import cache

from babel.numbers import format_currency, get_currency_precision, list_currencies

# Where CLDR (Babel) disagrees with ISO 4217 and with Stripe about a currency's minor unit, Stripe
# is what amounts arrive in: these are two-decimal there (and three for IQD in ISO 4217).
MINOR_UNIT_OVERRIDES = {"ALL": 2, "LAK": 2, "MMK": 2, "RSD": 2, "IQD": 3}

UNKNOWN_CURRENCY = "“%(code)s” is not an ISO 4217 currency code."
TOO_MANY_DECIMALS = "%(currency)s amounts have at most %(decimals)d decimal places."
NOT_A_NUMBER = "Enter an amount as a number, like 120.50."
AMOUNT_TOO_LARGE = "That amount is too large: %(currency)s amounts go up to %(largest)s."

# Amounts are stored in PostgreSQL bigint columns.
LARGEST_MINOR_UNITS = 2**63 - 1
LARGEST_MINOR_UNITS_DIGITS = len(str(LARGEST_MINOR_UNITS))


@cache
def known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def is_known_currency(code: str) -> bool:
    return code in known_currencies()


def currency_exponent(code: str) -> int:
    if not is_known_currency(code):
        raise ValueError(UNKNOWN_CURRENCY % {"code": code})
    return MINOR_UNIT_OVERRIDES.get(code, get_currency_precision(code))


def to_minor_units(amount: Decimal | str | int, currency: str) -> int:
    """Convert a major-unit amount ("12.50" EUR) to minor units (1250), refusing lost precision and
    anything a bigint column cannot hold.

    The arithmetic is done on the digits, not in a decimal context: scaling 1e999999 there overflows,
    and a context of 28 digits would round a long amount ("1.000…01") before the decimals are checked.
    """
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError(NOT_A_NUMBER) from None
    if not value.is_finite():
        raise ValueError(NOT_A_NUMBER)
    exponent = currency_exponent(currency)
    if value.is_zero():
        return 0
    if value.adjusted() + exponent >= LARGEST_MINOR_UNITS_DIGITS:  # too long to be worth counting
        raise ValueError(_too_large(currency))
    sign, digit_tuple, value_exponent = value.as_tuple()
    digits, shift = "".join(map(str, digit_tuple)), value_exponent + exponent
    if shift >= 0:
        minor = int(digits) * 10**shift
    else:
        kept, dropped = digits[:shift], digits[shift:]
        if dropped.strip("0"):
            raise ValueError(TOO_MANY_DECIMALS % {"currency": currency, "decimals": exponent})
        minor = int(kept or "0")
    if minor > LARGEST_MINOR_UNITS:
        raise ValueError(_too_large(currency))
    return -minor if sign else minor


def _too_large(currency: str) -> str:
    return AMOUNT_TOO_LARGE % {"currency": currency, "largest": format_money(LARGEST_MINOR_UNITS, currency)}


def from_minor_units(minor: int, currency: str) -> Decimal:
    """Exact whatever the size (a string is read without the 28-digit context), e.g. 1250 EUR -> 12.50."""
    return Decimal(f"{int(minor)}E-{currency_exponent(currency)}")


def format_money(minor: int, currency: str, locale: str = "en") -> str:
    """The amount as a reader of `locale` expects it: 1.234,50 € for de, €1,234.50 for en."""
    amount = from_minor_units(minor, currency)
    # Babel rounds in the current context (28 digits); a sum of many amounts can have more.
    with localcontext(prec=max(getcontext().prec, len(amount.as_tuple().digits) + 4)):
        if currency in MINOR_UNIT_OVERRIDES:  # show the decimals CLDR would round away
            return format_currency(
                amount, currency, locale=_babel_locale(locale), currency_digits=False, decimal_quantization=False
            )
        return format_currency(amount, currency, locale=_babel_locale(locale))


def _babel_locale(language: str) -> str:
    return (language or "en").replace("-", "_")
