"""The simulated book: who the customers are, where they truly live, and how each one behaves.

Pure Python, no Django: the engine run and the fixed-schedule baseline both play the same book
through the same `CustomerState`, so the only difference between their results is the engine.
Every random choice a customer makes is drawn from a generator seeded by (seed, customer, what,
ordinal): the k-th message a customer receives rolls the same dice in both runs.
"""

import calendar
import dataclasses
import datetime as dt
import random
import zoneinfo

# Start on Monday 23 March 2026: Europe moves its clocks on the 29th, Australia and New Zealand on
# 5 April, so both hemispheres change time inside the run (the US changed on 8 March).
START = dt.datetime(2026, 3, 23, tzinfo=dt.UTC)
# Subscriptions renew on the day of the month they started: the failures come over ten days, so a fixed
# schedule's days fall on paydays by chance, not by design.
FAILURES_SPREAD = dt.timedelta(days=10)

# The true zone, the address Stripe holds (country, state), the currency and the locale.
PLACES = [
    ("America/New_York", "US", "NY", "usd", "en"),
    ("America/Los_Angeles", "US", "CA", "usd", "en"),
    ("Europe/Berlin", "DE", "", "eur", "de"),
    ("Europe/London", "GB", "", "gbp", "en"),
    ("Australia/Sydney", "AU", "NSW", "aud", "en"),
    ("Pacific/Auckland", "NZ", "", "nzd", "en"),
    ("America/Sao_Paulo", "BR", "SP", "brl", "pt-BR"),
    ("Asia/Tokyo", "JP", "", "jpy", "ja"),
]
ZERO_DECIMAL = {"jpy"}
# Share of customers whose business put their zone in metadata.time_zone.
EXPLICIT_ZONE_SHARE = 0.3

# Behaviour → share of the book. See CustomerState for what each one does.
# Insufficient funds is the commonest reason a renewal fails, hence the payday share.
BEHAVIOURS = {
    "payday": 0.32,
    "transient": 0.10,
    "expired_card": 0.10,
    "stolen_card": 0.08,  # half stolen, half lost
    "authentication": 0.08,
    "disputer": 0.06,
    "silent": 0.08,
    "night_churner": 0.12,
    "reminded": 0.06,
}
FIRST_DECLINE = {
    "payday": {"decline_code": "insufficient_funds"},
    "transient": {"decline_code": "processing_error", "advice_code": "try_again_later"},
    "expired_card": {"decline_code": "expired_card", "advice_code": "confirm_card_data"},
    "stolen_card": {"decline_code": "stolen_card", "advice_code": "do_not_try_again"},
    "lost_card": {"decline_code": "lost_card", "advice_code": "do_not_try_again"},
    "authentication": {"decline_code": "authentication_required", "code": "authentication_required"},
    "disputer": {"decline_code": "do_not_honor"},
    "silent": {"decline_code": "generic_decline"},
    "night_churner": {"decline_code": "insufficient_funds"},
    "reminded": {"decline_code": "insufficient_funds"},
}
# Chance that one message carrying the link that would fix it makes the customer act.
ACT_ON_LINK = {
    "expired_card": 0.55,
    "stolen_card": 0.4,
    "authentication": 0.55,
    "night_churner": 0.45,
    "reminded": 0.0,  # pays on their second message, whatever it is
    "payday": 0.3,  # pays through the link when the money is there
    "transient": 0.2,
}
FUNDS_DAYS = 2  # how long a payday's money lasts: those who run short live from one pay to the next
CONTACT_HOURS = (8, 20)  # local, [start, end)

CARD_LINK = "/portal/card/"
PAY_LINK = "https://invoice.stripe.com/i/"


