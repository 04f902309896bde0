"""Partial write-offs approved before credit notes existed were only deducted by reconciliation (the
sum of a case's approved write-offs); reconciliation now reads what is owed from the invoices alone.
So each active case's approved write-offs become credit notes on its open invoices, oldest first, as
a write-off approved today would, and what the case pursues stays the same. Reversible: the credit
notes this migration wrote (marked by their reason) are taken off their invoices and deleted. No
credit note is issued at Stripe for them: nothing was told to Stripe of these write-offs before either.
"""

from django.db import migrations
from django.db.models import Sum

MARK = "Written off before credit notes existed (approval %s)"
MARK_START = "Written off before credit notes existed"
ACTIVE = ["open", "paused", "awaiting_approval"]


def credit_notes_from_approvals(apps, schema_editor):
    Case = apps.get_model("collections", "Case")
    Approval = apps.get_model("collections", "Approval")
    Invoice = apps.get_model("accounts", "Invoice")
    CreditNote = apps.get_model("accounts", "CreditNote")
    for case in Case.objects.filter(status__in=ACTIVE).iterator():
        approved = Approval.objects.filter(case=case, kind="write_off", status="approved")
        forgiven = approved.aggregate(total=Sum("amount"))["total"] or 0
        if not forgiven:
            continue
        ids = ", ".join(f"#{pk}" for pk in approved.order_by("pk").values_list("pk", flat=True))
        for invoice in Invoice.objects.filter(cases=case, status="open").order_by("due_on", "number"):
            owed = invoice.total - invoice.amount_paid - invoice.amount_written_off
            credit = min(forgiven, owed)
            if credit <= 0:
                continue
            CreditNote.objects.create(invoice=invoice, amount=credit, reason=MARK % ids, at=case.updated_at)
            invoice.amount_written_off += credit
            if credit == owed:
                invoice.status = "paid"
            invoice.save(update_fields=["amount_written_off", "status"])
            forgiven -= credit
            if forgiven <= 0:
                break


def approvals_from_credit_notes(apps, schema_editor):
    Invoice = apps.get_model("accounts", "Invoice")
    CreditNote = apps.get_model("accounts", "CreditNote")
    for note in CreditNote.objects.filter(reason__startswith=MARK_START, external_id__isnull=True).iterator():
        invoice = Invoice.objects.get(pk=note.invoice_id)
        invoice.amount_written_off -= note.amount
        if invoice.status == "paid" and invoice.amount_paid < invoice.total:
            invoice.status = "open"
        invoice.save(update_fields=["amount_written_off", "status"])
        note.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_credit_notes"),
        ("collections", "0017_promises_from_holds"),
    ]

    operations = [migrations.RunPython(credit_notes_from_approvals, approvals_from_credit_notes)]
