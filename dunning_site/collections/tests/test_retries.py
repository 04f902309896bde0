"""The retry planner reads the decline right, picks the right moment, and never breaks a budget.

Pure tests (the planner touches no database). The examples pin one decision per class of the table,
the payday and backoff calendars around the US DST change of 8 March 2026, and the caps. The property
test then plays the retry worker against random decline histories — codes from the table and unknown
ones, random zones, budgets and windows, a worker that runs a little late — and checks that no invoice
is retried more often than its budget, the card scheme or its window allow, that every attempt comes
after the one before on a weekday, and that a never-retry decline stops everything.
"""

import datetime as dt
import zoneinfo

import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from dunning_site.collections import retries
from dunning_site.collections.retries import (
    ASK_BANK_THEN_RETRY,
    BUDGET_EXHAUSTED,
    CARD_MUST_CHANGE,
    CUSTOMER_MUST_ACT,
    NEVER_RETRY,
    RETRY_ON_PAYDAY,
    RETRY_SLOWLY,
    RETRY_SOON,
    SCHEME_LIMIT_ATTEMPTS,
    classify,
    effective_cap,
    paydays,
    plan_next_attempt,
)

UTC = dt.UTC
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Paris",
    "Australia/Sydney",  # DST on the other hemisphere
    "Asia/Kolkata",  # +05:30, no DST
    "Pacific/Chatham",  # +12:45/+13:45
    "Pacific/Kiritimati",  # +14: its Monday starts while it is still Sunday in UTC
    "America/St_Johns",
    "UTC",
]
# Tuesday 10 March 2026, 11:00 in New York: two days after the US moved to daylight time (UTC-4).
TUESDAY_IN_NEW_YORK = dt.datetime(2026, 3, 10, 15, tzinfo=UTC)

VISA_CATEGORY_1 = ["04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"]
NEVER_CODES = [
    "lost_card",
    "stolen_card",
    "pickup_card",
    "fraudulent",
    "restricted_card",
    "invalid_account",
    "merchant_blacklist",
    "revocation_of_authorization",
    "revocation_of_all_authorizations",
    "security_violation",
    "stop_payment_order",
    "do_not_try_again",
]
CARD_CHANGE_CODES = [
    "expired_card",
    "incorrect_number",
    "incorrect_cvc",
    "invalid_cvc",
    "invalid_expiry_month",
    "invalid_expiry_year",
    "card_not_supported",
    "currency_not_supported",
    "invalid_number",
]


def plan(decline_code="", *, now=TUESDAY_IN_NEW_YORK, zone="America/New_York", first_failure_at=None, **overrides):
    arguments = {
        "decline_code": decline_code,
        "advice_code": "",
        "network_decline_code": "",
        "card_brand": "visa",
        "attempts_so_far": [],
        "first_failure_at": first_failure_at or now,
        "now": now,
        "customer_time_zone": zone,
        **overrides,
    }
    return plan_next_attempt(**arguments)


def local(moment: dt.datetime, zone=NEW_YORK) -> dt.datetime:
    return moment.astimezone(zone)


# The table


def test_the_table_classifies_what_the_issue_lists():
    for code in NEVER_CODES:
        assert classify(decline_code=code).decision == NEVER_RETRY, code
    for code in CARD_CHANGE_CODES:
        assert classify(decline_code=code).decision == CARD_MUST_CHANGE, code
    assert classify(decline_code="authentication_required").decision == CUSTOMER_MUST_ACT
    for code in ("insufficient_funds", "withdrawal_count_limit_exceeded", "card_velocity_exceeded"):
        assert classify(decline_code=code).decision == RETRY_ON_PAYDAY, code
    for code in ("processing_error", "try_again_later", "issuer_not_available", "reenter_transaction"):
        assert classify(decline_code=code).decision == RETRY_SOON, code
    assert classify(decline_code="", advice_code="do_not_try_again").decision == NEVER_RETRY
    assert classify(decline_code="", advice_code="confirm_card_data").decision == CARD_MUST_CHANGE
    assert classify(decline_code="", advice_code="try_again_later").decision == RETRY_SOON


