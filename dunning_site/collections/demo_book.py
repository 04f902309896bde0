"""The plan of the demo book behind `manage.py seed_demo`: who the customers are, what they are billed and
when they pay (or do not).

`build_book` is a pure function of (seed, today) that returns plain data (`Book`, `PlannedCustomer`,
`PlannedInvoice`, `PlannedPayment`) and never touches the database, so the same seed on the same date
always plans the same book and tests can compare the database with the plan. Writing the plan and
replaying its history through the engine is collections.demo's.
"""

import dataclasses
import datetime as dt
import random
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import TypeVar

import phonenumbers
from faker import Faker

from dunning_site.accounts.models import Payment
from dunning_site.collections.defaults import GRACE_DAYS
from dunning_site.lib.money import currency_exponent

DEFAULT_SEED = 2026
CUSTOMER_COUNT = 200
PAY_PAGE = "https://billing.example.com/pay/{number}"


# ---------------------------------------------------------------------------------------------
# Who the customers are


@dataclasses.dataclass(frozen=True)
class Country:
    region: str  # ISO 3166, for phone numbers
    weight: int  # percent of customers
    zones: tuple[str, ...]
    language: str
    faker_locale: str
    currency: str


COUNTRIES = (
    Country(
        "US", 29, ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"), "en", "en_US", "USD"
    ),
    Country("GB", 12, ("Europe/London",), "en", "en_GB", "GBP"),
    Country("IE", 3, ("Europe/Dublin",), "en", "en_IE", "EUR"),
    Country("FR", 13, ("Europe/Paris",), "fr", "fr_FR", "EUR"),
    Country("BE", 3, ("Europe/Brussels",), "fr", "fr_BE", "EUR"),
    Country("DE", 12, ("Europe/Berlin",), "de", "de_DE", "EUR"),
    Country("AT", 3, ("Europe/Vienna",), "de", "de_AT", "EUR"),
    Country("ES", 8, ("Europe/Madrid",), "es", "es_ES", "EUR"),
    Country("MX", 3, ("America/Mexico_City",), "es", "es_MX", "USD"),
    Country("JP", 6, ("Asia/Tokyo",), "ja", "ja_JP", "JPY"),
    Country("KW", 3, ("Asia/Kuwait",), "en", "en_US", "KWD"),
    Country("AU", 5, ("Australia/Sydney", "Australia/Melbourne", "Australia/Brisbane"), "en", "en_AU", "USD"),
)

# North American numbers are geographic: a Denver customer gets a Denver area code.
US_AREA_CODES = {
    "America/New_York": (212, 646, 617, 404, 305),
    "America/Chicago": (312, 773, 214, 512, 612),
    "America/Denver": (303, 720, 801),
    "America/Los_Angeles": (213, 310, 415, 206, 503),
}

# Faker has no romanized Gulf names; Kuwaiti companies invoice in English under names like these.
KUWAIT_FIRST_NAMES = ("Fahad", "Abdullah", "Mohammed", "Yousef", "Khaled", "Nasser", "Sara", "Noura", "Dana", "Fatma")
KUWAIT_FAMILY_NAMES = ("Al-Mutairi", "Al-Ajmi", "Al-Sabah", "Al-Rashidi", "Al-Enezi", "Al-Shammari", "Behbehani")
KUWAIT_COMPANY_SHAPES = (
    "{family} General Trading Co. W.L.L.",
    "{family} Group Holding K.S.C.C.",
    "Gulf {trade} Solutions W.L.L.",
    "Kuwait {trade} Company K.S.C.",
)
KUWAIT_TRADES = ("Logistics", "Medical Supplies", "Engineering", "Digital", "Hospitality", "Retail")

SEGMENTS = (("self-serve", 55), ("smb", 35), ("enterprise", 10))
PAYMENT_TERMS = {"self-serve": (14,), "smb": (14, 15, 30), "enterprise": (30, 30, 21)}
# List prices of the self-serve plans, per currency, in major units.
SELF_SERVE_PLANS = {
    "USD": (29, 49, 99, 149),
    "EUR": (29, 49, 99, 149),
    "GBP": (25, 39, 79, 119),
    "JPY": (3_900, 6_900, 14_800, 21_800),
    "KWD": (9, 15, 30, 45),
}
# Contract prices are set in USD and converted at a rough rate, then rounded like a price list would be.
USD_RATES = {
    "USD": Decimal(1),
    "EUR": Decimal("0.92"),
    "GBP": Decimal("0.79"),
    "JPY": Decimal(150),
    "KWD": Decimal("0.307"),
}
CONTRACT_USD = {"smb": (300, 3_000), "enterprise": (4_000, 30_000)}

