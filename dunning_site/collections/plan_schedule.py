"""A payment plan's arithmetic, with no database: the schedule of a plan's terms, and what is wrong with
terms against a policy's self-serve limits.

Amounts are integer minor units of the currency (0 decimals for JPY, 3 for KWD), so a schedule adds
up to the total plus the fee exactly, in every currency: the total is divided by the count, and the
remainder's minor units go one each to the first instalments (the customer pays the odd cents early,
and the last instalment is never the larger one).

The down payment, when there is one, is due on the first date; the instalments follow, one interval
apart, from one interval after it. Without a down payment the first instalment is due on the first
date. Monthly dates are computed from the first date (first date + k months), not from each other, so
a plan starting on 31 January is due on 28 (or 29) February and 31 March, not 28 March.
"""

import dataclasses
import datetime as dt
from typing import Protocol

from dateutil.relativedelta import relativedelta

from dunning_site.lib.money import currency_exponent, format_money

WEEKLY = "weekly"
FORTNIGHTLY = "fortnightly"
MONTHLY = "monthly"
INTERVALS = (WEEKLY, FORTNIGHTLY, MONTHLY)

UNKNOWN_INTERVAL = "“%(interval)s” is not an interval: weekly, fortnightly or monthly."
NOTHING_TO_PLAN = "A plan needs a total above zero."
NO_INSTALMENTS = "A plan needs at least one instalment."
NEGATIVE_AMOUNT = "The down payment and the fee cannot be negative."
DOWN_PAYMENT_TOO_LARGE = "The down payment must leave at least one minor unit for each instalment."

# plan_problems' messages, by field (the case page and the portal show them next to the field).
TOO_MANY_INSTALMENTS = "At most %(limit)s instalments without a manager's approval."
INSTALMENT_TOO_SMALL = "Each instalment must be at least %(minimum)s without a manager's approval (here: %(smallest)s)."
PLAN_TOO_LONG = "The last instalment must be due within %(days)s days (by %(latest)s) without a manager's approval."
DOWN_PAYMENT_TOO_SMALL = "The down payment must be at least %(percent)s%% of the total (%(minimum)s)."
PLAN_TOO_LARGE = "Plans above %(limit)s need a manager's approval."
FIRST_DATE_IN_PAST = "The first payment must be due today or later."


@dataclasses.dataclass(frozen=True)
class Payment:
    """One payment of a schedule: the down payment (number 0) or an instalment (1…count)."""

    number: int
    due_on: dt.date
    amount: int


def due_date(first_date: dt.date, interval: str, k: int) -> dt.date:
    """The k-th date (k = 0 is the first date) of a schedule."""
    if interval == WEEKLY:
        return first_date + dt.timedelta(weeks=k)
    if interval == FORTNIGHTLY:
        return first_date + dt.timedelta(weeks=2 * k)
    if interval == MONTHLY:
        return first_date + relativedelta(months=k)
    raise ValueError(UNKNOWN_INTERVAL % {"interval": interval})


def plan_schedule(
    *,
    total: int,
    currency: str,
    instalment_count: int,
    interval: str,
    first_date: dt.date,
    down_payment: int = 0,
    fee: int = 0,
) -> list[Payment]:
    """The payments of a plan, in order: the down payment first (if any), then the instalments. They add
    up to total + fee; the fee is spread over the instalments, never added to the down payment."""
    currency_exponent(currency)  # an unknown currency is refused here, not after the plan is stored
    if interval not in INTERVALS:
        raise ValueError(UNKNOWN_INTERVAL % {"interval": interval})
    if total <= 0:
        raise ValueError(NOTHING_TO_PLAN)
    if instalment_count < 1:
        raise ValueError(NO_INSTALMENTS)
    if down_payment < 0 or fee < 0:
        raise ValueError(NEGATIVE_AMOUNT)
    spread = total + fee - down_payment
    if spread < instalment_count:
        raise ValueError(DOWN_PAYMENT_TOO_LARGE)
    base, extra = divmod(spread, instalment_count)
    payments = []
    shift = 0
    if down_payment:
        payments.append(Payment(0, first_date, down_payment))
        shift = 1
    for index in range(instalment_count):
        amount = base + (1 if index < extra else 0)
        payments.append(Payment(index + 1, due_date(first_date, interval, index + shift), amount))
    return payments


class Limits(Protocol):
    """A policy's self-serve limits (collections.models.Policy has them all)."""

    plan_max_instalments: int
    plan_min_instalment: int
    plan_max_days: int
    plan_min_down_payment_percent: int
    plan_self_serve_max_amount: int


def smallest_down_payment(*, total: int, percent: int) -> int:
    """The policy's minimum down payment for a total, rounded up to the minor unit."""
    return -(-total * percent // 100)


def plan_problems(
    *,
    limits: Limits,
    total: int,
    currency: str,
    instalment_count: int,
    interval: str,
    first_date: dt.date,
    today: dt.date,
    down_payment: int = 0,
    fee: int = 0,
    check_amount: bool = True,
) -> dict[str, str]:
    """What keeps these terms outside the policy's self-serve limits, by field (empty: within them).
    `check_amount` False leaves out the amount limit (plan_self_serve_max_amount), which only a
    customer's own choice meets (collections.plans)."""
    problems = {}
    if first_date < today:
        problems["first_date"] = FIRST_DATE_IN_PAST
    if instalment_count > limits.plan_max_instalments:
        problems["instalment_count"] = TOO_MANY_INSTALMENTS % {"limit": limits.plan_max_instalments}
    minimum_down = smallest_down_payment(total=total, percent=limits.plan_min_down_payment_percent)
    if down_payment < minimum_down:
        problems["down_payment"] = DOWN_PAYMENT_TOO_SMALL % {
            "percent": limits.plan_min_down_payment_percent,
            "minimum": format_money(minimum_down, currency),
        }
    if instalment_count >= 1:
        smallest = (total + fee - down_payment) // instalment_count
        if smallest < limits.plan_min_instalment and "instalment_count" not in problems:
            problems["instalment_count"] = INSTALMENT_TOO_SMALL % {
                "minimum": format_money(limits.plan_min_instalment, currency),
                "smallest": format_money(max(smallest, 0), currency),
            }
        shift = 1 if down_payment else 0
        last = due_date(first_date, interval, instalment_count - 1 + shift)
        latest = today + dt.timedelta(days=limits.plan_max_days)
        if last > latest and "first_date" not in problems:
            problems["first_date"] = PLAN_TOO_LONG % {"days": limits.plan_max_days, "latest": latest.isoformat()}
    if check_amount and limits.plan_self_serve_max_amount and total > limits.plan_self_serve_max_amount:
        problems["total"] = PLAN_TOO_LARGE % {"limit": format_money(limits.plan_self_serve_max_amount, currency)}
    return problems
