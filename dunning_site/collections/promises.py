"""Promises to pay as records: by a day, an amount, where it was made (a call, the case page, the portal, an
email reply a collector logs) and what was said. One way to record one (promise_record): the case is held
until the day after the promised day. Then what was paid on the case's invoices since the promise settles
it: kept, partly kept, or broken — and a broken promise makes the case's next step due at once and puts it
on the collector's worklist.

The case core knows nothing of promises: the end of a hold (`case_resumed`) and a case closing
(`case_closed`) reach this room through the signals collections.signals defines, connected in
collections.receivers.
"""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import dateformat, timezone, translation
from django.utils.translation import gettext, gettext_noop

from dunning_site.accounts.models import Payment, User
from dunning_site.collections import holds
from dunning_site.collections.case_core import CASE_NOT_ACTIVE, case_hold
from dunning_site.collections.models import Case, CaseEvent, Dispute, Promise
from dunning_site.collections.timeline import case_event, case_name
from dunning_site.lib.money import format_money

# The refusals below reach customers on the portal's promise page too: marked for the .po files
# (gettext_noop) and translated where they are used, in the language active there (the customer's on
# the portal; staff pages activate none, so they read the English the tests compare with).
PROMISE_DATE_IN_PAST = gettext_noop("The promised date must be today or later.")


PROMISE_TOO_FAR = gettext_noop("The policy takes promises up to %(days)s days ahead: by %(latest)s at the latest.")


PROMISE_ABOVE_OWED = gettext_noop("The promise of %(amount)s is more than the %(owed)s overdue on this case.")


PROMISE_NOT_OFFERED = gettext_noop(
    "After %(count)s broken promise(s) the portal no longer takes a promise from this customer; "
    "a collector can still record one."
)


PROMISE_DURING_DISPUTE = gettext_noop(
    "The customer disputes a charge: the portal takes no promise while the dispute is open."
)


PROMISE_UNKNOWN_SOURCE = "Unknown source of a promise: %(source)s."


# Why a pending promise ended without being settled by payments (the timeline says it).
REPLACED_BY_A_NEW_PROMISE = "Replaced by a new promise."
RESUMED_BEFORE_THE_DAY = "The case was resumed before the promised day."
CLOSED_BEFORE_THE_DAY = "The case closed without the promised payment: nothing more is collected."


# What the timeline says when a promise is settled; the collector reads it on the case and the worklist.
KEPT_NOTE = "%(paid)s paid since the promise of %(amount)s."
KEPT_REST_NOTE = "%(paid)s paid since the promise of %(amount)s; the ladder goes on for the %(owed)s still owed."
PARTLY_KEPT_NOTE = "Only %(paid)s of the %(amount)s promised was paid; the ladder goes on."
PARTLY_KEPT_AT_CLOSE_NOTE = "Only %(paid)s of the %(amount)s promised was paid."
BROKEN_NOTE = "Nothing was paid of the %(amount)s promised: the next step is due now."
BROKEN_WAITING_NOTE = "Nothing was paid of the %(amount)s promised; the next step waits for a manager's approval."
BROKEN_LADDER_DONE_NOTE = "Nothing was paid of the %(amount)s promised, and the ladder has no step left."


def promise_problems(*, case: Case, promised_on: dt.date, amount: int, today: dt.date | None = None) -> dict[str, str]:
    """What is wrong with a promise to pay on this case, by field: a day already gone or beyond the
    policy's limit (a promise holds the ladder until then), an amount above what is overdue."""
    today = today or timezone.localdate()
    problems = {}
    latest = today + dt.timedelta(days=case.policy.max_promise_days)
    if promised_on < today:
        problems["promised_on"] = gettext(PROMISE_DATE_IN_PAST)
    elif promised_on > latest:
        problems["promised_on"] = gettext(PROMISE_TOO_FAR) % {
            "days": case.policy.max_promise_days,
            "latest": dateformat.format(latest, "D j M Y"),
        }
    if amount > case.amount_overdue:
        # Amounts as the active language writes them: English on staff pages, the customer's on the portal.
        locale = translation.get_language() or "en"
        problems["promised_amount"] = gettext(PROMISE_ABOVE_OWED) % {
            "amount": format_money(amount, case.currency, locale),
            "owed": format_money(case.amount_overdue, case.currency, locale),
        }
    return problems


