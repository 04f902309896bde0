"""Dates and times as staff read them: short, and with the year whenever it is not this year's.

"Tue 17 Mar, 09:00" is enough for this year; a message scheduled for next January, a case opened
last December, or a slip typed as year 9999 must show its year, or it reads as something else.
"""

import datetime as dt
import re

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from django.utils import dateformat, timezone

THIS_YEAR = "D j M, H:i"
OTHER_YEAR = "D j M Y, H:i"
THIS_YEAR_DAY = "j M"
OTHER_YEAR_DAY = "j M Y"
ISO_DAY = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def moment(value: dt.datetime, zone: dt.tzinfo | None = None) -> str:
    """A day and a time in `zone` (the current time zone by default): "Tue 17 Mar, 09:00", or
    "Fri 31 Dec 9999, 23:59" when not this year."""
    zone = zone or timezone.get_current_timezone()
    local = value.astimezone(zone)
    shape = THIS_YEAR if local.year == timezone.now().astimezone(zone).year else OTHER_YEAR
    return dateformat.format(local, shape)


def day(value: dt.datetime | dt.date, zone: dt.tzinfo | None = None) -> str:
    """A day alone: "17 Mar", or "17 Mar 2025" when not this year."""
    zone = zone or timezone.get_current_timezone()
    local = value.astimezone(zone) if isinstance(value, dt.datetime) else value
    shape = THIS_YEAR_DAY if local.year == timezone.now().astimezone(zone).year else OTHER_YEAR_DAY
    return dateformat.format(local, shape)


def days_in_words(text: str, zone: dt.tzinfo | None = None) -> str:
    """Text with each ISO day in it ("Promise to pay €149.00 by 2026-12-10") written as days are
    everywhere else ("by 10 Dec", "by 10 Dec 2026" when not this year). Such text is stored once
    (a hold's reason) and read for months, so the year is decided when it is read."""

    def in_words(match: re.Match) -> str:
        try:
            return day(dt.date.fromisoformat(match.group()), zone)
        except ValueError:  # digits shaped like a day that is none (2026-13-45): left as written
            return match.group()

    return ISO_DAY.sub(in_words, text)


def part_of_day(value: dt.datetime, zone: dt.tzinfo | None = None) -> str:
    """Morning, afternoon or evening by the clock in `zone` (the current time zone by default): a
    greeting must fit the hour where the reader is, not a.m. or p.m. (23:27 is no afternoon)."""
    hour = value.astimezone(zone or timezone.get_current_timezone()).hour
    if hour < 12:
        return "morning"
    return "afternoon" if hour < 18 else "evening"


def day_for_reader(value: dt.date, language: str, *, form: str = "long") -> str:
    """A day as a reader of `language` (a BCP 47 tag) writes it, through Babel's CLDR data: "3 March
    2026" for en, "3. März 2026" for de, "3 mars 2026" for fr. A language Babel lacks reads English."""
    try:
        locale = Locale.parse((language or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        locale = Locale.parse("en")
    return format_date(value, format=form, locale=locale)
