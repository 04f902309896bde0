"""The contact rules hold at send time whatever the schedule, the customer's zone, the caps and the consents.

The property test draws a customer (a zone with or without DST, on either hemisphere, or with an odd
offset), their contact rules, consents, an opt-out or a do-not-contact flag that may arrive in the middle
of the schedule, and 1–8 messages due around a DST change. It then plays the delivery worker: always the
queued message due first, the clock moved to it (a little late, sometimes, as a real worker is), one
`message_deliver` call through the real transports. Whatever was drawn, no message goes out outside the
contact window, over a cap, by SMS without consent, by email after an opt-out or to a customer who must not
be contacted, and every message ends sent, or cancelled with a reason that forbids it for good: none is
lost, none waits forever.

The examples after it pin the decisions of `rules.decide` people reason about.
"""

import dataclasses
import datetime as dt
import itertools
import os
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import pytest
import time_machine
from django.core import mail
from django.db import transaction
from hypothesis import HealthCheck, event, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dunning_site.accounts.models import Channel, Consent, Customer
from dunning_site.accounts.services import consent_record
from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications import rules, sms
from dunning_site.notifications.models import ContactRules, Message
from dunning_site.notifications.rules import Decision, Recipient, Rules, decide, next_window_opening
from dunning_site.notifications.services import message_deliver

UTC = dt.UTC
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
ZONES = [
    "Europe/Paris",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",  # DST on the other hemisphere: forward in October, back in April
    "Asia/Kolkata",  # +05:30, no DST
    "Pacific/Chatham",  # +12:45/+13:45, changing at 02:45/03:45 local
    "America/St_Johns",  # -03:30/-02:30
    "Asia/Tokyo",
    "UTC",
]
# 2026's DST changes: US forward, EU forward, AU/NZ back, NZ forward, AU forward, EU back, US back.
DST_CHANGES = [
    dt.date(2026, 3, 8),
    dt.date(2026, 3, 29),
    dt.date(2026, 4, 5),
    dt.date(2026, 9, 27),
    dt.date(2026, 10, 4),
    dt.date(2026, 10, 25),
    dt.date(2026, 11, 1),
]


def dst_changes_in_2026(name: str) -> list[dt.datetime]:
    """The instants the zone's UTC offset changes in 2026, found by walking the year in quarter hours."""
    zone, step = zoneinfo.ZoneInfo(name), dt.timedelta(minutes=15)
    moment, changes = dt.datetime(2026, 1, 1, tzinfo=UTC), []
    offset = moment.astimezone(zone).utcoffset()
    while moment.year == 2026:
        moment += step
        if (new_offset := moment.astimezone(zone).utcoffset()) != offset:
            changes.append(moment)
            offset = new_offset
    return changes


# A zone's own changes when it has any: a schedule around the EU's change says little about Sydney.
CHANGES_BY_ZONE = {
    name: dst_changes_in_2026(name) or [dt.datetime.combine(day, dt.time(), tzinfo=UTC) for day in DST_CHANGES]
    for name in ZONES
}
DELIVERABLE_CHANNELS = [Channel.EMAIL, Channel.SMS, Channel.CALL, Channel.LETTER]
POSTAL_ADDRESS = "Ada Lovelace\n12 rue de la Paix\n75002 Paris\nFrance"
PHONE = "+33612345678"
# A generous bound: 8 messages under a cap of one a week need about 45 rounds.
MAX_ROUNDS = 200
MINUTES_A_DAY = 24 * 60

# CI runs the same examples on every run (derandomize): a red build then always points at the change under
# test, never at an example drawn for the first time that day, and nothing is written to .hypothesis/.
# To hunt for new failures, run fresh random examples: DUNNING_HYPOTHESIS_EXPLORE=1000 pytest <this file>.
EXPLORE_EXAMPLES = int(os.environ.get("DUNNING_HYPOTHESIS_EXPLORE", "0"))
PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=EXPLORE_EXAMPLES or 60,
    derandomize=not EXPLORE_EXAMPLES,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclasses.dataclass(frozen=True)
