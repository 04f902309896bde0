"""A plan's arithmetic, by property: in every currency (JPY has no decimals, KWD three) the payments add up
to the total plus the fee to the minor unit, none is below the policy's minimum when the terms are within
its limits, the dates increase, month ends are kept, and the down payment comes first."""

import calendar
import dataclasses
import datetime as dt
import itertools

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from dunning_site.collections.plan_schedule import (
    DOWN_PAYMENT_TOO_SMALL,
    FORTNIGHTLY,
    INSTALMENT_TOO_SMALL,
    INTERVALS,
    MONTHLY,
    PLAN_TOO_LARGE,
    PLAN_TOO_LONG,
    TOO_MANY_INSTALMENTS,
    UNKNOWN_INTERVAL,
    WEEKLY,
    Payment,
    plan_problems,
    plan_schedule,
)
from dunning_site.lib.money import format_money

CURRENCIES = ["EUR", "USD", "JPY", "KWD", "GBP", "BHD", "CLP"]
TODAY = dt.date(2026, 3, 16)


@dataclasses.dataclass
class Limits:
    plan_max_instalments: int = 6
    plan_min_instalment: int = 2000
    plan_max_days: int = 180
    plan_min_down_payment_percent: int = 0
    plan_self_serve_max_amount: int = 0


terms = st.fixed_dictionaries(
    {
        "total": st.integers(min_value=1, max_value=10**12),
        "currency": st.sampled_from(CURRENCIES),
        "instalment_count": st.integers(min_value=1, max_value=60),
        "interval": st.sampled_from(INTERVALS),
        "first_date": st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2090, 12, 31)),
        "fee": st.one_of(st.just(0), st.integers(min_value=0, max_value=10**6)),
        "down_share": st.one_of(st.just(0), st.integers(min_value=0, max_value=99)),
    }
)


def _schedule(t: dict) -> tuple[list[Payment], int]:
    down_payment = t["total"] * t["down_share"] // 100
    assume(t["total"] + t["fee"] - down_payment >= t["instalment_count"])
    schedule = plan_schedule(
        total=t["total"],
        currency=t["currency"],
        instalment_count=t["instalment_count"],
        interval=t["interval"],
        first_date=t["first_date"],
        down_payment=down_payment,
        fee=t["fee"],
    )
    return schedule, down_payment


@given(terms)
def test_the_payments_add_up_to_the_total_and_fee_to_the_minor_unit(t):
    schedule, _ = _schedule(t)
    assert sum(payment.amount for payment in schedule) == t["total"] + t["fee"]
    instalments = [payment for payment in schedule if payment.number > 0]
    assert len(instalments) == t["instalment_count"]
    assert [payment.number for payment in instalments] == list(range(1, t["instalment_count"] + 1))
    # The odd minor units go to the first instalments: never more than one apart, never increasing.
    amounts = [payment.amount for payment in instalments]
    assert max(amounts) - min(amounts) <= 1
    assert amounts == sorted(amounts, reverse=True)
    assert all(amount > 0 for amount in amounts)


@given(terms)
def test_the_down_payment_comes_first_on_the_first_date_and_the_dates_increase(t):
    schedule, down_payment = _schedule(t)
    assert schedule[0].due_on == t["first_date"]
    if down_payment:
        assert schedule[0] == Payment(0, t["first_date"], down_payment)
    else:
        assert schedule[0].number == 1
    dates = [payment.due_on for payment in schedule]
    assert all(earlier < later for earlier, later in itertools.pairwise(dates))
    gaps = {(later - earlier).days for earlier, later in itertools.pairwise(dates)}
    if t["interval"] == WEEKLY:
        assert gaps <= {7}
    elif t["interval"] == FORTNIGHTLY:
        assert gaps <= {14}


@given(terms)
def test_monthly_dates_keep_the_day_or_the_months_last_day(t):
    t["interval"] = MONTHLY
    schedule, _ = _schedule(t)
    first = t["first_date"]
    for k, payment in enumerate(schedule):
        months = first.month - 1 + k
        year, month = first.year + months // 12, months % 12 + 1
        last_day = calendar.monthrange(year, month)[1]
        assert payment.due_on == dt.date(year, month, min(first.day, last_day))


def test_a_plan_from_the_31st_of_january_keeps_to_month_ends():
    schedule = plan_schedule(
        total=90_000, currency="EUR", instalment_count=4, interval=MONTHLY, first_date=dt.date(2028, 1, 31)
    )
    assert [payment.due_on for payment in schedule] == [
        dt.date(2028, 1, 31),
        dt.date(2028, 2, 29),  # a leap year
        dt.date(2028, 3, 31),
        dt.date(2028, 4, 30),
    ]


