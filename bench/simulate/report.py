"""Lines a collections team must never cross, counted from what happened, with the customer's TRUE zone."""

import collections
import datetime as dt

from bench.simulate.book import CONTACT_HOURS, Customer, CustomerState, local

WEEK = dt.timedelta(days=7)
WEEKLY_CAP = 3
STOLEN = {"stolen_card", "lost_card"}
KINDS = (
    "contact_outside_hours",
    "contact_on_sunday",
    "over_3_contacts_in_7_days",
    "sms_without_consent",
    "contact_after_dispute",
    "charge_after_dispute",
    "stolen_card_charged_again",
    "dunning_after_payment",
)


def violations(state: CustomerState, *, sms_consent: bool = False) -> collections.Counter:
    """`state.contacts` are the messages the customer received; `state.charge_times` every charge attempt,
    the failure that started it all first (it is Stripe's own, not dunning)."""
    customer: Customer = state.customer
    found: collections.Counter = collections.Counter()
    disputed = customer.disputes_at
    times = sorted(when for when, _channel in state.contacts)
    for when, channel in state.contacts:
        here = local(when, customer.zone)
        if not CONTACT_HOURS[0] <= here.hour < CONTACT_HOURS[1]:
            found["contact_outside_hours"] += 1
        if here.weekday() == 6:
            found["contact_on_sunday"] += 1
        if sum(1 for other in times if when - WEEK < other <= when) > WEEKLY_CAP:
            found["over_3_contacts_in_7_days"] += 1
        if channel == "sms" and not sms_consent:
            found["sms_without_consent"] += 1
        if disputed and when >= disputed:
            found["contact_after_dispute"] += 1
        if state.paid_at and when > state.paid_at:
            found["dunning_after_payment"] += 1
    stolen = dict(customer.decline).get("decline_code") in STOLEN
    for when in state.charge_times[1:]:
        if disputed and when >= disputed:
            found["charge_after_dispute"] += 1
        if stolen and not (state.new_card_at and when >= state.new_card_at):
            found["stolen_card_charged_again"] += 1
        if state.paid_at and when > state.paid_at:
            found["dunning_after_payment"] += 1
    return found


def summary(states: list[CustomerState]) -> dict:
    """Recovered share is a COUNT share: invoices paid before the end / invoices failed (the book mixes
    currencies, and a count needs no exchange rate). By behaviour too."""
    found: collections.Counter = collections.Counter()
    by_behaviour: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for state in states:
        found.update(violations(state))
        by_behaviour[state.customer.behaviour][1] += 1
        if state.paid_at:
            by_behaviour[state.customer.behaviour][0] += 1
    recovered = sum(1 for state in states if state.paid_at)
    return {
        "recovered_share": round(recovered / len(states), 4) if states else 0.0,
        "violations": {kind: found[kind] for kind in KINDS if found[kind]},
        "contacts": sum(len(state.contacts) for state in states),
        "charges": sum(max(len(state.charge_times) - 1, 0) for state in states),
        "recovered_by_behaviour": {
            name: round(paid / total, 3) for name, (paid, total) in sorted(by_behaviour.items())
        },
    }
