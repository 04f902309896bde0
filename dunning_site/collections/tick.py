"""One pass of the engine, as the cron and the workers run it: open new cases, end expired holds,
perform every due step (collections.ladder), then the card retries that are due
(collections.payment_retries). It sits above both and is imported by nothing but jobs, commands,
the demo and tests.
"""

import dataclasses
import datetime as dt

from django.conf import settings
from django.utils import timezone

from dunning_site.collections.case_core import cases_resume_expired
from dunning_site.collections.ladder import cases_advance_batch, cases_open_overdue
from dunning_site.collections.payment_retries import retries_perform_due, retries_recover_stuck


@dataclasses.dataclass
class TickResult:
    opened: int = 0
    resumed: int = 0
    advanced: int = 0
    retried: int = 0
    failed: int = 0
    # One line per case or customer set aside, for the operator: "case 12: OverflowError: …".
    failures: list[str] = dataclasses.field(default_factory=list)


def tick(*, now: dt.datetime | None = None, batch_size: int | None = None) -> TickResult:
    """One pass of the engine: open new cases, end expired pauses, perform every due step. A case
    that raises is set aside and counted in `failed`; the others go on."""
    now = now or timezone.now()
    batch_size = batch_size or settings.DUNNING_TICK_BATCH_SIZE
    result = TickResult()
    result.opened = cases_open_overdue(now=now, failures=result.failures)
    result.resumed = cases_resume_expired(now=now, failures=result.failures)
    while True:
        failed_before = len(result.failures)
        claimed = cases_advance_batch(now=now, batch_size=batch_size, failures=result.failures)
        result.advanced += claimed - (len(result.failures) - failed_before)
        if claimed < batch_size:
            break
    retries_recover_stuck(now=now)
    result.retried = retries_perform_due(now=now)
    result.failed = len(result.failures)
    return result