def test_every_rule_is_a_known_class_with_a_sentence_a_collector_can_read():
    rules = [
        *retries.DECLINE_CODES.values(),
        *retries.ADVICE_CODES.values(),
        *retries.NETWORK_ADVICE_CODES.values(),
        *(rule for codes in retries.NETWORK_DECLINE_CODES.values() for rule in codes.values()),
    ]
    for rule in rules:
        assert rule.decision in retries.SEVERITY
        assert rule.why[0].isupper()
        assert not rule.why.endswith(".")


# Never retry


@pytest.mark.parametrize("code", NEVER_CODES)
def test_it_never_retries_a_card_the_issuer_will_never_approve(code):
    result = plan(code)

    assert result.decision == NEVER_RETRY
    assert result.retry_at is None
    assert result.needs_new_card and result.needs_customer
    assert result.reason.endswith("Never retry this card: ask the customer for a new card or another way to pay.")


@given(
    attempts=st.lists(st.integers(min_value=1, max_value=40 * 24), max_size=12),
    zone=st.sampled_from(ZONES),
    max_attempts=st.integers(min_value=0, max_value=50),
    window_days=st.integers(min_value=0, max_value=60),
    advice=st.sampled_from(["", "try_again_later", "confirm_card_data", "unknown_advice"]),
    brand=st.sampled_from(["visa", "mastercard", "amex", ""]),
)
@settings(deadline=None, max_examples=200)
def test_a_stolen_card_is_never_retried_whatever_the_history(attempts, zone, max_attempts, window_days, advice, brand):
    now = TUESDAY_IN_NEW_YORK
    result = plan(
        "stolen_card",
        zone=zone,
        advice_code=advice,
        card_brand=brand,
        attempts_so_far=[now - dt.timedelta(hours=hours) for hours in attempts],
        first_failure_at=now - dt.timedelta(days=3),
        max_attempts=max_attempts,
        window_days=window_days,
    )

    assert result.decision == NEVER_RETRY
    assert result.retry_at is None


def test_do_not_try_again_advice_beats_a_soft_decline_code():
    result = plan("insufficient_funds", advice_code="do_not_try_again")

    assert result.decision == NEVER_RETRY
    assert result.reason.startswith("The bank advised never to try this card again.")
    assert result.cause == "advice code do_not_try_again"


@pytest.mark.parametrize("code", VISA_CATEGORY_1)
def test_visa_category_1_responses_are_never_retried(code):
    result = plan("generic_decline", network_decline_code=code, card_brand="visa")

    assert result.decision == NEVER_RETRY
    assert result.retry_at is None
    assert f"Visa response {code}: the bank will never approve it" in result.reason


def test_visa_codes_are_read_however_the_gateway_writes_them():
    assert classify(decline_code="", network_decline_code="r0", card_brand="Visa").decision == NEVER_RETRY
    assert classify(decline_code="", network_decline_code="4", card_brand="visa").decision == NEVER_RETRY


def test_a_visa_category_4_response_is_retried():
    # 05 "do not honor" is Visa's generic category 4: reattempts allowed within the scheme's limit.
    result = plan("do_not_honor", network_decline_code="05", card_brand="visa")

    assert result.decision == RETRY_SLOWLY
    assert result.retry_at is not None


def test_a_response_code_is_read_with_the_card_brand():
    # 04 is category 1 for Visa; on a Mastercard the same digits are not the Visa rule.
    result = plan("processing_error", network_decline_code="04", card_brand="mastercard")

    assert result.decision == RETRY_SOON


@pytest.mark.parametrize("code", ["03", "21"])
@pytest.mark.parametrize("field", ["network_decline_code", "network_advice_code"])
def test_mastercard_advice_03_and_21_are_never_retried(code, field):
    result = plan("insufficient_funds", card_brand="mastercard", **{field: code})

    assert result.decision == NEVER_RETRY
    assert result.retry_at is None
    assert result.needs_new_card


# Card must change


@pytest.mark.parametrize("code", CARD_CHANGE_CODES)
def test_a_card_with_wrong_or_unusable_details_waits_for_a_new_card(code):
    result = plan(code)

    assert result.decision == CARD_MUST_CHANGE
    assert result.retry_at is None
    assert result.needs_new_card and result.needs_customer
    assert result.reason.endswith("No retry until the customer updates their card: send a card-update link.")


