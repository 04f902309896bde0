"""Upward news from the lower layers, turned into collections work inside the same transaction."""

from django.dispatch import receiver

from dunning_site.accounts.signals import invoice_balance_changed
from dunning_site.collections.models import Case, CaseEvent
from dunning_site.collections.services import cases_reconcile_for_invoice
from dunning_site.notifications.signals import message_status_changed


@receiver(invoice_balance_changed)
def reconcile_cases(sender, invoice, actor=None, at=None, **kwargs) -> None:
    cases_reconcile_for_invoice(invoice=invoice, user=actor, now=at)


@receiver(message_status_changed)
def record_message_status(sender, message, previous_status, **kwargs) -> None:
    CaseEvent.objects.bulk_create(
        CaseEvent(
            case=case,
            type=f"collections.message.{message.status}",
            data={"message_id": message.pk, "channel": message.channel, "error": message.error or ""},
        )
        for case in Case.objects.filter(messages=message)
    )
