"""The fixed schedule the engine is measured against, on the identical book: charges on days 3, 8, 15
and 22 after the failure; emails on days 0, 7 and 14 at 09:00 UTC, each carrying the pay link and the
card-update link; a new card is charged at once. Plain Python, no engine: what a simple in-house
script would do."""

import datetime as dt
import heapq
import itertools

from bench.simulate.book import CARD_LINK, PAY_LINK, Customer, CustomerState

CHARGE_DAYS = (3, 8, 15, 22)
EMAIL_DAYS = (0, 7, 14)
EMAIL_HOUR_UTC = 9
BODY = f"Your payment failed. Pay: {PAY_LINK}x — or update your card: https://example.com{CARD_LINK}x"


def baseline_run(book: list[Customer], *, seed: int, until: dt.datetime) -> list[CustomerState]:
    return [_one(customer, seed=seed, until=until) for customer in book]


def _email_times(failed_at: dt.datetime) -> list[dt.datetime]:
    first = failed_at.replace(hour=EMAIL_HOUR_UTC, minute=0, second=0, microsecond=0)
    if first < failed_at:
        first += dt.timedelta(days=1)
    return [first + dt.timedelta(days=days) for days in EMAIL_DAYS]


def _one(customer: Customer, *, seed: int, until: dt.datetime) -> CustomerState:
    state = CustomerState(customer=customer, seed=seed)
    order = itertools.count()
    state.charge(customer.failed_at)  # Stripe's own attempt, the one that failed
    queue: list = []
    for when in (customer.failed_at + dt.timedelta(days=days) for days in CHARGE_DAYS):
        heapq.heappush(queue, (when, next(order), "charge"))
    for when in _email_times(customer.failed_at):
        heapq.heappush(queue, (when, next(order), "email"))
    while queue:
        when, _, what = heapq.heappop(queue)
        if when > until or state.paid_at:
            break
        if what == "charge" and state.charge(when) is None:
            state.paid_at = when
        elif what == "email":
            reaction = state.receive(when, channel="email", body=BODY)
            if reaction:
                heapq.heappush(queue, (reaction[1], next(order), reaction[0]))
        elif what == "new_card" and state.may_act(when):
            state.new_card_at = when
            heapq.heappush(queue, (when, next(order), "charge"))
        elif what == "pay" and state.may_act(when):
            state.paid_at = when
    return state
