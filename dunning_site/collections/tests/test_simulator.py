"""The simulator (make simulate) at a size CI can afford: a book of failed payments through the real
engine — signed webhooks, the tick, the outbox — with a moved clock, against a fixed schedule.

The measuring instrument is checked first, on the baseline, where every contact's moment is known."""

import datetime as dt
import json

import pytest

from bench.simulate import simulate
from bench.simulate.baseline import baseline_run
from bench.simulate.book import START, build_book
from bench.simulate.report import summary, violations

SMALL_BOOK = 40
SMALL_DAYS = 23  # the fixed schedule's last charge is on day 22


def test_the_fixed_schedule_wakes_the_americas_and_charges_stolen_cards_again():
    book = build_book(customers=200, seed=7)
    states = baseline_run(book, seed=7, until=START + dt.timedelta(days=45))
    by_zone = {}
    for state in states:
        by_zone.setdefault(state.customer.zone, []).append(violations(state)["contact_outside_hours"])
    # 09:00 UTC is 02:00 in Los Angeles and 18:00 in Tokyo.
    assert all(by_zone["America/Los_Angeles"]) and not any(by_zone["Asia/Tokyo"])
    stolen = [s for s in states if dict(s.customer.decline)["decline_code"] in ("stolen_card", "lost_card")]
    assert sum(violations(state)["stolen_card_charged_again"] for state in stolen) > 0
    disputers = [state for state in states if state.customer.behaviour == "disputer"]
    assert all(violations(state)["charge_after_dispute"] for state in disputers)
    assert 0 < summary(states)["recovered_share"] < 1


def test_the_same_seed_builds_the_same_book_and_another_seed_another():
    assert build_book(customers=30, seed=3) == build_book(customers=30, seed=3)
    assert build_book(customers=30, seed=3) != build_book(customers=30, seed=4)


@pytest.mark.django_db(transaction=True)
def test_the_engine_crosses_no_line_and_recovers_more_than_the_fixed_schedule():
    result = simulate(customers=SMALL_BOOK, seed=1, days=SMALL_DAYS, step_minutes=30)
    assert result["customers"] == SMALL_BOOK and result["contacts"] > 0 and result["charges"] > 0
    assert result["engine_errors"] == 0, json.dumps(result)
    assert result["violations"] == {}, json.dumps(result)
    assert result["recovered_share"] > result["baseline_recovered_share"], json.dumps(result)