@dataclasses.dataclass(frozen=True)
class Customer:
    index: int
    stripe_id: str
    email: str
    zone: str
    country: str
    state: str
    currency: str
    locale: str
    explicit_zone: bool
    amount: int
    behaviour: str
    failed_at: dt.datetime
    payday: str = ""  # "1st", "15th", "last": the day their pay arrives (moved before a weekend)
    transient_failures: int = 0  # how many charges, the first failure included, end in processing_error
    dispute_after: dt.timedelta | None = None
    decline: tuple[tuple[str, str], ...] = ()

    @property
    def invoice_id(self) -> str:
        return f"in_sim_{self.index}"

    @property
    def disputes_at(self) -> dt.datetime | None:
        return self.failed_at + self.dispute_after if self.dispute_after else None

    def first_decline(self) -> dict:
        return dict(self.decline)

    def stripe_customer(self) -> dict:
        """The fields a real business's Stripe customer carries (the rest comes from Stripe's example)."""
        return {
            "id": self.stripe_id,
            "email": self.email,
            "name": f"Customer {self.index}",
            "address": {
                "country": self.country,
                "state": self.state or None,
                "city": None,
                "line1": f"{self.index} Main Street",
                "line2": None,
                "postal_code": None,
            },
            "preferred_locales": [self.locale],
            "metadata": {"time_zone": self.zone} if self.explicit_zone else {},
            "invoice_settings": {"default_payment_method": f"pm_sim_old_{self.index}"},
        }


def dice(seed: int, customer: int, what: str, ordinal: int = 0) -> random.Random:
    return random.Random(f"{seed}:{customer}:{what}:{ordinal}")


