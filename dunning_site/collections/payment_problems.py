"""What the case remembers of its last failed charge, so every message asks for what would fix it.

A card that must change gets the card-update link in every reminder until a new card comes, not in
one email per decline: customers left to notice a single request pay far less often. The problem is
read from the same classification the retry planner uses, set on each recorded decline, and cleared
the moment it no longer holds (a new card, a card payment that went through, the case closing).
"""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from dunning_site.collections.models import Case
from dunning_site.collections.retries import CARD_MUST_CHANGE, CUSTOMER_MUST_ACT, NEVER_RETRY, RETRY_ON_PAYDAY
from dunning_site.collections.timeline import case_event_record

# The planner's class of a decline → what the customer is asked to do about it.
PROBLEM_OF_DECISION = {
    NEVER_RETRY: Case.PaymentProblem.NEW_CARD,
    CARD_MUST_CHANGE: Case.PaymentProblem.NEW_CARD,
    CUSTOMER_MUST_ACT: Case.PaymentProblem.AUTHENTICATION,
    RETRY_ON_PAYDAY: Case.PaymentProblem.NO_FUNDS,
}

# Why a problem was cleared, on the timeline.
CLEARED_BY_NEW_CARD = "The customer gave a new card"
CLEARED_BY_PAYMENT = "A card payment went through"


def payment_problem_of(decision: str) -> str:
    """The problem a decline of this class poses; a class the table does not name is "unknown"."""
    return PROBLEM_OF_DECISION.get(decision, Case.PaymentProblem.UNKNOWN)


@transaction.atomic
def case_payment_problem_set(*, case: Case, problem: str, reason: str, at: dt.datetime | None = None) -> bool:
    """Remember why the case's last charge failed (or forget it with ""), on the timeline when it
    changes. Returns whether it changed. Closed cases keep what they had: nothing is asked of them."""
    at = at or timezone.now()
    previous = (
        Case.objects.filter(pk=case.pk, status__in=Case.ACTIVE_STATUSES)
        .values_list("payment_problem", flat=True)
        .first()
    )
    if previous is None or previous == problem:
        return False
    Case.objects.filter(pk=case.pk).update(payment_problem=problem, updated_at=at)
    case.payment_problem = problem
    event_type = "collections.payment.problem_set" if problem else "collections.payment.problem_cleared"
    case_event_record(case, event_type, at=at, problem=problem, previous=previous, reason=reason)
    return True


def customer_payment_problems_clear(*, customer_id: int, reason: str, at: dt.datetime | None = None) -> int:
    """A fix for the customer's card clears the problem on every active case of theirs."""
    cleared = 0
    for case in Case.objects.filter(customer_id=customer_id, status__in=Case.ACTIVE_STATUSES).exclude(
        payment_problem=""
    ):
        cleared += case_payment_problem_set(case=case, problem="", reason=reason, at=at)
    return cleared
