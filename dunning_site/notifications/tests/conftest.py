"""Fixtures for the delivery tests."""

import datetime as dt

import pytest

from dunning_site.notifications.models import Message
from dunning_site.notifications.services import DELIVERY_BACKOFF


@pytest.fixture
def deliver_all(run_jobs):
    """Run the workers, then move `clock` (a time-machine traveller) to the next attempt of the
    messages still waiting, until none waits: every retry the backoff allows, in order."""

    def run(clock) -> None:
        for _ in range(len(DELIVERY_BACKOFF) + 2):
            run_jobs()
            waiting = Message.objects.filter(status=Message.Status.QUEUED).order_by("-send_after").first()
            if waiting is None:
                return
            clock.move_to(waiting.send_after + dt.timedelta(seconds=1))
        raise AssertionError("messages still wait after every retry")

    return run