PUNCTUAL, LATE, INSTALMENTS, OVERDUE = "punctual", "late", "instalments", "overdue"
STORY_SHARES = ((OVERDUE, 22), (LATE, 10), (INSTALMENTS, 4))  # percent; the rest pay on time
# Days since the oldest unpaid due date, so that every rung of the Default ladder is occupied; the
# other overdue customers are spread at random over 0–45 days.
FORCED_OVERDUE_DAYS = (2, 3, 3, 3, 5, 10, 10, 10, 14, 20, 21, 23, 26, 31, 33, 38, 44)
MAX_OVERDUE_DAYS = 45
# How many days after the due date a late payer pays: 3 resolves the case before the first reminder.
LATE_PAYMENT_DAYS = (3, 4, 5, 6, 8, 9, 12, 13, 16)
APPROVAL_NOTES = ("", "No reply to either reminder.", "Checked the account: no dispute on file.", "OK to send.")


# ---------------------------------------------------------------------------------------------
# The plan: plain data, no database


@dataclasses.dataclass(frozen=True)
class PlannedPayment:
    at: dt.datetime
    amount: int
    method: str


@dataclasses.dataclass(frozen=True)
class PlannedInvoice:
    number: str
    customer_email: str
    currency: str
    total: int
    issued_on: dt.date
    due_on: dt.date
    payments: tuple[PlannedPayment, ...]
    # Unpaid past its grace at some point: its payments must happen during the replay, on their day,
    # so the engine sees the invoice overdue first.
    replayed: bool

    @property
    def hosted_payment_url(self) -> str:
        return PAY_PAGE.format(number=self.number)


@dataclasses.dataclass(frozen=True)
class PlannedCustomer:
    name: str
    company: str
    email: str
    phone: str
    time_zone: str
    language: str
    segment: str
    currency: str
    signed_up_at: dt.datetime
    sms_consent: bool
    # How long after the engine asks for approval the manager says yes; None: the request waits.
    final_notice_approval_delay: dt.timedelta | None
    suspension_approval_delay: dt.timedelta | None
    approval_note: str


@dataclasses.dataclass(frozen=True)
class Book:
    seed: int
    today: dt.date
    customers: tuple[PlannedCustomer, ...]
    invoices: tuple[PlannedInvoice, ...]

    @property
    def replay_start(self) -> dt.date:
        return min((invoice.due_on for invoice in self.invoices if invoice.replayed), default=self.today)

    def digest(self) -> list[tuple[str, str, int, str, dt.date]]:
        return sorted(
            (invoice.number, invoice.customer_email, invoice.total, invoice.currency, invoice.due_on)
            for invoice in self.invoices
        )


def build_book(*, seed: int, today: dt.date, customer_count: int = CUSTOMER_COUNT) -> Book:
    rng = random.Random(seed)
    fakers = _seeded_fakers(seed)
    countries = _by_quota(rng, [(country, country.weight) for country in COUNTRIES], customer_count)
    segments = _by_quota(rng, list(SEGMENTS), customer_count)
    stories = _stories(rng, customer_count)
    overdue_count = stories.count(OVERDUE)
    ages = sorted(
        [*FORCED_OVERDUE_DAYS[:overdue_count]]
        + [rng.randint(0, MAX_OVERDUE_DAYS) for _ in range(overdue_count - len(FORCED_OVERDUE_DAYS))]
    )
    # Every other case, by age, has a manager who approves the final notice: about half at every stage.
    overdue = [(age, index % 2 == 0) for index, age in enumerate(ages)]
    rng.shuffle(overdue)
    emails: set[str] = set()
    customers, schedules = [], []
    for country, segment, story in zip(countries, segments, stories, strict=True):
        overdue_days, approves = overdue.pop() if story == OVERDUE else (None, False)
        customer, invoices = _plan_customer(
            rng, fakers[country.faker_locale], country, segment, story, overdue_days, approves, today, emails
        )
        customers.append(customer)
        schedules += invoices
    customers.sort(key=lambda customer: (customer.signed_up_at, customer.email))
    return Book(seed=seed, today=today, customers=tuple(customers), invoices=_numbered(rng, schedules, today))


def _seeded_fakers(seed: int) -> dict[str, Faker]:
    """One generator per locale, each seeded apart so adding a country does not reshuffle the others."""
    fakers = {}
    for locale in {country.faker_locale for country in COUNTRIES}:
        fakers[locale] = _faker(locale)
        fakers[locale].seed_instance(f"{seed}:{locale}")  # str seeds hash the same in every process
    return fakers