def test_confirm_card_data_advice_asks_for_the_card_first():
    result = plan("insufficient_funds", advice_code="confirm_card_data")

    assert result.decision == CARD_MUST_CHANGE
    assert result.reason == (
        "The bank advised to confirm the card details first. "
        "No retry until the customer updates their card: send a card-update link."
    )


# Customer must act


def test_authentication_required_needs_the_customer_not_a_blind_retry():
    result = plan("authentication_required")

    assert result.decision == CUSTOMER_MUST_ACT
    assert result.retry_at is None
    assert result.needs_customer
    assert not result.needs_new_card
    assert result.reason == (
        "The bank requires the customer to authenticate this payment (3-D Secure). "
        "No blind retry: send the customer a link to authenticate and pay."
    )


@pytest.mark.parametrize("code", ["call_issuer", "approve_with_id", "no_action_taken", "transaction_not_allowed"])
def test_a_bank_that_wants_a_call_gets_the_customer_and_a_slow_retry(code):
    result = plan(code)

    assert result.decision == ASK_BANK_THEN_RETRY
    assert result.needs_customer
    assert not result.needs_new_card
    # Days apart: the next business morning-or-later, a day after the decline.
    assert result.retry_at == TUESDAY_IN_NEW_YORK + dt.timedelta(days=1)
    assert "Ask the customer to call their bank; next attempt Wednesday 11 March 2026 at 11:00" in result.reason


# Soft, near paydays


def test_insufficient_funds_waits_for_the_next_payday_morning_in_the_customers_zone():
    result = plan("insufficient_funds")

    # The 15th is a Sunday, so the payday is Monday the 16th, at 09:00 New York daylight time (UTC-4
    # since 8 March): 13:00 UTC, where standard time would have given 14:00.
    assert result.decision == RETRY_ON_PAYDAY
    assert result.retry_at == dt.datetime(2026, 3, 16, 13, tzinfo=UTC)
    assert local(result.retry_at).strftime("%A %H:%M") == "Monday 09:00"
    assert not result.needs_customer and not result.needs_new_card
    assert result.reason == (
        "The account has insufficient funds. "
        "Next attempt on the next payday morning, Monday 16 March 2026 at 09:00 (America/New_York)."
    )


def test_the_last_business_day_of_the_month_is_a_payday():
    # 31 May 2026 is a Sunday, so the month's last business day is Friday the 29th.
    now = dt.datetime(2026, 5, 20, 8, tzinfo=UTC)  # Wednesday, 10:00 in Paris

    result = plan("withdrawal_count_limit_exceeded", now=now, zone="Europe/Paris")

    assert result.decision == RETRY_ON_PAYDAY
    assert result.retry_at == dt.datetime(2026, 5, 29, 7, tzinfo=UTC)  # 09:00 CEST
    assert "Friday 29 May 2026 at 09:00 (Europe/Paris)" in result.reason


def test_a_payday_less_than_a_day_away_is_skipped_and_a_weekend_1st_moves_to_monday():
    # Thursday 30 July, 10:00 in Los Angeles: Friday the 31st at 09:00 is under a day away; 1 August is a
    # Saturday, so the next payday is Monday the 3rd.
    now = dt.datetime(2026, 7, 30, 17, tzinfo=UTC)

    result = plan("card_velocity_exceeded", now=now, zone="America/Los_Angeles")

    assert result.decision == RETRY_ON_PAYDAY
    assert result.retry_at == dt.datetime(2026, 8, 3, 16, tzinfo=UTC)  # 09:00 PDT


def test_the_month_paydays():
    assert paydays(2026, 3) == [dt.date(2026, 3, 2), dt.date(2026, 3, 16), dt.date(2026, 3, 31)]
    assert paydays(2026, 5) == [dt.date(2026, 5, 1), dt.date(2026, 5, 15), dt.date(2026, 5, 29)]
    assert paydays(2026, 8) == [dt.date(2026, 8, 3), dt.date(2026, 8, 17), dt.date(2026, 8, 31)]