def promise_hold_end(promised_on: dt.date) -> dt.datetime:
    """A promise holds its case until the start of the day after the promised day (UTC)."""
    return dt.datetime.combine(promised_on + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def promise_terms(*, promised_on: dt.date, amount: int, currency: str) -> tuple[dt.datetime, str]:
    """The hold a promise puts on its case: its end, and the reason staff read on the case."""
    return promise_hold_end(
        promised_on
    ), f"Promise to pay {format_money(amount, currency)} by {promised_on.isoformat()}"


def broken_promise_count(*, customer_id: int) -> int:
    return Promise.objects.filter(customer_id=customer_id, status=Promise.Status.BROKEN).count()


def promise_refusal(*, case: Case) -> str | None:
    """Why the portal must not offer this case's customer a promise to pay, or None: the case is no
    longer pursued, a dispute holds it, or the customer broke as many promises as the policy allows."""
    if not case.is_active:
        return CASE_NOT_ACTIVE % {"case": case_name(case), "status": case.get_status_display().lower()}
    disputed = Dispute.objects.filter(customer_id=case.customer_id, closed_at__isnull=True).exists()
    if disputed or (case.status == Case.Status.PAUSED and holds.is_dispute(case.pause_reason)):
        return gettext(PROMISE_DURING_DISPUTE)
    broken = broken_promise_count(customer_id=case.customer_id)
    if broken >= case.policy.max_broken_promises:
        return gettext(PROMISE_NOT_OFFERED) % {"count": broken}
    return None


def promise_allowed(*, case: Case) -> bool:
    """Whether the portal offers a promise to pay on this case (collectors may record one regardless)."""
    return promise_refusal(case=case) is None


@transaction.atomic
def promise_record(
    *,
    case: Case,
    promised_on: dt.date,
    amount: int,
    source: str,
    reason: str = "",
    user: User | None = None,
    now: dt.datetime | None = None,
) -> Promise:
    """Record a promise to pay and hold the case until the day after the promised day. It must fall
    within the policy's days and what is overdue; one made in the portal also within the policy's
    broken promises. A pending promise on the case is replaced (cancelled) by the new one."""
    now = now or timezone.now()
    if source not in Promise.Source.values:
        raise ValidationError(PROMISE_UNKNOWN_SOURCE % {"source": source})
    case = Case.objects.select_for_update(of=("self",)).select_related("policy", "customer").get(pk=case.pk)
    if not case.is_active:
        raise ValidationError(CASE_NOT_ACTIVE % {"case": case_name(case), "status": case.get_status_display().lower()})
    if problems := promise_problems(case=case, promised_on=promised_on, amount=amount):
        raise ValidationError(problems)
    if source == Promise.Source.PORTAL and (refusal := promise_refusal(case=case)):
        raise ValidationError(refusal)
    reason = reason.strip()
    events = []
    for replaced in Promise.objects.select_for_update().filter(case=case, status=Promise.Status.PENDING):
        events.append(_settled(replaced, Promise.Status.CANCELLED, now=now, note=REPLACED_BY_A_NEW_PROMISE, user=user))
    until, hold_reason = promise_terms(promised_on=promised_on, amount=amount, currency=case.currency)
    case = case_hold(case=case, until=until, reason=hold_reason, user=user)
    promise = Promise.objects.create(
        case=case,
        customer_id=case.customer_id,
        promised_on=promised_on,
        amount=amount,
        currency=case.currency,
        source=source,
        reason=reason,
        created_by=user,
        created_at=now,
    )
    made = case_event(
        case,
        "collections.promise.made",
        user=user,
        at=now,
        promise_id=promise.pk,
        promised_on=promised_on.isoformat(),
        promised_amount=amount,
        source=source,
        source_label=promise.get_source_display(),
        **({"note": reason} if reason else {}),
    )
    if source == Promise.Source.PORTAL and user is None:
        made.actor = CaseEvent.Actor.CUSTOMER
    CaseEvent.objects.bulk_create([*events, made])
    return promise


def _paid_since(promise: Promise, *, now: dt.datetime) -> int:
    """What was paid on the case's invoices from the moment the promise was made until now."""
    paid = Payment.objects.filter(
        invoice__cases=promise.case_id, status=Payment.Status.SUCCEEDED, at__gte=promise.created_at, at__lte=now
    ).aggregate(total=Sum("amount"))["total"]
    return paid or 0


def _settled(promise: Promise, status: str, *, now: dt.datetime, note: str, user: User | None = None) -> CaseEvent:
    """Settle a (locked) pending promise and return its unsaved timeline event."""
    promise.status, promise.resolved_at = status, now
    promise.save(update_fields=["status", "resolved_at", "paid_by_then"])
    return case_event(
        promise.case,
        f"collections.promise.{status}",
        user=user,
        at=now,
        promise_id=promise.pk,
        promised_on=promise.promised_on.isoformat(),
        promised_amount=promise.amount,
        paid_by_then=promise.paid_by_then,
        reason=note,
    )


def promise_settle_at_hold_end(*, case: Case, now: dt.datetime) -> Promise | None:
    """The case's hold ended (inside case_resume's transaction): its pending promise, if any, is settled
    by what was paid since it was made once its day has passed — kept, partly kept or broken (the next
    step due now, the collector told) — or cancelled when someone resumed the case before the day."""
    promise = Promise.objects.select_for_update().filter(case=case, status=Promise.Status.PENDING).first()
    if promise is None:
        return None
    promise.case = case
    if now < promise_hold_end(promise.promised_on):
        CaseEvent.objects.bulk_create(
            [_settled(promise, Promise.Status.CANCELLED, now=now, note=RESUMED_BEFORE_THE_DAY)]
        )
        return promise
    promise.paid_by_then = _paid_since(promise, now=now)
    words = {
        "paid": format_money(promise.paid_by_then, promise.currency),
        "amount": format_money(promise.amount, promise.currency),
        "owed": format_money(case.amount_overdue, promise.currency),
    }
    if promise.paid_by_then >= promise.amount:
        event = _settled(promise, Promise.Status.KEPT, now=now, note=KEPT_REST_NOTE % words)
    elif promise.paid_by_then > 0:
        event = _settled(promise, Promise.Status.PARTLY_KEPT, now=now, note=PARTLY_KEPT_NOTE % words)
    else:
        escalates = case.status == Case.Status.OPEN and case.next_step_id is not None
        if escalates:
            # Escalated at this tick: the ladder's next step is due now, not on its own day.
            case.next_action_at = now
            Case.objects.filter(pk=case.pk).update(next_action_at=now, updated_at=now)
            note = BROKEN_NOTE % words
        elif case.status == Case.Status.AWAITING_APPROVAL:
            note = BROKEN_WAITING_NOTE % words
        else:
            note = BROKEN_LADDER_DONE_NOTE % words
        event = _settled(promise, Promise.Status.BROKEN, now=now, note=note)
        assignee = case.assignee.get_username() if case.assignee_id else None
        event.data |= {"assignee": assignee, "escalated": escalates}
    event.save()
    return promise


def promise_settle_at_close(*, case: Case, now: dt.datetime) -> Promise | None:
    """The case closed while a promise was pending (inside the closing transaction): paid in full, the
    promise is kept; written off, it is kept or partly kept by what was paid, or cancelled."""
    promise = Promise.objects.select_for_update().filter(case=case, status=Promise.Status.PENDING).first()
    if promise is None:
        return None
    promise.case = case
    promise.paid_by_then = _paid_since(promise, now=now)
    words = {
        "paid": format_money(promise.paid_by_then, promise.currency),
        "amount": format_money(promise.amount, promise.currency),
    }
    if case.status == Case.Status.RESOLVED or promise.paid_by_then >= promise.amount:
        event = _settled(promise, Promise.Status.KEPT, now=now, note=KEPT_NOTE % words)
    elif promise.paid_by_then > 0:
        event = _settled(promise, Promise.Status.PARTLY_KEPT, now=now, note=PARTLY_KEPT_AT_CLOSE_NOTE % words)
    else:
        event = _settled(promise, Promise.Status.CANCELLED, now=now, note=CLOSED_BEFORE_THE_DAY)
    event.save()
    return promise
