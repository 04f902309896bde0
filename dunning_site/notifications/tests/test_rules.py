"""Contact days that allow no moment never hold a message for ever (issue 9).

The model's validator refuses them (see test_admin.py), but a row written around it (raw SQL, an old
row, a fixture) used to make every delivery attempt raise "No contact day is allowed by these rules",
and each message keeps its own rules, so it stayed queued for good. Such days now give way to the
safe ones, Monday to Saturday, with every other rule still applied.
"""

import datetime as dt
import logging

import pytest
import time_machine
from django.core import mail

from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications.models import ContactRules, Message
from dunning_site.notifications.rules import OUTSIDE_HOURS, SAFE_CONTACT_DAYS, Recipient, Rules, decide
from dunning_site.notifications.services import messages_create

# Sunday 1 March 2026, 12:00 UTC (13:00 in Paris); the safe days open again on Monday at 08:00 Paris.
SUNDAY_NOON = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
MONDAY_OPENING = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC)
UNUSABLE_DAYS = {
    "not weekdays": [9, -1],
    "an object": {"a": 1},
    "words": ["x"],
    "no day": [],
    "200,000 entries": [day % 7 for day in range(200_000)],
    "a number": 3,
    "null": None,
}
unusable_days = pytest.mark.parametrize("days", UNUSABLE_DAYS.values(), ids=UNUSABLE_DAYS.keys())
PARIS_CUSTOMER = Recipient(time_zone="Europe/Paris")


@unusable_days
def test_unusable_days_give_way_to_monday_to_saturday_and_are_logged(days, caplog):
    with caplog.at_level(logging.WARNING, logger="dunning_site.notifications.rules"):
        rules = Rules(window_start=dt.time(9), window_end=dt.time(17), contact_days=days)
    assert rules.contact_days == SAFE_CONTACT_DAYS == (0, 1, 2, 3, 4, 5)
    (record,) = caplog.records
    assert "Monday to Saturday are used instead" in record.getMessage()
    decision = decide(channel="email", now=SUNDAY_NOON, rules=rules, recipient=PARIS_CUSTOMER, recent=[])
    # The other rules still hold: the window opens at 09:00 Paris time.
    assert decision.defer_until == MONDAY_OPENING + dt.timedelta(hours=1)
    assert decision.reason == OUTSIDE_HOURS % {
        "start": "09:00",
        "end": "17:00",
        "days": "Mon–Sat",
        "zone": "Europe/Paris",
    }


def test_usable_days_are_kept_in_weekday_order(caplog):
    assert Rules(contact_days=[6, 2, 0]).contact_days == (0, 2, 6)
    assert caplog.records == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "days", [value for value in UNUSABLE_DAYS.values() if value is not None], ids=list(UNUSABLE_DAYS)[:-1]
)
def test_a_message_under_days_saved_around_the_validator_goes_at_the_next_safe_moment(
    days, run_jobs, django_capture_on_commit_callbacks
):
    rules = ContactRules.objects.create(name="Every day", contact_days=[0, 1, 2, 3, 4, 5, 6])
    ContactRules.objects.filter(pk=rules.pk).update(contact_days=days)  # around the validator
    customer = CustomerFactory(email="ada@customer.example", time_zone="Europe/Paris")
    with time_machine.travel(SUNDAY_NOON, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            (message,) = messages_create(
                [
                    Message(
                        customer=customer,
                        channel="email",
                        to_address=customer.email,
                        subject="Your invoice INV-1 is overdue",
                        body="Please pay €120.00.\n",
                        contact_rules=rules,
                        idempotency_key="rules:1",
                    )
                ]
            )
        run_jobs()
        message.refresh_from_db()
        assert (message.status, message.send_after, message.attempts) == (Message.Status.QUEUED, MONDAY_OPENING, 0)
        assert "Mon–Sat" in message.deferred_reason
        assert mail.outbox == []
        clock.move_to(MONDAY_OPENING)
        run_jobs()
    message.refresh_from_db()
    assert (message.status, message.sent_at, message.attempts) == (Message.Status.SENT, MONDAY_OPENING, 1)
    assert len(mail.outbox) == 1