def test_a_payday_after_the_window_closes_ends_the_retries():
    # The window closes Friday 13 March; the next payday is Monday the 16th.
    result = plan("insufficient_funds", window_days=3)

    assert result.decision == BUDGET_EXHAUSTED
    assert result.retry_at is None
    assert result.needs_customer
    assert result.reason == retries.NEXT_SLOT_OUT_OF_WINDOW % {"why": "The account has insufficient funds"}


def test_the_more_patient_soft_signal_wins():
    # "Try again later" from an issuer that said insufficient funds still means after payday.
    assert plan("insufficient_funds", advice_code="try_again_later").decision == RETRY_ON_PAYDAY


# Soft, soon with backoff


@pytest.mark.parametrize("code", ["processing_error", "try_again_later", "issuer_not_available", "reenter_transaction"])
def test_a_transient_failure_is_retried_within_hours(code):
    result = plan(code)

    assert result.decision == RETRY_SOON
    assert result.retry_at == TUESDAY_IN_NEW_YORK + dt.timedelta(hours=1)
    assert result.reason.endswith(
        "Next attempt Tuesday 10 March 2026 at 12:00 (America/New_York), retrying hours apart."
    )


def test_try_again_later_advice_alone_retries_soon():
    result = plan("", advice_code="try_again_later")

    assert result.decision == RETRY_SOON
    assert result.reason.startswith("The bank advised to try again later.")


def test_the_backoff_grows_with_the_attempt_number():
    now = dt.datetime(2026, 3, 10, 13, tzinfo=UTC)  # Tuesday 09:00 in New York
    gaps, moments = [], []
    for count in range(6):
        earlier = [now - dt.timedelta(days=1, hours=index) for index in range(count)]
        retry_at = plan("processing_error", now=now, attempts_so_far=earlier, first_failure_at=now).retry_at
        gaps.append(retry_at - now)
        moments.append(local(retry_at).strftime("%a %H:%M"))

    # 1h, 4h, 12h (21:00 is after hours: Wednesday's opening), 24h, 48h, 96h (Saturday: Monday's opening).
    assert moments == ["Tue 10:00", "Tue 13:00", "Wed 08:00", "Wed 09:00", "Thu 09:00", "Mon 08:00"]
    assert gaps == sorted(gaps)
    assert len(set(gaps)) == len(gaps)


def test_a_soft_retry_never_falls_on_a_weekend():
    friday_evening = dt.datetime(2026, 3, 13, 23, 30, tzinfo=UTC)  # 19:30 in New York

    result = plan("issuer_not_available", now=friday_evening)

    assert result.retry_at == dt.datetime(2026, 3, 16, 12, tzinfo=UTC)  # Monday 08:00 EDT


def test_a_network_that_names_a_wait_is_obeyed():
    # Mastercard advice 27: retry after 4 days. Tuesday + 4 days is Saturday: Monday's opening.
    result = plan("processing_error", card_brand="mastercard", network_advice_code="27")

    assert result.decision == RETRY_SOON
    assert local(result.retry_at) == dt.datetime(2026, 3, 16, 8, tzinfo=NEW_YORK)


# Ambiguous and unknown: retry slowly


@pytest.mark.parametrize("code", ["generic_decline", "do_not_honor"])
def test_an_ambiguous_decline_is_retried_days_apart(code):
    result = plan(code)

    assert result.decision == RETRY_SLOWLY
    assert result.retry_at == TUESDAY_IN_NEW_YORK + dt.timedelta(days=1)
    assert result.reason.startswith("The bank declined without giving a reason")
    assert result.reason.endswith("retrying days apart.")


def test_an_unknown_code_gets_the_conservative_default():
    result = plan("brand_new_stripe_code")

    assert result.decision == RETRY_SLOWLY
    assert result.retry_at == TUESDAY_IN_NEW_YORK + dt.timedelta(days=1)
    assert result.reason.startswith("The bank declined with a code we do not recognise (brand_new_stripe_code).")
    assert not result.needs_customer


def test_a_failure_without_any_code_gets_the_conservative_default():
    result = plan("", advice_code="some_future_advice", network_decline_code="99")

    assert result.decision == RETRY_SLOWLY
    assert result.reason.startswith("The payment failed without a decline code.")


