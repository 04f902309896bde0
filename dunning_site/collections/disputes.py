"""Stripe's disputes, and the retries a hold's end plans again.

A dispute opened (`charge.dispute.created`): the customer's bank is asked to take money back from us,
so dunning that customer stops at once — every active case is held for the dispute (replacing a
promise or a manual hold: the dispute outranks them), every scheduled retry is cancelled, queued
messages are cancelled (collections.holds enforces the rest where money and messages leave).

A dispute closed (`charge.dispute.closed`), by Stripe's final statuses:
- won, warning_closed (an inquiry that never became a chargeback): we keep the money and the customer
  still owes the overdue invoices, so the case resumes — the ladder, and a retry if the last decline
  allows one;
- lost: the bank gave the disputed money back to the customer, which settles the matter with them:
  the case's open invoices are written off as uncollectible ("dispute lost", here and at Stripe) and
  the case closes the way every write-off closes it.
A case held by a collector's own dispute (a reason typed on the case page) is left for them to resume.
"""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from dunning_site.accounts.billing import gateway
from dunning_site.accounts.models import Customer, Invoice, Payment
from dunning_site.accounts.services import customer_upsert_from_billing
from dunning_site.collections import holds
from dunning_site.collections.case_core import case_close, case_pause, case_resume, invoices_write_off
from dunning_site.collections.models import Case, Dispute, PaymentRetry
from dunning_site.collections.payment_retries import retry_schedule
from dunning_site.collections.retries import plan_next_attempt
from dunning_site.collections.timeline import case_event_record
from dunning_site.lib.money import format_money

WON_STATUSES = frozenset({"won", "warning_closed"})
LOST_STATUSES = frozenset({"lost"})
DISPUTE_LOST = "dispute lost"
DISPUTE_LOST_REASON = "Dispute lost: the customer's bank gave %(amount)s back to them; %(owed)s is not collected."
STILL_DISPUTED = "Another dispute of the customer is still open (%(disputes)s): the case stays on hold."
DISPUTE_OUTCOME_UNKNOWN = "Stripe closed the dispute as %(status)s: the case stays on hold for someone to decide."
OTHER_CURRENCY = "The dispute was about %(currency)s money: this case's own debt is dunned again."


def dispute_news(event_type: str, obj: dict) -> str:
    charge = obj.get("charge")
    try:
        customer_id = charge.get("customer") if isinstance(charge, dict) else gateway().charge_customer(charge)
    except LookupError:
        return "ignored"
    if not customer_id:
        return "ignored"
    with transaction.atomic():
        _remember(customer_external_id=customer_id, dispute=obj, closed=event_type == "charge.dispute.closed")
        if event_type == "charge.dispute.created":
            dispute_opened(customer_external_id=customer_id, dispute=obj)
        else:
            dispute_closed(customer_external_id=customer_id, dispute=obj)
    return "dispute"


def _remember(*, customer_external_id: str, dispute: dict, closed: bool) -> None:
    """Keep the dispute, so that it holds the customer whether or not a case is active now: a case that
    opens while it is open opens on hold (case_core.case_open). A customer Stripe never told us of is
    recorded by its id, as an invoice of theirs would be."""
    customer = Customer.objects.filter(external_id=customer_external_id).first()
    customer = customer or customer_upsert_from_billing(data={"id": customer_external_id})
    about = _about(dispute)
    now = timezone.now()
    record, _ = Dispute.objects.get_or_create(
        external_id=about["dispute"] or f"unnamed-{customer_external_id}",
        defaults={"customer": customer, "opened_at": now},
    )
    record.amount = about["amount"] if isinstance(about["amount"], int) else record.amount
    record.currency = about["currency"][:3]
    record.reason = str(about["reason"])[:64]
    record.status = str(about["status"])[:32]
    if closed and record.closed_at is None:
        record.closed_at = now
    record.save()


def _about(dispute: dict) -> dict:
    return {
        "dispute": dispute.get("id", ""),
        "amount": dispute.get("amount"),
        "currency": (dispute.get("currency") or "").upper(),
        "reason": dispute.get("reason", ""),
        "status": dispute.get("status", ""),
    }


@transaction.atomic
def dispute_opened(*, customer_external_id: str, dispute: dict, now: dt.datetime | None = None) -> int:
    """Hold every active case of the customer for the dispute; returns how many were held."""
    now = now or timezone.now()
    cases = Case.objects.select_for_update().filter(
        customer__external_id=customer_external_id, status__in=Case.ACTIVE_STATUSES
    )
    held = list(cases.order_by("pk"))
    for case in held:
        replaced = case.pause_reason if case.status == Case.Status.PAUSED else None
        case_event_record(case, "collections.dispute.opened", at=now, replaced_hold=replaced, **_about(dispute))
        if replaced is None or not holds.is_dispute(replaced):
            case_pause(case=case, until=None, reason=holds.DISPUTE_REASON, replace_hold=True)
    if held:
        # Held already for another dispute: whatever was planned since is cancelled all the same.
        holds.retries_cancel_for_dispute(customer_id=held[0].customer_id)
    return len(held)