@cache
def _faker(locale: str) -> Faker:
    return Faker(locale)


T = TypeVar("T")


def _by_quota(rng: random.Random, weighted: list[tuple[T, int]], count: int) -> list[T]:
    """Exactly the share of each choice (so a small book still has its yen and dinar customers), shuffled."""
    total = sum(weight for _, weight in weighted)
    chosen = [choice for choice, weight in weighted for _ in range(round(count * weight / total))]
    chosen = chosen[:count] + rng.choices([choice for choice, _ in weighted], k=max(0, count - len(chosen)))
    rng.shuffle(chosen)
    return chosen


def _stories(rng: random.Random, count: int) -> list[str]:
    stories = [story for story, share in STORY_SHARES for _ in range(round(count * share / 100))]
    stories += [PUNCTUAL] * (count - len(stories))
    rng.shuffle(stories)
    return stories


@dataclasses.dataclass
class _Schedule:
    """An invoice before it has a number (numbers follow issue dates across the whole book)."""

    customer_email: str
    currency: str
    total: int
    issued_on: dt.date
    due_on: dt.date
    payments: list[PlannedPayment]


def _plan_customer(
    rng: random.Random,
    fake: Faker,
    country: Country,
    segment: str,
    story: str,
    overdue_days: int | None,
    approves: bool,
    today: dt.date,
    emails: set[str],
) -> tuple[PlannedCustomer, list[_Schedule]]:
    time_zone = rng.choice(country.zones)
    name, first, last = _person(rng, fake, country)
    company = _company(rng, fake, country, last)
    if segment == "self-serve" and rng.random() < 0.4:
        company = ""  # a freelancer paying with a personal card
    email = _email(rng, fake, country, company, first, last, emails)
    phone = _phone(rng, country, time_zone) if rng.random() < 0.85 else ""

    terms = rng.choice(PAYMENT_TERMS[segment])
    months = rng.choices((2, 3, 4, 5, 6), weights=(5, 10, 15, 25, 45))[0]
    if overdue_days is not None:
        # Bill on the day of the month that makes one invoice fall due exactly `overdue_days` ago.
        billing_day = (today - dt.timedelta(days=overdue_days + terms)).day
        months = max(months, 4)
    else:
        billing_day = rng.randint(1, 28)
    if story == LATE:
        months = max(months, 4)
    issue_dates = _monthly(billing_day, today, months)
    price = _monthly_price(rng, segment, country.currency)
    invoices = [
        _Schedule(
            customer_email=email,
            currency=country.currency,
            total=_monthly_total(rng, segment, price, country.currency),
            issued_on=issued,
            due_on=issued + dt.timedelta(days=terms),
            payments=[],
        )
        for issued in issue_dates
    ]
    _plan_payments(rng, invoices, segment, story, overdue_days, today)

    signed_up_on = issue_dates[0] - dt.timedelta(days=rng.randint(0, 20))
    customer = PlannedCustomer(
        name=name,
        company=company,
        email=email,
        phone=phone,
        time_zone=time_zone,
        language=country.language,
        segment=segment,
        currency=country.currency,
        signed_up_at=_at(rng, signed_up_on),
        sms_consent=bool(phone) and rng.random() < 0.4,
        final_notice_approval_delay=_approval_delay(rng) if approves else None,
        suspension_approval_delay=_approval_delay(rng) if approves and rng.random() < 0.35 else None,
        approval_note=rng.choice(APPROVAL_NOTES),
    )
    return customer, invoices


def _person(rng: random.Random, fake: Faker, country: Country) -> tuple[str, str, str]:
    """The display name, and ASCII first and last names for the email address."""
    if country.region == "KW":
        first, last = rng.choice(KUWAIT_FIRST_NAMES), rng.choice(KUWAIT_FAMILY_NAMES)
        return f"{first} {last}", first, last
    if country.region == "JP":
        # (kanji, kana, romaji) pairs, so the address spells the same person as the name.
        (last, _, last_romaji), (first, _, first_romaji) = fake.last_name_pair(), fake.first_name_pair()
        return f"{last} {first}", first_romaji, last_romaji
    first, last = fake.first_name(), fake.last_name()
    return f"{first} {last}", first, last


def _company(rng: random.Random, fake: Faker, country: Country, family: str) -> str:
    if country.region == "KW":
        return rng.choice(KUWAIT_COMPANY_SHAPES).format(family=family, trade=rng.choice(KUWAIT_TRADES))
    return fake.company()