# Budgets


def test_the_policy_budget_is_a_hard_cap():
    earlier = [TUESDAY_IN_NEW_YORK - dt.timedelta(days=day) for day in range(8, 0, -1)]

    result = plan("processing_error", attempts_so_far=earlier, first_failure_at=earlier[0], max_attempts=8)

    assert result.decision == BUDGET_EXHAUSTED
    assert result.retry_at is None
    assert result.reason == (
        "A processing error occurred while charging the card. No retry left: 8 of 8 retries used "
        "(the policy's limit). Ask the customer for another card or another way to pay."
    )
    assert plan("processing_error", attempts_so_far=earlier[1:], first_failure_at=earlier[0]).retry_at is not None


def test_the_card_scheme_limit_caps_a_generous_policy():
    assert SCHEME_LIMIT_ATTEMPTS == {"visa": 15, "mastercard": 35}
    assert effective_cap(max_attempts=8, card_brand="visa") == (8, "the policy's limit")
    assert effective_cap(max_attempts=20, card_brand="visa") == (15, "the Visa limit of 15 in 30 days")
    assert effective_cap(max_attempts=50, card_brand="mastercard")[0] == 35
    assert effective_cap(max_attempts=50, card_brand="amex")[0] == 50

    earlier = [TUESDAY_IN_NEW_YORK - dt.timedelta(hours=hour) for hour in range(15, 0, -1)]
    result = plan("processing_error", attempts_so_far=earlier, max_attempts=20, window_days=45)

    assert result.decision == BUDGET_EXHAUSTED
    assert "15 of 15 retries used (the Visa limit of 15 in 30 days)" in result.reason


def test_no_retry_after_the_window_closes():
    first_failure = TUESDAY_IN_NEW_YORK - dt.timedelta(days=31)

    result = plan("processing_error", first_failure_at=first_failure, window_days=30)

    assert result.decision == BUDGET_EXHAUSTED
    assert "No retry left: the retry window closed on 9 March 2026." in result.reason


def test_a_budget_of_nothing_retries_nothing():
    assert plan("processing_error", max_attempts=0).decision == BUDGET_EXHAUSTED
    assert plan("processing_error", window_days=0).decision == BUDGET_EXHAUSTED


def test_the_planner_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="aware datetimes"):
        plan("processing_error", now=dt.datetime(2026, 3, 10, 15))


def test_every_reason_fits_the_payment_retry_column():
    """Every sentence the planner can write, with the longest zone name and date, fits in 255 characters."""
    longest_zone = max(zoneinfo.available_timezones(), key=len)
    longest_when = f"Wednesday 30 September 2026 at 09:00 ({longest_zone})"
    rules = [
        *retries.DECLINE_CODES.values(),
        *retries.ADVICE_CODES.values(),
        *retries.NETWORK_ADVICE_CODES.values(),
        *(rule for codes in retries.NETWORK_DECLINE_CODES.values() for rule in codes.values()),
    ]
    whys = [rule.why for rule in rules]
    whys += [classify(decline_code="x" * 500).why, retries.NO_CODE.why]
    templates = [
        retries.NEVER_RETRY_REASON,
        retries.CARD_MUST_CHANGE_REASON,
        retries.CUSTOMER_MUST_ACT_REASON,
        *retries._REASONS.values(),
        retries.NEXT_SLOT_OUT_OF_WINDOW,
    ]
    values = {"when": longest_when, "closes": "30 September 2026"}
    longest = max(len(template % {**values, "why": why}) for template in templates for why in whys)
    limit = retries.SCHEME_LIMIT % {"brand": "Mastercard", "cap": 35, "days": 30}
    longest_out = max(
        len(retries.OUT_OF_ATTEMPTS % {"why": why, "count": 35, "cap": 35, "limit": limit}) for why in whys
    )
    longest_window = max(len(retries.OUT_OF_WINDOW % {**values, "why": why}) for why in whys)

    assert max(longest, longest_out, longest_window) <= 255


# The property: random decline histories never break a budget


TABLE_CODES = sorted(retries.DECLINE_CODES)
SOFT_CODES = sorted(
    code for code, rule in retries.DECLINE_CODES.items() if rule.decision in retries.SCHEDULED_DECISIONS
)
UNKNOWN_CODES = ["", "card_declined", "some_new_code", "highest_risk_level"]

