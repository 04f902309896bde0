"""Upward news from the lower layers, turned into collections work inside the same transaction."""

from django.dispatch import receiver

from dunning_site.accounts.models import Invoice, Payment
from dunning_site.accounts.signals import invoice_balance_changed
from dunning_site.collections.case_core import cases_reconcile_for_invoice
from dunning_site.collections.disputes import retries_plan_after_hold
from dunning_site.collections.holds import message_veto
from dunning_site.collections.ladder import case_draft_released
from dunning_site.collections.models import Case, CaseEvent
from dunning_site.collections.payment_problems import CLEARED_BY_PAYMENT, case_payment_problem_set
from dunning_site.collections.payment_retries import retry_for_policy_step
from dunning_site.collections.promises import promise_settle_at_close, promise_settle_at_hold_end
from dunning_site.collections.signals import case_closed, case_resumed, payment_retry_step_due
from dunning_site.collections.stripe_updates import invoice_paid_elsewhere_request
from dunning_site.notifications.signals import SendVeto, message_send_check, message_status_changed


@receiver(invoice_balance_changed)
def reconcile_cases(sender, invoice, actor=None, at=None, payment=None, **kwargs) -> None:
    if payment is not None and payment.method == Payment.Method.CARD:
        # The card was charged (a retry, a confirmed payment): nothing is asked of it any more.
        for case in Case.objects.filter(invoices=invoice, status__in=Case.ACTIVE_STATUSES).exclude(payment_problem=""):
            case_payment_problem_set(case=case, problem="", reason=CLEARED_BY_PAYMENT, at=at)
    cases_reconcile_for_invoice(invoice=invoice, user=actor, now=at)
    # Stripe can only be told that a whole invoice was paid elsewhere; a manual part payment of an
    # invoice Stripe collects is refused when it is recorded (accounts.services.manual_part_payment_problem).
    if payment is not None and payment.method in Payment.MANUAL_METHODS and invoice.status == Invoice.Status.PAID:
        invoice_paid_elsewhere_request(invoice=invoice)


@receiver(message_status_changed)
def record_message_event(sender, message, previous_status, event="", user=None, **kwargs) -> None:
    """Every step of a message's life is on the timeline of its case: sent, deferred and why,
    cancelled and why, delivered, bounced, opened, edited by whom."""
    event = event or message.status
    data = {"message_id": message.pk, "channel": message.channel, "status": message.status}
    if event == "deferred":
        data |= {"until": message.send_after.isoformat(), "reason": message.deferred_reason}
    elif message.error and event in ("failed", "cancelled", "bounced"):
        data["reason"] = message.error
    elif event == "scheduled":
        data["at"] = message.send_after.isoformat()
    elif event == "edited":
        data |= {"subject": message.subject, "body": message.body}
    CaseEvent.objects.bulk_create(
        CaseEvent(
            case=case,
            type=f"collections.message.{event}",
            actor=CaseEvent.Actor.USER if user else CaseEvent.Actor.SYSTEM,
            user=user,
            data=data,
        )
        for case in Case.objects.filter(messages=message)
    )


@receiver(message_status_changed)
def ladder_after_a_draft(sender, message, previous_status, event="", **kwargs) -> None:
    """A step's draft held its case's ladder; once it is sent or scheduled, the ladder goes on."""
    if event in ("released", "scheduled"):
        case_draft_released(message=message)


@receiver(message_send_check)
def hold_the_message(sender, message, at, **kwargs) -> SendVeto | None:
    """Nothing is sent to a customer whose case is on hold (collections.holds says how)."""
    return message_veto(message=message, at=at)


@receiver(payment_retry_step_due)
def retry_for_the_ladder(sender, case, now, **kwargs) -> list[str]:
    """The ladder's "retry payment" step, performed by the retry planner (collections.payment_retries)."""
    return retry_for_policy_step(case=case, now=now)


@receiver(case_resumed)
def retries_after_a_hold(sender, case, now, **kwargs) -> None:
    """A hold stopped the card retries; once it ends they are planned afresh (collections.disputes)."""
    retries_plan_after_hold(case=case, now=now)


@receiver(case_resumed)
def promise_after_a_hold(sender, case, now, **kwargs) -> None:
    """A promise to pay held the case: once its day has passed, what was paid settles it (collections.promises)."""
    promise_settle_at_hold_end(case=case, now=now)


@receiver(case_closed)
def promise_at_the_close(sender, case, now, **kwargs) -> None:
    """A case paid in full (or written off) while a promise was pending settles the promise then."""
    promise_settle_at_close(case=case, now=now)