# Legal forms and joining words that nobody puts in a domain name.
_NOT_IN_DOMAINS = {"and", "und", "et", "co", "sa", "sas", "sarl", "srl", "sl", "ne", "coop", "com", "gbr", "ohg"}
_NOT_IN_DOMAINS |= {"gmbh", "ag", "kg", "kgaa", "ltd", "llc", "inc", "plc", "group", "wll", "ksc", "kscc"}
_NOT_IN_DOMAINS |= {"de", "la", "del", "los", "las", "von", "der"}


def _email(
    rng: random.Random, fake: Faker, country: Country, company: str, first: str, last: str, taken: set[str]
) -> str:
    """A plausible billing address on a reserved domain (.example, RFC 2606): the demo never reaches a real inbox."""
    person = f"{_slug(first)}.{_slug(last)}".strip(".") or "billing"
    if not company:
        local, domain = person, rng.choice(("mail", "post", "inbox"))
    else:
        words = [word for word in _slug(company).split("-") if len(word) > 1 and word not in _NOT_IN_DOMAINS]
        domain = "-".join(words[:2]) or _slug(fake.domain_word())
        if country.region == "JP":
            domain = _slug(fake.domain_word())  # company names are in kanji; domains are romanized
        local = rng.choice((person, "billing", "accounts", "finance", "ap"))
    email, suffix = f"{local}@{domain}.example", 2
    while email in taken:
        email, suffix = f"{local}{suffix}@{domain}.example", suffix + 1
    taken.add(email)
    return email


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def _phone(rng: random.Random, country: Country, time_zone: str) -> str:
    """A valid mobile number of the customer's country, in E.164: the library's example with other digits."""
    if country.region == "US":
        candidates = (
            f"+1{rng.choice(US_AREA_CODES[time_zone])}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            for _ in range(50)
        )
    else:
        example = phonenumbers.example_number_for_type(country.region, phonenumbers.PhoneNumberType.MOBILE)
        national = str(example.national_number)
        candidates = (
            f"+{example.country_code}{national[:3]}{''.join(str(rng.randint(0, 9)) for _ in national[3:])}"
            for _ in range(50)
        )
    for candidate in candidates:
        number = phonenumbers.parse(candidate)
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return ""


def _monthly(billing_day: int, today: dt.date, months: int) -> list[dt.date]:
    """The last `months` issue dates on `billing_day` (or the month's last day), oldest first."""
    dates = []
    year, month = today.year, today.month
    while len(dates) < months:
        last_day = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
        issued = dt.date(year, month, min(billing_day, last_day))
        if issued <= today:
            dates.append(issued)
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return dates[::-1]


def _minor(major: Decimal, currency: str) -> int:
    return int((major * Decimal(10) ** currency_exponent(currency)).to_integral_value(ROUND_HALF_UP))


def _monthly_price(rng: random.Random, segment: str, currency: str) -> Decimal:
    if segment == "self-serve":
        return Decimal(rng.choice(SELF_SERVE_PLANS[currency]))
    low, high = CONTRACT_USD[segment]
    local = Decimal(rng.randint(low, high)) * USD_RATES[currency]
    step = Decimal(1_000) if currency == "JPY" else Decimal(10)
    return max(step, (local / step).to_integral_value(ROUND_HALF_UP) * step)


def _monthly_total(rng: random.Random, segment: str, price: Decimal, currency: str) -> int:
    """The plan, plus the odd extra seat (self-serve) or metered usage (contracts)."""
    if segment == "self-serve":
        seats = rng.choices((1, 2, 3), weights=(80, 15, 5))[0]
        return _minor(price * seats, currency)
    usage = Decimal(rng.randint(-300, 2_500)) / 10_000
    return _minor(price * (1 + usage), currency)


def _at(rng: random.Random, day: dt.date) -> dt.datetime:
    """Some moment of the working day (UTC), before the replayed tick of that day."""
    return dt.datetime.combine(day, dt.time(rng.randint(7, 20), rng.randint(0, 59)), tzinfo=dt.UTC)


def _approval_delay(rng: random.Random) -> dt.timedelta:
    # Requests appear at the nightly tick; a manager answers some morning or afternoon after.
    return dt.timedelta(days=rng.choice((0, 1, 1, 2, 3)), hours=rng.randint(9, 17), minutes=rng.randint(0, 59))


