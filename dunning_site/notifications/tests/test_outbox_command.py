"""`manage.py outbox`: what is held back by the contact rules, and until when (make run prints it)."""

import datetime as dt
import io

import pytest
import time_machine
from django.core.management import call_command

from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications.management.commands.outbox import NOTHING_HELD
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import message_deliver, messages_create

pytestmark = pytest.mark.django_db

# Sunday 29 November 2026, 21:30 in Berlin: past the contact hours, and a Sunday.
SUNDAY_EVENING = dt.datetime(2026, 11, 29, 20, 30, tzinfo=dt.UTC)


def queued_email(customer, key: str) -> Message:
    (message,) = messages_create(
        [
            Message(
                customer=customer,
                channel="email",
                to_address=customer.email,
                subject="Your invoice is overdue",
                body="Please pay.\n",
                idempotency_key=key,
            )
        ]
    )
    return message


def outbox() -> str:
    out = io.StringIO()
    call_command("outbox", stdout=out)
    return out.getvalue()


@time_machine.travel(SUNDAY_EVENING, tick=False)
def test_it_says_which_messages_the_contact_hours_hold_and_until_when():
    berlin = CustomerFactory(time_zone="Europe/Berlin", email="jurgen@example.de")
    tokyo = CustomerFactory(time_zone="Asia/Tokyo", email="aiko@example.jp")
    for number, customer in enumerate([berlin, berlin, tokyo]):
        message = queued_email(customer, f"held:{number}")
        assert message_deliver(message_id=message.pk) == "deferred"

    report = outbox()

    assert report.splitlines() == [
        "Outbox at Sun 29 Nov 20:30 UTC: 0 sent, 0 failed, 0 due now, 3 held by the contact rules, "
        "0 drafts waiting for a collector.",
        # Monday 08:00 in Tokyo is Sunday 23:00 UTC; in Berlin, Monday 07:00 UTC.
        "  3 held: Outside the customer's contact hours; the first goes at Sun 29 Nov 23:00 UTC.",
    ]


@time_machine.travel(dt.datetime(2026, 11, 30, 9, 30, tzinfo=dt.UTC), tick=False)
def test_it_says_when_nothing_is_held():
    message = queued_email(CustomerFactory(time_zone="Europe/Berlin"), "monday")
    assert message_deliver(message_id=message.pk) == "sent"

    assert outbox().splitlines()[1:] == [NOTHING_HELD]
    assert "1 sent, 0 failed, 0 due now, 0 held" in outbox()