class OnTheCustomersClock:
    """A wall-clock time in the customer's zone, `days` after the start's local date. Lands due times on
    the edges of the window and inside the hour a DST change skips or repeats (`fold` picks which)."""

    days: int
    time: dt.time


@dataclasses.dataclass(frozen=True)
class PlannedMessage:
    channel: str
    due: int | OnTheCustomersClock  # an int: minutes after the start


@dataclasses.dataclass(frozen=True)
class Scenario:
    time_zone: str
    window_start: int  # hours, local
    window_end: int
    contact_days: frozenset[int]
    max_contacts_per_week: int
    max_calls_per_week: int
    sms_consent: bool | None  # None: the customer never said
    email_opt_out_after: int | None  # minutes after the start; 0: opted out before anything was sent
    do_not_contact_after: int | None
    worker_lateness: dt.timedelta
    start: dt.datetime
    messages: tuple[PlannedMessage, ...]

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def moment(self, minutes: int | None) -> dt.datetime | None:
        return None if minutes is None else self.start + dt.timedelta(minutes=minutes)

    def due(self, planned: PlannedMessage) -> dt.datetime:
        if isinstance(planned.due, int):
            return self.moment(planned.due)
        day = self.start.astimezone(self.zone).date() + dt.timedelta(days=planned.due.days)
        return dt.datetime.combine(day, planned.due.time, tzinfo=self.zone).astimezone(UTC)


@st.composite
def sometimes_after_start(draw) -> int | None:
    """Mostly never (it cancels much of the schedule); else from the start, or during the schedule."""
    chance = draw(st.integers(0, 9))
    if chance < 7:
        return None
    return 0 if chance == 7 else draw(st.integers(1, 14 * MINUTES_A_DAY))


@st.composite
def scenarios(draw) -> Scenario:
    window_start = draw(st.integers(0, 22))
    window_end = draw(st.integers(window_start + 1, 23))
    time_zone = draw(st.sampled_from(ZONES))
    # Up to three days before a DST change of the zone (the schedule then runs across it), or a day after.
    start = draw(st.sampled_from(CHANGES_BY_ZONE[time_zone])) - dt.timedelta(
        minutes=draw(st.integers(-MINUTES_A_DAY, 3 * MINUTES_A_DAY))
    )
    # The window's edges to the second (a second before it opens, as it opens, a second before it closes,
    # as it closes) and the hours DST changes skip or repeat, as well as any time at all.
    edges = [dt.time(window_start), dt.time(window_end), dt.time(window_end - 1, 59, 59)]
    if window_start:
        edges.append(dt.time(window_start - 1, 59, 59))
    edges += [dt.time(2, 30), dt.time(3, 0), dt.time(3, 15)]
    any_time = st.builds(
        dt.time, hour=st.integers(0, 23), minute=st.one_of(st.just(0), st.integers(0, 59)), second=st.just(0)
    )
    wall_clock = st.builds(
        OnTheCustomersClock,
        days=st.integers(0, 6),
        time=st.builds(lambda time, fold: time.replace(fold=fold), st.sampled_from(edges) | any_time, st.booleans()),
    )
    planned = st.builds(
        PlannedMessage,
        channel=st.sampled_from(DELIVERABLE_CHANNELS),
        # Bunched (several due together, or within hours), spread over two weeks, or on the customer's clock.
        due=st.one_of(st.integers(0, 180), st.integers(0, 14 * MINUTES_A_DAY), wall_clock),
    )
    return Scenario(
        time_zone=time_zone,
        window_start=window_start,
        window_end=window_end,
        contact_days=draw(st.frozensets(st.integers(0, 6), min_size=1)),
        max_contacts_per_week=draw(st.integers(1, 4)),
        max_calls_per_week=draw(st.integers(1, 7)),
        sms_consent=draw(st.sampled_from([True, None, False, True])),
        email_opt_out_after=draw(sometimes_after_start()),
        do_not_contact_after=draw(sometimes_after_start()),
        worker_lateness=dt.timedelta(seconds=draw(st.sampled_from([0, 0, 0, 1, 90, 20 * 60]))),
        start=start,
        # Drawn length rather than st.lists: lists stay short by default, and caps need several messages.
        messages=tuple(draw(planned) for _ in range(draw(st.integers(1, 8)))),
    )


