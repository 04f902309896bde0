"""A customer whose zone is a guess is contacted only at hours that are daytime in every zone they
may be in (issue 10): through the outbox, across both hemispheres' DST changes.

America/New_York and Australia/Sydney change their clocks in opposite seasons, on different
Sundays, and Sydney's Saturday evening is New York's Saturday morning while Sydney's Sunday
morning is New York's Saturday evening: the shared window moves between 2 and 4 hours wide. Each
case checks the moment chosen against a minute-by-minute search for the first one that is within
08:00–20:00, Monday to Saturday, in both zones."""

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.core import mail

from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications.models import Message
from dunning_site.notifications.rules import NO_COMMON_HOURS
from dunning_site.notifications.services import messages_create

pytestmark = pytest.mark.django_db

ZONES = ["America/New_York", "Australia/Sydney"]
MOMENTS = {
    # US clocks go forward on Sunday 8 March 2026 (Sydney still on summer time, UTC+11).
    "before the US spring change": dt.datetime(2026, 3, 6, 23, 30, tzinfo=dt.UTC),
    "US spring change weekend": dt.datetime(2026, 3, 8, 6, 0, tzinfo=dt.UTC),
    # Sydney's clocks go back on Sunday 5 April 2026, 03:00 → 02:00.
    "Sydney autumn change weekend": dt.datetime(2026, 4, 4, 10, 0, tzinfo=dt.UTC),
    "just after Sydney's change": dt.datetime(2026, 4, 5, 16, 0, tzinfo=dt.UTC),
    # Sydney's clocks go forward on Sunday 4 October 2026.
    "Sydney spring change weekend": dt.datetime(2026, 10, 3, 12, 0, tzinfo=dt.UTC),
    # US clocks go back on Sunday 1 November 2026.
    "US autumn change weekend": dt.datetime(2026, 10, 31, 23, 0, tzinfo=dt.UTC),
    "Monday after the US change": dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC),
}


def allowed(moment: dt.datetime) -> bool:
    for zone in ZONES:
        local = moment.astimezone(zoneinfo.ZoneInfo(zone))
        if local.weekday() == 6 or not dt.time(8) <= local.time() < dt.time(20):
            return False
    return True


def first_allowed(moment: dt.datetime) -> dt.datetime:
    moment = moment.replace(second=0, microsecond=0)
    while not allowed(moment):
        moment += dt.timedelta(minutes=1)
    return moment


def email(customer, key="guess:1") -> Message:
    (message,) = messages_create(
        [
            Message(
                customer=customer,
                channel="email",
                to_address=customer.email,
                subject="Your invoice INV-1 is overdue",
                body="Please pay $120.00.\n",
                idempotency_key=key,
            )
        ]
    )
    return message


@pytest.mark.parametrize("now", MOMENTS.values(), ids=MOMENTS.keys())
def test_a_guessed_zone_gets_the_first_moment_that_is_daytime_in_every_candidate(
    now, run_jobs, django_capture_on_commit_callbacks
):
    customer = CustomerFactory(
        email="ada@customer.example",
        time_zone="America/New_York",
        time_zone_source="address",
        time_zone_candidates=ZONES,
    )
    expected = first_allowed(now)
    with time_machine.travel(now, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            message = email(customer)
        run_jobs()
        message.refresh_from_db()
        if expected == now:
            assert message.status == "sent"
        else:
            assert (message.status, message.send_after) == ("queued", expected)
            assert "America/New_York, Australia/Sydney" in message.deferred_reason
            clock.move_to(expected)
            run_jobs()
            message.refresh_from_db()
            assert message.status == "sent"
    assert message.sent_at == expected and allowed(message.sent_at)
    assert len(mail.outbox) == 1


def test_zones_with_no_daytime_in_common_hold_the_message_and_say_to_set_the_zone(
    run_jobs, django_capture_on_commit_callbacks
):
    zones = ["Pacific/Kiritimati", "Africa/Johannesburg"]  # UTC+14 and UTC+2: one closes as the other opens
    customer = CustomerFactory(
        email="ada@customer.example", time_zone=zones[0], time_zone_source="phone", time_zone_candidates=zones
    )
    with time_machine.travel(MOMENTS["US spring change weekend"], tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            message = email(customer)
        run_jobs()
    message.refresh_from_db()
    assert message.status == "queued"
    assert message.deferred_reason == NO_COMMON_HOURS % {"zones": ", ".join(zones)}
    assert mail.outbox == []
