"""What the billing system says about the customer's money beyond invoices: their disputes with the bank, and
the card retries the planner schedules (collections.payment_retries, collections.disputes). Other models of
the app are named by string: this module is imported by models/__init__."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from dunning_site.accounts.models import Customer, Invoice, Payment


class Dispute(models.Model):
    """A dispute the customer opened with their bank (Stripe's charge.dispute.*). While one is open the
    customer is not dunned at all — a case that opens meanwhile opens on hold — whether or not a case
    was active when it began (collections.disputes)."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="disputes")
    external_id = models.CharField(max_length=255, unique=True)
    amount = models.BigIntegerField(default=0, help_text="In minor units of the currency.")
    currency = models.CharField(max_length=3, blank=True)
    reason = models.CharField(max_length=64, blank=True, help_text="The billing system's reason, e.g. fraudulent.")
    status = models.CharField(max_length=32, blank=True, help_text="The billing system's status, e.g. won, lost.")
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer"], condition=Q(closed_at__isnull=True), name="dispute_open_idx"),
        ]

    def __str__(self) -> str:
        return self.external_id


class PaymentRetry(models.Model):
    """The next attempt to charge an invoice, as the retry planner chose it from the decline."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        ATTEMPTING = "attempting", "Being attempted"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        SKIPPED = "skipped", "Skipped (invoice no longer payable)"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="retries")
    case = models.ForeignKey("Case", on_delete=models.PROTECT, null=True, blank=True, related_name="retries")
    scheduled_for = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    decision = models.CharField(max_length=40, help_text="The planner's class for the decline that led here.")
    reason = models.CharField(max_length=255)
    attempt = models.PositiveSmallIntegerField(help_text="1 for the first retry after the original charge.")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    attempted_at = models.DateTimeField(null=True, blank=True, help_text="When a worker claimed it to charge.")
    error = models.CharField(
        max_length=500,
        blank=True,
        help_text="What the billing system answered instead of a charge or a decline (an outage, a rate limit, "
        "no answer at all).",
    )

    class Meta:
        ordering = ["scheduled_for"]
        indexes = [
            models.Index(fields=["scheduled_for"], condition=Q(status="scheduled"), name="retry_due_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice"], condition=Q(status="scheduled"), name="one_scheduled_retry_per_invoice"
            ),
            models.UniqueConstraint(fields=["invoice", "attempt"], name="one_retry_per_invoice_attempt"),
        ]

    def __str__(self) -> str:
        return f"Retry {self.attempt} of {self.invoice} at {self.scheduled_for:%Y-%m-%d %H:%M}"
