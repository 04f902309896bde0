"""The retry planner: when, if ever, to charge a declined invoice again.

Pure functions over plain values (no database, no clock): the caller loads the decline and the
invoice's earlier retries, passes `now`, and stores the `Plan` it gets back (a `PaymentRetry` row, a
card-update message, a note on the timeline). Keeping the decision free of I/O is what lets the
tests, and the property test in particular, replay thousands of decline histories in seconds.

Why read the decline at all: most recovered revenue comes from retrying at the right moment, and a
wrong retry is worse than none. Retrying a stolen card never works and is fined by the card schemes;
retrying an insufficient-funds decline the next morning mostly fails again, while the first payday
after it often succeeds; an `authentication_required` decline needs the customer, not the card.

The table below is the single place that says what each code means for the collector. A decline
carries up to four signals, and the most restrictive one wins (a `do_not_try_again` advice beats an
`insufficient_funds` code; an issuer that says "insufficient funds, try later" still waits for
payday):

- `decline_code` — Stripe's reason (`last_payment_error.decline_code`, `outcome.reason`-like codes);
- `advice_code` — Stripe's own next step (`last_payment_error.advice_code` / charge
  `outcome.advice_code`): `do_not_try_again`, `try_again_later`, `confirm_card_data`;
- `network_advice_code` — the card network's merchant advice code (Stripe's
  `last_payment_error.network_advice_code`; Mastercard's MAC 01/02/03/21/24–30);
- `network_decline_code` — the issuer's raw response code, read with the card brand (Visa's
  category-1 codes; Mastercard 03/21 when a gateway reports the merchant advice code there).

Budgets are hard caps per invoice: at most `max_attempts` retries (the policy's), never beyond the
card scheme's reattempt limit, and never after `first_failure_at + window_days`.
"""

import calendar
import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Sequence

# Decisions: one short constant per class, stored in `PaymentRetry.decision` (max 40 characters).
NEVER_RETRY = "never_retry"
CARD_MUST_CHANGE = "card_must_change"
CUSTOMER_MUST_ACT = "customer_must_act"
ASK_BANK_THEN_RETRY = "ask_bank_then_retry"
RETRY_ON_PAYDAY = "retry_on_payday"
RETRY_SLOWLY = "retry_slowly"
RETRY_SOON = "retry_soon"
BUDGET_EXHAUSTED = "budget_exhausted"
# Not the planner's: the customer asked, on the portal, to be charged now (collections.customer_payments).
CUSTOMER_PAY_NOW = "customer_pay_now"

# Most restrictive first: when signals disagree, the earliest decision in this list wins.
SEVERITY = (
    NEVER_RETRY,
    CARD_MUST_CHANGE,
    CUSTOMER_MUST_ACT,
    ASK_BANK_THEN_RETRY,
    RETRY_ON_PAYDAY,
    RETRY_SLOWLY,
    RETRY_SOON,
)
# The decisions that schedule an attempt; the others wait for the customer or stop for good.
SCHEDULED_DECISIONS = frozenset({ASK_BANK_THEN_RETRY, RETRY_ON_PAYDAY, RETRY_SLOWLY, RETRY_SOON})

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_WINDOW_DAYS = 30

# Card-scheme reattempt limits, as published by the schemes in their retry rules (2021+): Visa's
# Excessive Reattempts rule (April 2021, fees from April 2022) allows at most 15 reattempts in 30 days
# of a transaction declined with a category 2, 3 or 4 code (none after category 1); Mastercard's
# Transaction Processing Excellence program (October 2022) fines more than 35 reattempts of the same
# card, merchant and amount in 30 days (and more than 10 declines of one card in 24 hours, which this
# planner's spacing can never reach: its first three delays alone add up to 17 hours). The planner
# applies the 30-day number as a cap over the invoice's whole window, which is stricter whenever the
# window is longer than 30 days. Other brands publish no such limit; the policy's budget applies.
SCHEME_LIMIT_ATTEMPTS = {"visa": 15, "mastercard": 35}
SCHEME_LIMIT_DAYS = 30

