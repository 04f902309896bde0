"""What customers send from the portal's "Something is wrong" (collections.customer_requests). Other models
of the app are named by string: this module is imported by models/__init__."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from dunning_site.accounts.models import Customer
from dunning_site.lib.storage import PrivateStorage


class CustomerRequest(models.Model):
    """What a customer told us from the portal's "Something is wrong": a dispute of what we say they
    owe, or a question. Either is on the collectors' worklist until one of them answers it; a dispute
    also holds the customer's active cases by the hold rule (collections.holds) until a collector
    resumes them."""

    class Kind(models.TextChoices):
        DISPUTE = "dispute", "Dispute"
        QUESTION = "question", "Question"

    class Reason(models.TextChoices):
        # Customers choose one on the portal: their words, in their language (staff pages read English).
        ALREADY_PAID = "already_paid", gettext_lazy("I have already paid")
        WRONG_AMOUNT = "wrong_amount", gettext_lazy("The amount is wrong")
        NOT_RECEIVED = "not_received", gettext_lazy("I did not receive what I was billed for")
        CANCELLED = "cancelled", gettext_lazy("I had cancelled")
        OTHER = "other", gettext_lazy("Something else")

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="requests")
    case = models.ForeignKey("Case", on_delete=models.PROTECT, null=True, blank=True, related_name="customer_requests")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    text = models.TextField(max_length=4000, help_text="In the customer's words.")
    attachment = models.FileField(upload_to="requests/%Y/%m/", storage=PrivateStorage(), blank=True)
    attachment_name = models.CharField(max_length=255, blank=True, help_text="The file's name on the customer's side.")
    received_at = models.DateTimeField(default=timezone.now)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["received_at"], condition=Q(answered_at__isnull=True), name="request_unanswered_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(answered_at__isnull=True, answered_by__isnull=True) | Q(answered_at__isnull=False),
                name="request_answered_by_needs_answered_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} from {self.customer} ({self.received_at:%Y-%m-%d})"