def opt_out_of_email(customer: Customer) -> None:
    consent_record(customer=customer, channel=Channel.EMAIL, granted=False, source=Consent.Source.UNSUBSCRIBE)


def forbid_contact(customer: Customer) -> None:
    Customer.objects.filter(pk=customer.pk).update(do_not_contact=True, do_not_contact_reason="legal_hold")


def address_for(customer: Customer, channel: str) -> str:
    if channel == Channel.EMAIL:
        return customer.email
    if channel == Channel.LETTER:
        return customer.postal_address
    return customer.phone


_keys = itertools.count(1)


Change = tuple[dt.datetime, Callable[[Customer], None]]


def set_up(scenario: Scenario) -> tuple[Customer, list[Change]]:
    """The customer, their rules and messages; returns the changes that arrive later, in time order."""
    customer = CustomerFactory(time_zone=scenario.time_zone, phone=PHONE, postal_address=POSTAL_ADDRESS)
    if scenario.sms_consent is not None:
        consent_record(customer=customer, channel=Channel.SMS, granted=scenario.sms_consent, source="signup")
    later = []
    for minutes, change in [
        (scenario.email_opt_out_after, opt_out_of_email),
        (scenario.do_not_contact_after, forbid_contact),
    ]:
        if minutes == 0:
            change(customer)
        elif minutes is not None:
            later.append((scenario.moment(minutes), change))
    contact_rules = ContactRules.objects.create(
        name=f"Property rules {next(_keys)}",
        window_start=dt.time(scenario.window_start),
        window_end=dt.time(scenario.window_end),
        contact_days=sorted(scenario.contact_days),
        max_contacts_per_week=scenario.max_contacts_per_week,
        max_calls_per_week=scenario.max_calls_per_week,
    )
    for planned in scenario.messages:
        Message.objects.create(
            customer=customer,
            channel=planned.channel,
            to_address=address_for(customer, planned.channel),
            subject="Your invoice INV-1 is overdue",
            body="Please pay EUR 120.00 at your earliest convenience.\n",
            idempotency_key=f"property:{next(_keys)}",
            send_after=scenario.due(planned),
            contact_rules=contact_rules,
        )
    return customer, sorted(later, key=lambda pair: pair[0])


def run_delivery_worker(
    customer: Customer, scenario: Scenario, changes: list[Change], traveller: time_machine.Traveller
) -> dict[int, dt.datetime]:
    """Deliver the queued message due first, again and again, as the worker would; a change to the
    customer (an opt-out, a do-not-contact flag) lands at its moment, before the deliveries due then.
    Returns each message's first `send_after`."""
    first_due = dict(Message.objects.filter(customer=customer).values_list("pk", "send_after"))
    clock = scenario.start
    for _ in range(MAX_ROUNDS):
        message = Message.objects.filter(customer=customer, status=Message.Status.QUEUED).order_by("send_after", "pk")
        message = message.first()
        if message is None:
            return first_due
        due = max(clock, message.send_after + scenario.worker_lateness)
        while changes and changes[0][0] <= due:
            at, change = changes.pop(0)
            traveller.move_to(at)
            change(customer)
            note(f"{at:%Y-%m-%d %H:%M:%S} UTC: {change.__name__}")
        assert due >= clock, "the worker's clock went backwards"
        traveller.move_to(due)
        clock = due
        if due.astimezone(scenario.zone).time() == dt.time(scenario.window_end):
            event("delivery tried the instant the window closed")
        outcome = message_deliver(message_id=message.pk)
        held_until = message.send_after
        message.refresh_from_db()
        note(f"{due:%Y-%m-%d %H:%M:%S} UTC: {message.channel} #{message.pk} {outcome} {message.deferred_reason}")
        assert outcome in ("sent", "deferred", "cancelled"), outcome
        if outcome == "deferred":
            assert message.status == Message.Status.QUEUED
            assert message.send_after > due >= held_until, "a deferral moved the message earlier"
            assert message.deferred_reason, "a message was held without saying why"
            event(f"deferred: {message.deferred_reason.split(' ')[0]}")  # "Outside", "Already"
    pytest.fail(f"Messages still queued after {MAX_ROUNDS} deliveries: lost in a loop of deferrals")