# When attempts happen. A retry lands on a weekday, inside the customer's business hours, so a success
# shows on their phone while they are awake and a failure (an issuer's SMS to confirm, an overdraft)
# reaches them when they can act; issuers also run maintenance at night, so an overnight retry of an
# `issuer_not_available` tends to meet the same outage.
BUSINESS_DAYS = frozenset({0, 1, 2, 3, 4})
DAY_OPENS = dt.time(8)
DAY_CLOSES = dt.time(20)
PAYDAY_MORNING = dt.time(9)
# A payday retry waits at least this long after the last attempt, so two attempts never hit the same
# empty account on the same day.
PAYDAY_MINIMUM_GAP = dt.timedelta(days=1)
# Transient failures (the issuer or the network hiccuped): hours apart, growing with the attempt number.
SOON_BACKOFF = tuple(dt.timedelta(hours=hours) for hours in (1, 4, 12, 24, 48, 96))
# Ambiguous declines and unknown codes: days apart, so a risk-based block has time to clear and the
# issuer does not see a card hammered (which itself raises the risk score).
SLOW_BACKOFF = tuple(dt.timedelta(days=days) for days in (1, 2, 4, 7))


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one code means: the class it falls in, why (in words a collector reads to the customer),
    and, for a network that names a delay, the earliest moment it allows."""

    decision: str
    why: str
    not_before: dt.timedelta = dt.timedelta(0)


def _rules(decision: str, codes: dict[str, str]) -> dict[str, Rule]:
    return {code: Rule(decision, why) for code, why in codes.items()}


# Stripe's decline codes (https://docs.stripe.com/declines/codes), every one of them classified.
DECLINE_CODES: dict[str, Rule] = {
    # The card is blocked, cancelled or never existed, or the cardholder withdrew consent: the issuer
    # will never approve it, and retrying is fined by the schemes. Ask for another card.
    **_rules(
        NEVER_RETRY,
        {
            "lost_card": "The card was reported lost",
            "stolen_card": "The card was reported stolen",
            "pickup_card": "The bank asked to keep the card (it may be lost or stolen)",
            "fraudulent": "The bank suspects fraud on this card",
            "restricted_card": "The card is restricted (it may be lost or stolen)",
            "invalid_account": "The card or its account is closed or invalid",
            "merchant_blacklist": "The card is on our payment processor's block list",
            "revocation_of_authorization": "The customer revoked the authorization to charge this card",
            "revocation_of_all_authorizations": "The customer revoked every authorization on this card",
            "security_violation": "The bank blocked the card for a security violation",
            "stop_payment_order": "The customer asked their bank to stop payments to us",
            "do_not_try_again": "The bank said not to try this card again",
        },
    ),
    # The card data is wrong or the card cannot be used here: the same charge fails until the customer
    # enters a new card or corrects the details. A card that cannot supply a PIN off-session counts too.
    **_rules(
        CARD_MUST_CHANGE,
        {
            "expired_card": "The card has expired",
            "incorrect_number": "The card number is incorrect",
            "invalid_number": "The card number is invalid",
            "incorrect_cvc": "The card's security code is incorrect",
            "invalid_cvc": "The card's security code is invalid",
            "invalid_expiry_month": "The card's expiry month is invalid",
            "invalid_expiry_year": "The card's expiry year is invalid",
            "incorrect_zip": "The card's billing postcode does not match",
            "card_not_supported": "The card does not support this kind of payment",
            "currency_not_supported": "The card does not support the invoice's currency",
            "new_account_information_available": "The bank has new details for this card or account",
            "incorrect_pin": "The bank asks for a PIN, which an online charge cannot give",
            "invalid_pin": "The bank asks for a PIN, which an online charge cannot give",
            "offline_pin_required": "The bank asks for a PIN, which an online charge cannot give",
            "online_or_offline_pin_required": "The bank asks for a PIN, which an online charge cannot give",
            "pin_try_exceeded": "Too many wrong PINs were entered on this card",
            "testmode_decline": "The card on file is a Stripe test card",
        },
    ),
    # The bank wants the cardholder in person: a blind retry fails the same way. The customer completes
    # the payment themselves through the link, which charges the card with authentication.
    **_rules(
        CUSTOMER_MUST_ACT,
        {"authentication_required": "The bank requires the customer to authenticate this payment (3-D Secure)"},
    ),
    # The bank declined and asks the cardholder to call it. Decided: tell the customer, and retry slowly
    # (days apart) so that a call that lifts the block is followed by a charge without anyone remembering
    # to press a button. Stripe's own advice for approve_with_id is "attempt again, then contact the
    # issuer", which this honours too. invalid_amount fits here: the amount is right, so only the bank
    # can raise the limit that refused it.
    **_rules(
        ASK_BANK_THEN_RETRY,
        {
            "call_issuer": "The bank declined and asks the customer to call it",
            "approve_with_id": "The bank wants to check with the customer before approving",
            "no_action_taken": "The bank declined without a reason and asks the customer to call it",
            "not_permitted": "The bank does not permit this payment on the card",
            "service_not_allowed": "The bank does not allow this kind of payment on the card",
            "transaction_not_allowed": "The bank does not allow this kind of payment on the card",
            "invalid_amount": "The bank refused the amount (it may exceed a limit on the card)",
        },
    ),
    # Money or limit problems that usually clear when the customer is paid. card_velocity_exceeded
    # ("exceeded the balance, credit limit or amount limit") is decided here rather than "customer must
    # act": the limit frees up when the customer pays their card bill, typically after payday.
    **_rules(
        RETRY_ON_PAYDAY,
        {
            "insufficient_funds": "The account has insufficient funds",
            "withdrawal_count_limit_exceeded": "The card's balance or credit limit was reached",
            "card_velocity_exceeded": "The card's balance, credit limit or spending limit was reached",
        },
    ),
    # Ambiguous: the bank declined without saying why. Decided: a slow backoff (days apart, business
    # hours) — these are often temporary risk blocks that clear, but hammering the card makes them stick.
    **_rules(
        RETRY_SLOWLY,
        {
            "generic_decline": "The bank declined without giving a reason",
            "do_not_honor": "The bank declined without giving a reason (do not honor)",
        },
    ),
    # Transient trouble on the way to the bank: retry within hours, with exponential backoff.
    # duplicate_transaction is decided here: the caller re-reads the invoice before each attempt, so if the
    # "duplicate" was in fact paid, the retry is skipped.
    **_rules(
        RETRY_SOON,
        {
            "processing_error": "A processing error occurred while charging the card",
            "try_again_later": "The bank asked to try again later",
            "issuer_not_available": "The bank could not be reached",
            "reenter_transaction": "The bank could not process the payment and asked to submit it again",
            "duplicate_transaction": "The bank saw an identical payment moments before",
        },
    ),
}

# Stripe's advice codes (last_payment_error.advice_code / outcome.advice_code).
ADVICE_CODES: dict[str, Rule] = {
    "do_not_try_again": Rule(NEVER_RETRY, "The bank advised never to try this card again"),
    "confirm_card_data": Rule(CARD_MUST_CHANGE, "The bank advised to confirm the card details first"),
    "try_again_later": Rule(RETRY_SOON, "The bank advised to try again later"),
}

# The card network's merchant advice code (Stripe's last_payment_error.network_advice_code), which is
# Mastercard's MAC. 03 and 21 are binding: any reattempt within 30 days is fined. 24–30 name the wait.
NETWORK_ADVICE_CODES: dict[str, Rule] = {
    "01": Rule(CARD_MUST_CHANGE, "The card network has new details for this card"),
    "02": Rule(RETRY_SLOWLY, "The card network advised the bank cannot approve now, try again later"),
    "03": Rule(NEVER_RETRY, "The card network advised never to try this card again (advice code 03)"),
    "21": Rule(NEVER_RETRY, "The customer cancelled payments to us with their bank (advice code 21)"),
    **{
        code: Rule(RETRY_SOON, f"The card network asked to wait {label} before trying again", wait)
        for code, label, wait in (
            ("24", "an hour", dt.timedelta(hours=1)),
            ("25", "a day", dt.timedelta(days=1)),
            ("26", "2 days", dt.timedelta(days=2)),
            ("27", "4 days", dt.timedelta(days=4)),
            ("28", "6 days", dt.timedelta(days=6)),
            ("29", "8 days", dt.timedelta(days=8)),
            ("30", "10 days", dt.timedelta(days=10)),
        )
    },
}

# Raw issuer response codes (network_decline_code), read with the card brand because the same two
# digits mean different things on different networks.
NETWORK_DECLINE_CODES: dict[str, dict[str, Rule]] = {
    # Source: Visa's "Category 1 – Issuer will never approve" list (Visa Rules, decline response code
    # categories, April 2021 update; 14 is listed in both category 1 and 3 since then, so it is never
    # retried either). Any reattempt of these is an excessive reattempt, fined per transaction.
    "visa": {
        code: Rule(NEVER_RETRY, f"{meaning} (Visa response {code}: the bank will never approve it)")
        for code, meaning in (
            ("04", "The bank asked to keep the card"),
            ("07", "The bank asked to keep the card (special conditions)"),
            ("12", "The bank refused this kind of transaction"),
            ("14", "The card number does not exist"),
            ("15", "The card's bank does not exist"),
            ("41", "The card was reported lost"),
            ("43", "The card was reported stolen"),
            ("46", "The card's account is closed"),
            ("57", "The card may not be used for this payment"),
            ("R0", "The customer asked their bank to stop this payment"),
            ("R1", "The customer revoked the authorization to charge this card"),
            ("R3", "The customer revoked every authorization on this card"),
        )
    },
    # Mastercard merchant advice codes 03 and 21, for gateways (and rows imported from them) that report
    # the advice code in the decline-code field. Stripe reports it in network_advice_code (above).
    "mastercard": {
        "03": NETWORK_ADVICE_CODES["03"],
        "21": NETWORK_ADVICE_CODES["21"],
    },
}

# Unknown codes (new Stripe codes, other gateways, a failure without a code): decided to retry slowly.
# Never retrying would give up on money for a typo in a table; retrying within hours could burn the
# scheme's allowance on a hard decline. Days apart, within the budget, is the conservative middle.
UNKNOWN = Rule(RETRY_SLOWLY, "The bank declined with a code we do not recognise")
NO_CODE = Rule(RETRY_SLOWLY, "The payment failed without a decline code")

# Collector-facing sentences (tests reuse them). `why` ends without a full stop.
NEVER_RETRY_REASON = "%(why)s. Never retry this card: ask the customer for a new card or another way to pay."
CARD_MUST_CHANGE_REASON = "%(why)s. No retry until the customer updates their card: send a card-update link."
CUSTOMER_MUST_ACT_REASON = "%(why)s. No blind retry: send the customer a link to authenticate and pay."
ASK_BANK_REASON = "%(why)s. Ask the customer to call their bank; next attempt %(when)s."
PAYDAY_REASON = "%(why)s. Next attempt on the next payday morning, %(when)s."
SLOW_REASON = "%(why)s. Next attempt %(when)s, retrying days apart."
SOON_REASON = "%(why)s. Next attempt %(when)s, retrying hours apart."
ANOTHER_WAY = "Ask the customer for another card or another way to pay."
OUT_OF_ATTEMPTS = "%(why)s. No retry left: %(count)d of %(cap)d retries used (%(limit)s). " + ANOTHER_WAY
OUT_OF_WINDOW = "%(why)s. No retry left: the retry window closed on %(closes)s. " + ANOTHER_WAY
NEXT_SLOT_OUT_OF_WINDOW = "%(why)s. No retry left: the next suitable moment is after the retry window. " + ANOTHER_WAY
POLICY_LIMIT = "the policy's limit"
SCHEME_LIMIT = "the %(brand)s limit of %(cap)d in %(days)d days"

_REASONS = {
    ASK_BANK_THEN_RETRY: ASK_BANK_REASON,
    RETRY_ON_PAYDAY: PAYDAY_REASON,
    RETRY_SLOWLY: SLOW_REASON,
    RETRY_SOON: SOON_REASON,
}


@dataclasses.dataclass(frozen=True)
class Classification:
    """The decline read through the table: the winning class, why, which signal decided it, and the
    earliest moment any signal allows (a network's "retry after N days")."""

    decision: str
    why: str
    cause: str
    not_before: dt.timedelta = dt.timedelta(0)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to do about a declined invoice. `retry_at` is set only for the scheduled decisions."""

    decision: str
    retry_at: dt.datetime | None
    reason: str
    needs_customer: bool
    needs_new_card: bool
    cause: str = ""


def classify(
    *,
    decline_code: str | None,
    advice_code: str | None = "",
    network_decline_code: str | None = "",
    card_brand: str | None = "",
    network_advice_code: str | None = "",
) -> Classification:
    """Reads every signal of a decline and keeps the most restrictive. An unrecognised advice or
    network code is no signal at all (most network codes say nothing our table does not); an
    unrecognised decline code counts only when nothing else is known."""
    brand = _brand(card_brand)
    decline = (decline_code or "").strip().lower()
    advice = (advice_code or "").strip().lower()
    network_advice = _network_code(network_advice_code)
    network_decline = _network_code(network_decline_code)

    signals: list[tuple[Rule, str]] = []
    if decline in DECLINE_CODES:
        signals.append((DECLINE_CODES[decline], f"decline code {decline}"))
    if advice in ADVICE_CODES:
        signals.append((ADVICE_CODES[advice], f"advice code {advice}"))
    if network_advice in NETWORK_ADVICE_CODES:
        signals.append((NETWORK_ADVICE_CODES[network_advice], f"network advice code {network_advice}"))
    brand_codes = NETWORK_DECLINE_CODES.get(brand, {})
    if network_decline in brand_codes:
        signals.append((brand_codes[network_decline], f"{_brand_name(brand)} response code {network_decline}"))
    if not signals:
        if decline:
            # Clipped, so a gateway's essay in the code field cannot overflow PaymentRetry.reason.
            code = decline[:40]
            return Classification(UNKNOWN.decision, f"{UNKNOWN.why} ({code})", f"decline code {code}")
        return Classification(NO_CODE.decision, NO_CODE.why, "no decline code")

    # Stable: on a tie the decline code, the most specific signal, keeps its words.
    rule, cause = min(signals, key=lambda signal: SEVERITY.index(signal[0].decision))
    not_before = max(signal.not_before for signal, _ in signals)
    return Classification(rule.decision, rule.why, cause, not_before)


def plan_next_attempt(
    *,
    decline_code: str | None,
    advice_code: str | None,
    network_decline_code: str | None,
    card_brand: str | None,
    attempts_so_far: Sequence[dt.datetime],
    first_failure_at: dt.datetime,
    now: dt.datetime,
    customer_time_zone: str,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    window_days: int = DEFAULT_WINDOW_DAYS,
    network_advice_code: str | None = "",
) -> Plan:
    """Plans what follows the latest decline of an invoice.

    `attempts_so_far` are the earlier retries of this invoice (not the original charge); the latest
    decline is the one described by the codes. The answer either schedules one attempt — always after
    `now` and after every earlier attempt, on a weekday in the customer's business hours, inside the
    window and the budget — or says why there is none and whether the customer or a new card is needed.
    """
    for moment in (now, first_failure_at, *attempts_so_far):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"The planner needs aware datetimes (UTC in the database), not {moment!r}.")
    zone = zoneinfo.ZoneInfo(customer_time_zone or "UTC")
    reading = classify(
        decline_code=decline_code,
        advice_code=advice_code,
        network_decline_code=network_decline_code,
        card_brand=card_brand,
        network_advice_code=network_advice_code,
    )
    words = {"why": reading.why}

    # The classes that schedule nothing answer the same whatever the budget: what the customer must do
    # is more useful to the collector than "no retry left".
    if reading.decision == NEVER_RETRY:
        return Plan(NEVER_RETRY, None, NEVER_RETRY_REASON % words, True, True, reading.cause)
    if reading.decision == CARD_MUST_CHANGE:
        return Plan(CARD_MUST_CHANGE, None, CARD_MUST_CHANGE_REASON % words, True, True, reading.cause)
    if reading.decision == CUSTOMER_MUST_ACT:
        return Plan(CUSTOMER_MUST_ACT, None, CUSTOMER_MUST_ACT_REASON % words, True, False, reading.cause)

    def exhausted(reason: str) -> Plan:
        return Plan(BUDGET_EXHAUSTED, None, reason, True, False, reading.cause)

    brand = _brand(card_brand)
    cap, limit = effective_cap(max_attempts=max_attempts, card_brand=brand)
    count = len(attempts_so_far)
    if count >= cap:
        return exhausted(OUT_OF_ATTEMPTS % {**words, "count": count, "cap": cap, "limit": limit})
    window_closes = first_failure_at + dt.timedelta(days=max(window_days, 0))
    if now >= window_closes:
        closes = window_closes.astimezone(zone)
        return exhausted(OUT_OF_WINDOW % {**words, "closes": f"{closes.day} {closes:%B %Y}"})

    # Measured from the latest of now and the last attempt, so a planner run late, or a clock that
    # disagrees with a recorded attempt, can never schedule two attempts closer than the class allows.
    since = max([now, *attempts_so_far])
    if reading.decision == RETRY_ON_PAYDAY:
        earliest = since + max(PAYDAY_MINIMUM_GAP, reading.not_before)
        retry_at = next_payday_morning(earliest, zone)
    else:
        backoff = SOON_BACKOFF if reading.decision == RETRY_SOON else SLOW_BACKOFF
        delay = backoff[min(count, len(backoff) - 1)]
        retry_at = next_business_moment(since + max(delay, reading.not_before), zone)

    if retry_at > window_closes:
        return exhausted(NEXT_SLOT_OUT_OF_WINDOW % words)
    reason = _REASONS[reading.decision] % {**words, "when": _when(retry_at, zone)}
    needs_customer = reading.decision == ASK_BANK_THEN_RETRY
    return Plan(reading.decision, retry_at, reason, needs_customer, False, reading.cause)


def effective_cap(*, max_attempts: int, card_brand: str | None) -> tuple[int, str]:
    """The invoice's retry cap — the policy's budget, lowered to the card scheme's limit — and the
    words naming whichever binds."""
    brand = _brand(card_brand)
    scheme_cap = SCHEME_LIMIT_ATTEMPTS.get(brand)
    budget = max(max_attempts, 0)
    if scheme_cap is not None and scheme_cap < budget:
        words = SCHEME_LIMIT % {"brand": _brand_name(brand), "cap": scheme_cap, "days": SCHEME_LIMIT_DAYS}
        return scheme_cap, words
    return budget, POLICY_LIMIT


def next_payday_morning(earliest: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The first payday morning (09:00 local) at or after `earliest`.

    Paydays are the 1st, the 15th and the last business day of each month — the common salary and
    benefit dates. A 1st or 15th on a weekend moves to the following Monday rather than the Friday
    before: employers often pay early, but not all do, and charging before the money lands is the one
    mistake this class exists to avoid. Public holidays are not known here and are not skipped.
    """
    start = earliest.astimezone(zone).date()
    year, month = start.year, start.month
    for _ in range(4):
        for day in paydays(year, month):
            if day < start:
                continue
            slot = _local(day, PAYDAY_MORNING, zone)
            if slot >= earliest:
                return slot
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise AssertionError("Every month has paydays.")  # pragma: no cover


def paydays(year: int, month: int) -> list[dt.date]:
    """The month's paydays, each on a business day, in order."""
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    while last.weekday() not in BUSINESS_DAYS:
        last -= dt.timedelta(days=1)
    days = {_on_or_after_business_day(dt.date(year, month, 1)), _on_or_after_business_day(dt.date(year, month, 15))}
    return sorted({*days, last})


def next_business_moment(earliest: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """`earliest` itself when it falls on a weekday between 08:00 and 20:00 in the customer's zone, else
    the next opening. Local wall-clock times, so DST changes are honoured."""
    local = earliest.astimezone(zone)
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        if day.weekday() not in BUSINESS_DAYS:
            continue
        opening, closing = _local(day, DAY_OPENS, zone), _local(day, DAY_CLOSES, zone)
        if earliest < closing:
            return max(earliest, opening)
    raise AssertionError("Every week has business days.")  # pragma: no cover


def _on_or_after_business_day(day: dt.date) -> dt.date:
    while day.weekday() not in BUSINESS_DAYS:
        day += dt.timedelta(days=1)
    return day


def _local(day: dt.date, time: dt.time, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The UTC instant of a local wall-clock time (PEP 495 fold=0: a skipped time maps past the jump)."""
    return dt.datetime.combine(day, time, tzinfo=zone).astimezone(dt.UTC)


def _when(moment: dt.datetime, zone: zoneinfo.ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%A} {local.day} {local:%B %Y at %H:%M} ({zone.key})"


def _brand(card_brand: str | None) -> str:
    return (card_brand or "").strip().lower().replace(" ", "")


def _brand_name(brand: str) -> str:
    return {"visa": "Visa", "mastercard": "Mastercard"}.get(brand, brand or "card")


def _network_code(code: str | None) -> str:
    """Network codes arrive as "5", "05" or "r0" depending on the gateway; the table uses "05", "R0"."""
    code = (code or "").strip().upper()
    return code.zfill(2) if code.isdigit() else code
