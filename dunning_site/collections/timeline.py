"""The timeline of a case: the events every change writes, how staff messages name a case, and how
an engine failure is described on it. The bottom of the case rooms: it imports only models.
"""

import datetime as dt

from django.db import InterfaceError, OperationalError
from django.utils import timezone

from dunning_site.accounts.models import User
from dunning_site.collections.models import (
    Case,
    CaseEvent,
    Step,
)

# An unexpected error in one case (or one customer's opening) must not stop the engine for everyone:
# the case is set aside this long, with the error on its timeline, while the others go on. A lost
# connection or a timeout is nobody's case: it stops the tick, and the next one does the work.
FAILED_CASE_RETRY_AFTER = dt.timedelta(hours=1)


ENGINE_TROUBLE = (OperationalError, InterfaceError)


def case_event(case: Case, type: str, *, user: User | None = None, at: dt.datetime | None = None, **data) -> CaseEvent:
    """An unsaved event; callers save one or bulk-create many."""
    return CaseEvent(
        case=case,
        type=type,
        actor=CaseEvent.Actor.USER if user else CaseEvent.Actor.SYSTEM,
        user=user,
        data=data,
        at=at or timezone.now(),
    )


def case_event_record(
    case: Case, type: str, *, user: User | None = None, at: dt.datetime | None = None, **data
) -> CaseEvent:
    event = case_event(case, type, user=user, at=at, **data)
    event.save()
    return event


def case_name(case: Case) -> str:
    """How messages to staff name a case: its customer and currency, never its id."""
    return f"{case.customer.name} ({case.currency})"


def step_data(step: Step) -> dict:
    return {"step_id": step.pk, "step": str(step), "action": step.action, "channel": step.channel}


def error_described(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:300]