@transaction.atomic
def dispute_closed(*, customer_external_id: str, dispute: dict, now: dt.datetime | None = None) -> None:
    now = now or timezone.now()
    status = dispute.get("status", "")
    cases = Case.objects.select_for_update().filter(
        customer__external_id=customer_external_id, status=Case.Status.PAUSED, pause_reason=holds.DISPUTE_REASON
    )
    resumed = []
    for case in cases.order_by("pk").select_related("customer"):
        about = _about(dispute)
        still_open = _other_open_disputes(case, about["dispute"])
        if still_open:
            kind = "won" if status in WON_STATUSES else "lost" if status in LOST_STATUSES else "closed"
            note = STILL_DISPUTED % {"disputes": ", ".join(still_open)}
            case_event_record(case, f"collections.dispute.{kind}", at=now, note=note, **about)
        elif status in WON_STATUSES:
            case_event_record(case, "collections.dispute.won", at=now, **about)
            resumed.append(case_resume(case=case, now=now))
        elif status in LOST_STATUSES and about["currency"] in ("", case.currency):
            _lost(case, dispute=about, now=now)
        elif status in LOST_STATUSES:
            note = OTHER_CURRENCY % {"currency": about["currency"]}
            case_event_record(case, "collections.dispute.lost", at=now, note=note, **about)
            resumed.append(case_resume(case=case, now=now))
        else:
            note = DISPUTE_OUTCOME_UNKNOWN % {"status": status or "unknown"}
            case_event_record(case, "collections.dispute.closed", at=now, note=note, **about)
    # Each resume plans its retries, unless another case of the customer was still held for the
    # dispute then: once all are resumed, those are planned too (a case already planned is skipped).
    for case in resumed[:-1]:
        retries_plan_after_hold(case=case, now=now)


def _other_open_disputes(case: Case, closing: str) -> list[str]:
    """The customer's disputes still open, other than `closing`."""
    still_open = Dispute.objects.filter(customer_id=case.customer_id, closed_at__isnull=True).exclude(
        external_id=closing
    )
    return sorted(still_open.values_list("external_id", flat=True))


def _lost(case: Case, *, dispute: dict, now: dt.datetime) -> None:
    """The dispute settled the matter: what is open is written off (uncollectible here and at Stripe,
    whose own retries and reminders stop too) and the case closes as written off."""
    invoices = list(case.invoices.filter(status=Invoice.Status.OPEN))
    owed = case.amount_overdue
    amount = dispute["amount"] if isinstance(dispute["amount"], int) else 0
    reason = DISPUTE_LOST_REASON % {
        "amount": format_money(amount, dispute["currency"] or case.currency),
        "owed": format_money(owed, case.currency),
    }
    case_event_record(case, "collections.dispute.lost", at=now, **dispute)
    invoices_write_off(invoices, now=now)
    case_close(
        case,
        Case.Status.WRITTEN_OFF,
        "collections.case.written_off",
        user=None,
        now=now,
        written_off=owed,
        currency=case.currency,
        invoices=[invoice.number for invoice in invoices],
        reason=DISPUTE_LOST,
        explanation=reason,
    )


def retries_plan_after_hold(*, case: Case, now: dt.datetime) -> int:
    """A hold ended (resumed by someone, by the tick at its end, or by a dispute won): plan a retry of
    each open invoice whose last card payment failed and that has none scheduled — retries cancelled
    while the case was held are planned afresh, as the planner would have after the last decline (its
    budget, window and payday calendar apply; a decline that rules retries out plans none). The
    timeline says what was decided. Returns how many were planned."""
    if holds.customer_disputes(customer_id=case.customer_id) is not None:
        return 0  # another case of the customer is still disputed
    planned = 0
    for invoice in case.invoices.filter(status=Invoice.Status.OPEN).select_related("customer"):
        if PaymentRetry.objects.filter(invoice=invoice, status=PaymentRetry.Status.SCHEDULED).exists():
            continue
        failures = Payment.objects.filter(invoice=invoice, status=Payment.Status.FAILED)
        last = failures.order_by("-at", "-pk").first()
        if last is None:
            continue  # never declined: the ladder's own steps collect it
        attempts = PaymentRetry.objects.filter(invoice=invoice).exclude(
            status__in=[PaymentRetry.Status.CANCELLED, PaymentRetry.Status.SKIPPED, PaymentRetry.Status.SCHEDULED]
        )
        plan = plan_next_attempt(
            decline_code=last.decline_code,
            advice_code=last.advice_code,
            network_decline_code=last.network_decline_code,
            network_advice_code=last.network_advice_code,
            card_brand="",
            attempts_so_far=list(attempts.values_list("scheduled_for", flat=True)),
            first_failure_at=failures.order_by("at").values_list("at", flat=True).first(),
            now=now,
            customer_time_zone=invoice.customer.time_zone,
            max_attempts=case.policy.retry_max_attempts,
            window_days=case.policy.retry_window_days,
        )
        if retry_schedule(invoice=invoice, case=case, plan=plan, now=now) is not None:
            planned += 1
        case_event_record(
            case,
            "collections.payment.retry_planned" if plan.retry_at else "collections.payment.not_retried",
            at=now,
            invoice=invoice.number,
            decision=plan.decision,
            reason=plan.reason,
            retry_at=plan.retry_at.isoformat() if plan.retry_at else None,
        )
    return planned
