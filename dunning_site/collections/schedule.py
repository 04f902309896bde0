"""Where a case stands on its ladder: which policy applies, which step comes first and next, and
when a step is due (its day at the configured local hour in the customer's time zone).
"""

import datetime as dt
import zoneinfo
from collections.abc import Iterable

from django.conf import settings

from dunning_site.collections.models import (
    Case,
    Policy,
    Step,
)

# A step whose day has already passed (the case was paused, or waited for approval) is not sent
# back to back with the previous one: it waits this long after it.
CATCH_UP_GAP = dt.timedelta(days=1)


def step_due_at(*, case: Case, step: Step) -> dt.datetime:
    """The step's day (anchor + offset) at the configured local hour in the customer's time zone."""
    day = case.anchor_due_on + dt.timedelta(days=step.offset_days)
    zone = zoneinfo.ZoneInfo(case.customer.time_zone)
    return dt.datetime.combine(day, dt.time(settings.DUNNING_SEND_HOUR), tzinfo=zone).astimezone(dt.UTC)


def case_schedule(case: Case, step: Step | None, *, after: Step | None, now: dt.datetime) -> None:
    """Point the case at `step` and say when it is due; None means the ladder is finished."""
    case.next_step = step
    if step is None:
        case.next_action_at = None
        return
    due = step_due_at(case=case, step=step)
    if due <= now and after is not None and after.offset_days != step.offset_days:
        due = now + CATCH_UP_GAP
    case.next_action_at = max(due, now)


def step_after(steps: list[Step], step: Step) -> Step | None:
    later = [candidate for candidate in steps if candidate.position > step.position]
    return later[0] if later else None


def first_step(steps: list[Step], *, case: Case, now: dt.datetime) -> Step | None:
    """Where a new case starts: the latest step whose day has come, so a case opened late
    starts at the stage that fits its age instead of sending every earlier step at once,
    but never beyond the first step that needs a manager's approval."""
    chosen = None
    for step in steps:
        if chosen is not None and step_due_at(case=case, step=step) > now:
            break
        chosen = step
        if step.requires_approval:
            break
    return chosen


def policy_for(*, policies: Iterable[Policy], segment: str, currency: str, amount: int) -> Policy | None:
    for policy in policies:
        if policy.segment and policy.segment != segment:
            continue
        if policy.currency and policy.currency != currency:
            continue
        if policy.min_amount and amount < policy.min_amount:
            continue
        return policy
    return None