def in_force(since: dt.datetime | None, at: dt.datetime) -> bool:
    return since is not None and at >= since


def reason_it_can_never_go(message: Message, scenario: Scenario) -> str | None:
    """The reason the rules must give for cancelling this message at its cancellation, if any."""
    at = message.cancelled_at
    if in_force(scenario.moment(scenario.do_not_contact_after), at):
        return rules.DO_NOT_CONTACT % {"reason": "Legal hold"}
    if message.channel == Channel.EMAIL and in_force(scenario.moment(scenario.email_opt_out_after), at):
        return rules.OPTED_OUT % {"channel": "Email"}
    if message.channel == Channel.SMS and scenario.sms_consent is False:
        return rules.OPTED_OUT % {"channel": "SMS"}
    if message.channel == Channel.SMS and scenario.sms_consent is None:
        return rules.NO_SMS_CONSENT
    return None


def assert_rules_held(customer: Customer, scenario: Scenario, first_due: dict[int, dt.datetime]) -> None:
    zone = scenario.zone
    messages = list(Message.objects.filter(customer=customer).order_by("pk"))
    for message in messages:
        assert message.status in (Message.Status.SENT, Message.Status.CANCELLED), f"#{message.pk} {message.status}"
    sent = [message for message in messages if message.status == Message.Status.SENT]
    describe(scenario, messages)

    for message in sent:
        local = message.claimed_at.astimezone(zone)
        assert local.weekday() in scenario.contact_days, f"#{message.pk} sent on a day off: {local}"
        assert dt.time(scenario.window_start) <= local.time() < dt.time(scenario.window_end), (
            f"#{message.pk} sent outside {scenario.window_start}:00–{scenario.window_end}:00: {local}"
        )
        assert message.claimed_at >= first_due[message.pk], f"#{message.pk} sent before it was due"
        assert message.provider_message_id
        is_call = message.channel == Channel.CALL
        cap = scenario.max_calls_per_week if is_call else scenario.max_contacts_per_week
        in_the_week = [
            other
            for other in sent
            if (other.channel == Channel.CALL) == is_call
            and message.claimed_at - rules.WEEK < other.claimed_at <= message.claimed_at
        ]
        assert len(in_the_week) <= cap, f"#{message.pk}: {len(in_the_week)} {message.channel}s in 7 days, cap {cap}"
        assert message.channel != Channel.SMS or scenario.sms_consent is True, f"#{message.pk}: SMS without consent"
        assert not in_force(scenario.moment(scenario.do_not_contact_after), message.claimed_at), (
            f"#{message.pk} sent to a customer who must not be contacted"
        )
        if message.channel == Channel.EMAIL:
            assert not in_force(scenario.moment(scenario.email_opt_out_after), message.claimed_at), (
                f"#{message.pk}: email after an opt-out"
            )

    for message in messages:
        if message.status == Message.Status.CANCELLED:
            assert message.error, f"#{message.pk} cancelled without a reason"
            assert message.error == reason_it_can_never_go(message, scenario), (
                f"#{message.pk} cancelled although it could still go out later: {message.error}"
            )

    # What the records say went out is what the transports received.
    assert len(mail.outbox) == sum(message.channel == Channel.EMAIL for message in sent)
    assert len(sms.outbox) == sum(message.channel == Channel.SMS for message in sent)
    for message in sent:
        if message.channel == Channel.LETTER:
            assert message.letter and Path(message.letter.path).is_file()


