"""Promises to pay (collections.promises records and settles them). Other models of the app are named by
string: this module is imported by models/__init__."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from dunning_site.accounts.models import CURRENCY_SHAPE, Customer
from dunning_site.lib.money import format_money
from dunning_site.lib.validators import validate_currency


class Promise(models.Model):
    """A promise to pay: by a day, an amount, where it was made and what was said. While it is pending its
    case is held until the day after the promised day; then the payments made since it was made settle
    it (collections.promises)."""

    class Source(models.TextChoices):
        CALL = "call", "Call"
        PORTAL = "portal", "Portal"
        EMAIL_REPLY = "email_reply", "Email reply"
        CASE_PAGE = "case_page", "Case page"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        KEPT = "kept", "Kept"
        PARTLY_KEPT = "partly_kept", "Partly kept"
        BROKEN = "broken", "Broken"
        CANCELLED = "cancelled", "Cancelled"

    case = models.ForeignKey("Case", on_delete=models.PROTECT, related_name="promises")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="promises")
    promised_on = models.DateField(help_text="The day the customer promised to pay by.")
    amount = models.BigIntegerField(help_text="In minor units of the currency.")
    currency = models.CharField(max_length=3, validators=[validate_currency])
    source = models.CharField(max_length=12, choices=Source.choices)
    reason = models.TextField(
        blank=True, help_text="What the customer said, as the collector or the customer typed it."
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    paid_by_then = models.BigIntegerField(
        default=0, help_text="Paid on the case's invoices from the promise to its settling (minor units)."
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["customer", "status"], name="promise_customer_status_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0),
                name="promise_amount_positive",
                violation_error_message="A promise must be of more than zero.",
            ),
            models.CheckConstraint(condition=Q(paid_by_then__gte=0), name="promise_paid_by_then_not_negative"),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_SHAPE),
                name="promise_currency_iso_shape",
                violation_error_message="The currency must be a three-letter ISO 4217 code, like EUR.",
            ),
            models.CheckConstraint(
                condition=Q(status="pending", resolved_at__isnull=True)
                | (~Q(status="pending") & Q(resolved_at__isnull=False)),
                name="promise_resolved_when_settled",
            ),
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(status="pending"),
                name="one_pending_promise_per_case",
                violation_error_message="This case already has a pending promise.",
            ),
        ]

    def __str__(self) -> str:
        amount = format_money(self.amount, self.currency)
        return f"{amount} by {self.promised_on.isoformat()} for case {self.case_id}: {self.get_status_display()}"