@pytest.mark.parametrize(
    ("currency", "total", "amounts"),
    [
        ("JPY", 10_000, [3334, 3333, 3333]),  # ¥10,000: no decimals, the first yen goes first
        ("KWD", 10_000, [3334, 3333, 3333]),  # 10.000 KWD: three decimals
        ("EUR", 100, [34, 33, 33]),  # €1.00
    ],
)
def test_the_first_instalments_carry_the_odd_minor_units(currency, total, amounts):
    schedule = plan_schedule(
        total=total, currency=currency, instalment_count=3, interval=WEEKLY, first_date=dt.date(2026, 3, 16)
    )
    assert [payment.amount for payment in schedule] == amounts


def test_the_fee_is_spread_over_the_instalments_not_the_down_payment():
    schedule = plan_schedule(
        total=10_000,
        currency="EUR",
        instalment_count=2,
        interval=MONTHLY,
        first_date=dt.date(2026, 3, 16),
        down_payment=4_000,
        fee=500,
    )
    assert [(payment.number, payment.amount) for payment in schedule] == [(0, 4_000), (1, 3_250), (2, 3_250)]
    assert [payment.due_on for payment in schedule] == [
        dt.date(2026, 3, 16),
        dt.date(2026, 4, 16),
        dt.date(2026, 5, 16),
    ]


def test_impossible_terms_are_refused():
    with pytest.raises(ValueError, match="not an interval"):
        plan_schedule(total=100, currency="EUR", instalment_count=2, interval="daily", first_date=TODAY)
    assert UNKNOWN_INTERVAL % {"interval": "daily"}
    with pytest.raises(ValueError, match="ISO 4217"):
        plan_schedule(total=100, currency="XYZ", instalment_count=2, interval=WEEKLY, first_date=TODAY)
    with pytest.raises(ValueError):
        plan_schedule(total=100, currency="EUR", instalment_count=2, interval=WEEKLY, first_date=TODAY, down_payment=99)


# ---------------------------------------------------------------------------------------------
# Within the limits


within_limits = st.fixed_dictionaries(
    {
        "limits": st.builds(
            Limits,
            plan_max_instalments=st.integers(min_value=1, max_value=24),
            plan_min_instalment=st.integers(min_value=0, max_value=100_000),
            plan_max_days=st.integers(min_value=1, max_value=730),
            plan_min_down_payment_percent=st.integers(min_value=0, max_value=99),
        ),
        "total": st.integers(min_value=1, max_value=10**9),
        "currency": st.sampled_from(CURRENCIES),
        "instalment_count": st.integers(min_value=1, max_value=24),
        "interval": st.sampled_from(INTERVALS),
        "days_ahead": st.integers(min_value=0, max_value=60),
        "down_share": st.integers(min_value=0, max_value=99),
    }
)


@given(within_limits)
def test_terms_within_the_limits_have_no_instalment_below_the_minimum_and_end_in_time(t):
    limits = t["limits"]
    down_payment = -(-t["total"] * t["down_share"] // 100)
    values = {
        "total": t["total"],
        "currency": t["currency"],
        "instalment_count": t["instalment_count"],
        "interval": t["interval"],
        "first_date": TODAY + dt.timedelta(days=t["days_ahead"]),
        "down_payment": down_payment,
    }
    assume(t["total"] - down_payment >= t["instalment_count"])
    problems = plan_problems(limits=limits, today=TODAY, **values)
    assume(not problems)
    schedule = plan_schedule(**values)
    assert all(payment.amount >= limits.plan_min_instalment for payment in schedule if payment.number > 0)
    assert schedule[-1].due_on <= TODAY + dt.timedelta(days=limits.plan_max_days)
    assert down_payment * 100 >= t["total"] * limits.plan_min_down_payment_percent


def test_each_limit_has_its_own_message_on_its_field():
    limits = Limits(plan_min_down_payment_percent=10, plan_self_serve_max_amount=50_000)
    problems = plan_problems(
        limits=limits,
        total=60_000,
        currency="EUR",
        instalment_count=7,
        interval=MONTHLY,
        first_date=TODAY,
        today=TODAY,
    )
    assert problems == {
        "instalment_count": TOO_MANY_INSTALMENTS % {"limit": 6},
        "down_payment": DOWN_PAYMENT_TOO_SMALL % {"percent": 10, "minimum": "€60.00"},
        "first_date": PLAN_TOO_LONG % {"days": 180, "latest": "2026-09-12"},
        "total": PLAN_TOO_LARGE % {"limit": "€500.00"},
    }
    assert "total" not in plan_problems(
        limits=limits,
        total=60_000,
        currency="EUR",
        instalment_count=7,
        interval=MONTHLY,
        first_date=TODAY,
        today=TODAY,
        check_amount=False,
    )
    small = plan_problems(
        limits=Limits(), total=5_000, currency="JPY", instalment_count=3, interval=WEEKLY, first_date=TODAY, today=TODAY
    )
    assert small == {
        "instalment_count": INSTALMENT_TOO_SMALL
        % {"minimum": format_money(2000, "JPY"), "smallest": format_money(1666, "JPY")}
    }