def on_a_dst_change_day(moment: dt.datetime, zone: zoneinfo.ZoneInfo) -> bool:
    day = moment.astimezone(zone).date()
    midnight, next_midnight = (dt.datetime.combine(day + dt.timedelta(days=n), dt.time(), tzinfo=zone) for n in (0, 1))
    return midnight.utcoffset() != next_midnight.utcoffset()


def describe(scenario: Scenario, messages: list[Message]) -> None:
    """What the example exercised (pytest --hypothesis-show-statistics), to check the strategies reach
    the cases that matter: sends on DST days and at the window's edges, each kind of cancellation."""
    for message in messages:
        if message.status == Message.Status.CANCELLED:
            event(f"cancelled: {message.error.split(' (')[0]}")
            continue
        event(f"sent: {message.channel}")
        local = message.claimed_at.astimezone(scenario.zone)
        if on_a_dst_change_day(message.claimed_at, scenario.zone):
            event("sent on the day of a DST change in the customer's zone")
        if local.time() == dt.time(scenario.window_start):
            event("sent the instant the window opened")
        if local.time() >= dt.time(scenario.window_end - 1, 59):
            event("sent in the window's last minute")


@pytest.fixture
def real_transports(settings, tmp_path):
    """Set once per test, not per example: each assignment to `settings` stacks an override until the
    test ends, and a thousand examples would stack them deeper than Python recurses."""
    settings.SMS_BACKEND = "dunning_site.notifications.sms.LocmemBackend"
    settings.MEDIA_ROOT = str(tmp_path)  # letters write their PDFs there


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(scenario=scenarios())
def test_no_message_breaks_the_contact_rules_and_none_is_lost(scenario, real_transports):
    mail.outbox.clear()
    sms.outbox.clear()
    # Examples share the test's transaction: each rolls its rows back.
    with time_machine.travel(scenario.start, tick=False) as traveller, transaction.atomic():
        customer, changes = set_up(scenario)
        first_due = run_delivery_worker(customer, scenario, changes, traveller)
        assert_rules_held(customer, scenario, first_due)
        transaction.set_rollback(True)


# --- Examples -------------------------------------------------------------------------------------------

ANYONE = Recipient(time_zone="Europe/Paris")
DEFAULT_RULES = Rules()  # 08:00–20:00, Monday to Saturday, 3 contacts and 7 calls a week
EVERY_DAY = Rules(contact_days=(0, 1, 2, 3, 4, 5, 6))


def paris(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS)


def email_now(now: dt.datetime, *, rules_: Rules = DEFAULT_RULES, recent=()) -> Decision:
    return decide(channel=Channel.EMAIL, now=now, rules=rules_, recipient=ANYONE, recent=list(recent))


def test_a_message_due_at_3am_in_paris_waits_for_8am_the_same_day():
    decision = email_now(paris(2026, 3, 3, 3, 0))  # a Tuesday
    assert decision == Decision(
        send=False,
        defer_until=paris(2026, 3, 3, 8, 0),
        reason=rules.OUTSIDE_HOURS % {"start": "08:00", "end": "20:00", "days": "Mon–Sat", "zone": "Europe/Paris"},
    )
    assert decision.defer_until == dt.datetime(2026, 3, 3, 7, 0, tzinfo=UTC)


def test_a_saturday_evening_message_waits_for_monday_morning_when_sundays_are_off():
    decision = email_now(paris(2026, 3, 7, 21, 30))  # Saturday, after the window closed
    assert decision.defer_until == paris(2026, 3, 9, 8, 0)


def test_the_window_is_wall_clock_time_across_the_eu_spring_forward_night():
    # 08:00 in Paris is 07:00 UTC on Saturday 28 March 2026 and 06:00 UTC on Sunday 29 March.
    assert next_window_opening(paris(2026, 3, 28, 22, 0), PARIS, EVERY_DAY) == dt.datetime(2026, 3, 29, 6, tzinfo=UTC)
    decision = email_now(dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC), rules_=EVERY_DAY)  # 03:30 CEST
    assert decision.defer_until == dt.datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert decision.defer_until.astimezone(PARIS).time() == dt.time(8)