NO_SIGNAL = {"advice_code": "", "network_decline_code": "", "network_advice_code": ""}


@st.composite
def declines(draw) -> dict[str, str]:
    """Mostly soft declines with no other signal, so histories run long enough to meet the caps; the
    rest mixes every code of the table, unknown codes, and advice and network codes."""
    if draw(st.integers(min_value=0, max_value=9)) < 7:
        return {**NO_SIGNAL, "decline_code": draw(st.sampled_from(SOFT_CODES))}
    return {
        "decline_code": draw(st.sampled_from([*TABLE_CODES, *UNKNOWN_CODES])),
        "advice_code": draw(st.sampled_from(["", *retries.ADVICE_CODES, "unheard_of"])),
        "network_decline_code": draw(st.sampled_from(["", *VISA_CATEGORY_1, "05", "51", "03", "21"])),
        "network_advice_code": draw(st.sampled_from(["", *retries.NETWORK_ADVICE_CODES, "99"])),
    }


@given(
    history=st.lists(declines(), min_size=1, max_size=40),
    zone=st.sampled_from(ZONES),
    brand=st.sampled_from(["visa", "mastercard", "amex", ""]),
    first_failure_at=st.datetimes(
        min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    max_attempts=st.integers(min_value=1, max_value=10),
    window_days=st.integers(min_value=1, max_value=45),
    lateness=st.lists(st.integers(min_value=0, max_value=3 * 3600), min_size=1, max_size=40),
)
@settings(deadline=None, max_examples=200)
def test_no_invoice_ever_exceeds_its_retry_budget(
    history, zone, brand, first_failure_at, max_attempts, window_days, lateness
):
    """Plays the retry worker: each planned attempt is made (a little late, as a real worker is) and
    fails with the next decline of the history (the last one repeats) until the planner stops."""
    customer_zone = zoneinfo.ZoneInfo(zone)
    window_closes = first_failure_at + dt.timedelta(days=window_days)
    cap = min(max_attempts, SCHEME_LIMIT_ATTEMPTS.get(brand, max_attempts))
    now, attempts = first_failure_at, []

    for round_number in range(cap + 2):
        decline = history[min(round_number, len(history) - 1)]
        result = plan_next_attempt(
            **decline,
            card_brand=brand,
            attempts_so_far=list(attempts),
            first_failure_at=first_failure_at,
            now=now,
            customer_time_zone=zone,
            max_attempts=max_attempts,
            window_days=window_days,
        )
        note(f"{now.isoformat()} {decline} -> {result}")
        assert len(result.reason) <= 255 and len(result.decision) <= 40  # PaymentRetry's columns
        if classify(**decline, card_brand=brand).decision == NEVER_RETRY:
            assert result.decision == NEVER_RETRY
        if result.retry_at is None:
            assert result.decision not in retries.SCHEDULED_DECISIONS
            event(f"stopped: {result.decision}" + (" (all retries used)" if len(attempts) == cap else ""))
            break

        assert result.decision in retries.SCHEDULED_DECISIONS
        assert not result.needs_new_card
        assert result.retry_at > now
        assert all(result.retry_at > earlier for earlier in attempts)
        assert result.retry_at <= window_closes
        local_moment = result.retry_at.astimezone(customer_zone)
        assert local_moment.weekday() < 5
        if result.decision == RETRY_ON_PAYDAY:
            assert local_moment.time() == dt.time(9)
            assert local_moment.date() in paydays(local_moment.year, local_moment.month)
            assert result.retry_at >= max([now, *attempts]) + dt.timedelta(days=1)
        else:
            assert dt.time(8) <= local_moment.time() < dt.time(20)

        now = result.retry_at + dt.timedelta(seconds=lateness[round_number % len(lateness)])
        attempts.append(now)
    else:
        pytest.fail("The planner kept scheduling past the budget.")

    assert len(attempts) <= cap
    assert len(attempts) <= max_attempts
    assert len(attempts) <= SCHEME_LIMIT_ATTEMPTS.get(brand, max_attempts)