def build_book(*, customers: int, seed: int) -> list[Customer]:
    book = []
    names, weights = list(BEHAVIOURS), list(BEHAVIOURS.values())
    for index in range(customers):
        rng = dice(seed, index, "book")
        zone, country, state, currency, locale = rng.choice(PLACES)
        behaviour = rng.choices(names, weights)[0]
        decline = FIRST_DECLINE[behaviour]
        if behaviour == "stolen_card" and rng.random() < 0.5:
            decline = FIRST_DECLINE["lost_card"]
        amount = rng.randrange(1_000, 20_000) if currency in ZERO_DECIMAL else rng.randrange(900, 19_900)
        book.append(
            Customer(
                index=index,
                stripe_id=f"cus_sim_{index}",
                email=f"c{index}@sim.example",
                zone=zone,
                country=country,
                state=state,
                currency=currency,
                locale=locale,
                explicit_zone=rng.random() < EXPLICIT_ZONE_SHARE,
                amount=amount,
                behaviour=behaviour,
                failed_at=START + dt.timedelta(minutes=rng.randrange(int(FAILURES_SPREAD.total_seconds() // 60))),
                payday=rng.choice(["1st", "15th", "last"]) if behaviour == "payday" else "",
                transient_failures=rng.randint(2, 4) if behaviour == "transient" else 0,
                dispute_after=dt.timedelta(hours=rng.randint(2 * 24, 6 * 24)) if behaviour == "disputer" else None,
                decline=tuple(decline.items()),
            )
        )
    return book


def local(moment: dt.datetime, zone: str) -> dt.datetime:
    return moment.astimezone(zoneinfo.ZoneInfo(zone))


def in_contact_hours(moment: dt.datetime, zone: str) -> bool:
    hour = local(moment, zone).hour
    return CONTACT_HOURS[0] <= hour < CONTACT_HOURS[1]


def payday_in(kind: str, year: int, month: int) -> dt.date:
    """The day pay arrives in that month: a weekend's pay comes on the Friday before."""
    if kind == "1st":
        day = dt.date(year, month, 1)
    elif kind == "15th":
        day = dt.date(year, month, 15)
    else:
        day = dt.date(year, month, calendar.monthrange(year, month)[1])
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day


def has_funds(customer: Customer, moment: dt.datetime) -> bool:
    """From 06:00 on payday, for FUNDS_DAYS days, in the customer's own calendar."""
    here = local(moment, customer.zone)
    for shift in (-1, 0, 1):  # a payday of next month's 1st may fall on this month's last Friday
        month_index = here.year * 12 + here.month - 1 + shift
        day = payday_in(customer.payday, month_index // 12, month_index % 12 + 1)
        opens = dt.datetime.combine(day, dt.time(6), tzinfo=here.tzinfo)
        if opens <= here < opens + dt.timedelta(days=FUNDS_DAYS):
            return True
    return False


@dataclasses.dataclass
class CustomerState:
    """What one customer has done so far in one run (the engine's or the baseline's)."""

    customer: Customer
    seed: int
    charges: int = 0  # charge attempts on an open invoice, the first failure included
    messages: int = 0
    new_card_at: dt.datetime | None = None
    paid_at: dt.datetime | None = None
    churned: bool = False
    contacts: list[tuple[dt.datetime, str]] = dataclasses.field(default_factory=list)  # (when, channel)
    charge_times: list[dt.datetime] = dataclasses.field(default_factory=list)
    stale_charges: int = 0  # charges after the invoice was paid (Stripe refuses them)
    card_link_messages: int = 0

    def charge(self, moment: dt.datetime) -> dict | None:
        """The decline of a charge at `moment`, or None when it goes through."""
        customer = self.customer
        self.charges += 1
        self.charge_times.append(moment)
        behaviour = customer.behaviour
        disputed = customer.disputes_at and moment >= customer.disputes_at
        if disputed:
            return {"decline_code": "do_not_honor"}
        if behaviour in ("expired_card", "stolen_card"):
            return None if self.new_card_at else customer.first_decline()
        if behaviour == "payday":
            return None if has_funds(customer, moment) else customer.first_decline()
        if behaviour == "transient":
            return None if self.charges > customer.transient_failures else customer.first_decline()
        if behaviour == "authentication":
            return customer.first_decline()  # off-session charges keep needing the bank's confirmation
        return customer.first_decline()  # disputer, silent, night churner, reminded: the card does not pay

    def receive(self, moment: dt.datetime, *, channel: str, body: str) -> tuple[str, dt.datetime] | None:
        """A message arrives: what the customer does about it, and when (or None)."""
        customer = self.customer
        self.contacts.append((moment, channel))
        self.messages += 1
        if customer.behaviour == "night_churner" and not in_contact_hours(moment, customer.zone):
            self.churned = True
        if self.paid_at or self.churned or customer.behaviour in ("silent", "disputer"):
            return None
        has_card_link = CARD_LINK in body
        has_pay_link = PAY_LINK in body
        rng = dice(self.seed, customer.index, "message", self.messages)
        roll, when = rng.random(), self._reading_time(moment, rng)
        behaviour = customer.behaviour
        if behaviour in ("expired_card", "stolen_card"):
            if has_card_link and not self.new_card_at and roll < ACT_ON_LINK[behaviour]:
                return ("new_card", when)
            return None
        if behaviour == "reminded":
            return ("pay", when) if self.messages >= 2 and has_pay_link else None
        if behaviour == "payday" and not has_funds(customer, when):
            return None
        if has_pay_link and roll < ACT_ON_LINK[behaviour]:
            return ("pay", when)
        return None

    def _reading_time(self, moment: dt.datetime, rng: random.Random) -> dt.datetime:
        """A few hours later, and not in the middle of their night."""
        when = moment + dt.timedelta(minutes=rng.randrange(30, 8 * 60))
        here = local(when, self.customer.zone)
        if here.hour >= 23 or here.hour < 7:
            morning = (here + dt.timedelta(days=1) if here.hour >= 23 else here).replace(hour=7, minute=30)
            when = morning.astimezone(dt.UTC) + dt.timedelta(minutes=rng.randrange(0, 120))
        return when

    def may_act(self, moment: dt.datetime) -> bool:
        """A planned action still happens (not after paying, churning, or disputing)."""
        disputed = self.customer.disputes_at and moment >= self.customer.disputes_at
        return not (self.paid_at or self.churned or disputed)