def test_a_window_opening_inside_the_skipped_hour_opens_after_the_jump():
    # 02:00 does not exist in Paris on 29 March 2026: the window opens at 03:00 CEST, the jump itself.
    rules_ = Rules(window_start=dt.time(2), window_end=dt.time(6), contact_days=EVERY_DAY.contact_days)
    opening = next_window_opening(dt.datetime(2026, 3, 28, 23, 0, tzinfo=UTC), PARIS, rules_)
    assert opening == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert opening.astimezone(PARIS).time() == dt.time(3)


@pytest.mark.parametrize(
    ("zone_name", "window_end", "now", "local_now"),
    [
        # Chatham jumps from 02:45 to 03:45 on 27 September 2026 (14:00 UTC on the 26th): 03:00 is skipped.
        ("Pacific/Chatham", dt.time(3), dt.datetime(2026, 9, 26, 14, 5, tzinfo=UTC), dt.time(3, 50)),
        # Paris jumps from 02:00 to 03:00 on 29 March 2026; the model allows windows ending on the half hour.
        ("Europe/Paris", dt.time(2, 30), dt.datetime(2026, 3, 29, 1, 10, tzinfo=UTC), dt.time(3, 10)),
    ],
)
def test_a_window_ending_in_the_skipped_hour_is_closed_once_the_clocks_jump(zone_name, window_end, now, local_now):
    """After the jump the local time is past the window's end, so the message waits for the next day.

    A skipped wall time read with fold=0 lands the gap's length after the jump, which kept the window
    open past its end until then; `rules._local` now maps it to the jump itself."""
    zone = zoneinfo.ZoneInfo(zone_name)
    assert now.astimezone(zone).time() == local_now
    rules_ = Rules(window_start=dt.time(0), window_end=window_end, contact_days=EVERY_DAY.contact_days)
    decision = decide(channel=Channel.EMAIL, now=now, rules=rules_, recipient=Recipient(time_zone=zone_name), recent=[])
    assert not decision.send, f"sent at {local_now} local although the window closes at {window_end}"
    next_midnight = dt.datetime.combine(now.astimezone(zone).date() + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    assert decision.defer_until == next_midnight


def test_a_fourth_email_in_seven_days_waits_until_the_oldest_leaves_the_window():
    sent = [paris(2026, 3, 2, 9, 0), paris(2026, 3, 3, 9, 0), paris(2026, 3, 4, 9, 0)]  # Monday to Wednesday
    decision = email_now(paris(2026, 3, 5, 10, 0), recent=[(Channel.EMAIL, at) for at in sent])
    # A second after Monday's email turns 7 days old; 09:00 is inside the window, so no further wait.
    assert decision.defer_until == paris(2026, 3, 9, 9, 0, 1)
    assert decision.reason == rules.OVER_CONTACT_CAP % {"count": 3, "cap": 3}


def test_sms_and_letters_share_the_cap_with_emails():
    recent = [(Channel.SMS, paris(2026, 3, 2, 9, 0)), (Channel.LETTER, paris(2026, 3, 3, 9, 0))]
    recent.append((Channel.EMAIL, paris(2026, 3, 4, 9, 0)))
    assert not email_now(paris(2026, 3, 5, 10, 0), recent=recent).send


def test_calls_are_not_counted_against_the_email_cap_nor_emails_against_the_call_cap():
    calls = [(Channel.CALL, paris(2026, 3, 2, 9 + hour, 0)) for hour in range(5)]
    emails = [(Channel.EMAIL, paris(2026, 3, 3, 9 + hour, 0)) for hour in range(2)]
    now = paris(2026, 3, 5, 10, 0)
    assert email_now(now, recent=calls + emails).send
    tight = Rules(max_contacts_per_week=1, max_calls_per_week=1)
    call = decide(channel=Channel.CALL, now=now, rules=tight, recipient=ANYONE, recent=emails)
    assert call == rules.SEND
    assert not decide(channel=Channel.CALL, now=now, rules=tight, recipient=ANYONE, recent=calls).send