def _method(rng: random.Random, segment: str) -> str:
    if segment == "self-serve":
        return Payment.Method.CARD
    if segment == "enterprise":
        return Payment.Method.BANK_TRANSFER
    return rng.choice((Payment.Method.CARD, Payment.Method.CARD, Payment.Method.BANK_TRANSFER))


def _plan_payments(
    rng: random.Random, invoices: list[_Schedule], segment: str, story: str, overdue_days: int | None, today: dt.date
) -> None:
    """Who pays what when. Only payments before today are planned: today belongs to the live product."""
    first_unpaid = today - dt.timedelta(days=overdue_days) if overdue_days is not None else None
    split = story == INSTALMENTS  # one invoice of theirs is paid in two parts, both on time
    late = None
    if story == LATE:
        candidates = [i for i in invoices if today - dt.timedelta(days=40) <= i.due_on <= today - dt.timedelta(days=5)]
        late = rng.choice(candidates) if candidates else None
    for invoice in invoices:
        method = _method(rng, segment)
        if first_unpaid is not None and invoice.due_on >= first_unpaid:
            days_late = (today - invoice.due_on).days
            if invoice.due_on == first_unpaid and days_late >= 8 and rng.random() < 0.3:
                # Paid part after the reminders started, and went quiet again.
                fraction = Decimal(rng.randint(25, 60)) / 100
                day = invoice.due_on + dt.timedelta(days=rng.randint(4, days_late - 2))
                invoice.payments.append(PlannedPayment(_at(rng, day), _part(invoice, fraction), method))
            continue
        if invoice is late:
            days = [days for days in LATE_PAYMENT_DAYS if invoice.due_on + dt.timedelta(days=days) < today]
            day = invoice.due_on + dt.timedelta(days=rng.choice(days))
            invoice.payments.append(PlannedPayment(_at(rng, day), invoice.total, method))
            continue
        if segment == "self-serve":
            paid_on = invoice.due_on  # the card on file is charged on the due date
        elif segment == "enterprise":
            paid_on = invoice.due_on - dt.timedelta(days=rng.randint(-1, 5))  # a day late is within the grace
        else:
            paid_on = invoice.due_on - dt.timedelta(days=rng.randint(0, 10))
        paid_on = max(paid_on, invoice.issued_on)
        if paid_on >= today:
            continue  # falls due about now: unpaid, and still within its grace
        if split:
            split = False
            first_part = _part(invoice, Decimal("0.5"))
            early = max(invoice.issued_on, paid_on - dt.timedelta(days=7))
            invoice.payments.append(PlannedPayment(_at(rng, early), first_part, method))
            invoice.payments.append(PlannedPayment(_at(rng, paid_on), invoice.total - first_part, method))
            continue
        invoice.payments.append(PlannedPayment(_at(rng, paid_on), invoice.total, method))


def _part(invoice: _Schedule, fraction: Decimal) -> int:
    """A round share of the invoice, as people pay part of a bill: 40.00 rather than 41.37."""
    unit = 10 ** currency_exponent(invoice.currency)
    step = unit * 10 if invoice.total >= unit * 100 else unit
    amount = int(invoice.total * fraction) // step * step
    return amount if 0 < amount < invoice.total else max(1, invoice.total // 2)


def _numbered(rng: random.Random, schedules: list[_Schedule], today: dt.date) -> tuple[PlannedInvoice, ...]:
    """Number invoices in issue order, per year; the oldest year's counter is already well under way."""
    schedules.sort(key=lambda schedule: (schedule.issued_on, schedule.customer_email))
    first_year = schedules[0].issued_on.year if schedules else today.year
    counters = {first_year: rng.randint(3_000, 8_000)} if first_year < today.year else {}
    planned = []
    for schedule in schedules:
        year = schedule.issued_on.year
        counters[year] = counters.get(year, 0) + 1
        fully_paid_on = (
            max(payment.at.date() for payment in schedule.payments)
            if sum(payment.amount for payment in schedule.payments) == schedule.total
            else None
        )
        # The first tick to see the invoice past its grace is that day's; paid before it, no case opens.
        opens_a_case_on = schedule.due_on + dt.timedelta(days=GRACE_DAYS + 1)
        planned.append(
            PlannedInvoice(
                number=f"INV-{year}-{counters[year]:06d}",
                customer_email=schedule.customer_email,
                currency=schedule.currency,
                total=schedule.total,
                issued_on=schedule.issued_on,
                due_on=schedule.due_on,
                payments=tuple(schedule.payments),
                replayed=opens_a_case_on < today and (fully_paid_on is None or fully_paid_on > opens_a_case_on),
            )
        )
    return tuple(planned)
