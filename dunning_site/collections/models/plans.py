"""Payment plans and their instalments (collections.plans makes and changes them; plan_schedule does their
arithmetic). Other models of the app are named by string: this module is imported by models/__init__."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from dunning_site.accounts.models import CURRENCY_SHAPE
from dunning_site.lib.validators import validate_currency

CURRENT_PLAN_STATUSES = ("requested", "offered", "active")


class PaymentPlan(models.Model):
    """What a customer pays instead of the ladder: a total (and a fee) in instalments.

    requested (outside the policy's self-serve limits: a manager decides) → offered (the customer
    accepts it) → active (the case is held for the ladder; the instalments are charged) → completed,
    defaulted (an instalment unpaid past the grace) or cancelled. A rejected request ends as rejected.
    """

    class Interval(models.TextChoices):
        WEEKLY = "weekly", "Weekly"
        FORTNIGHTLY = "fortnightly", "Every two weeks"
        MONTHLY = "monthly", "Monthly"

    class Status(models.TextChoices):
        REQUESTED = "requested", "Waiting for a manager"
        OFFERED = "offered", "Offered"
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        DEFAULTED = "defaulted", "Defaulted"
        CANCELLED = "cancelled", "Cancelled"
        REJECTED = "rejected", "Rejected by a manager"

    CURRENT_STATUSES = CURRENT_PLAN_STATUSES

    class Source(models.TextChoices):
        COLLECTOR = "collector", "Offered by a collector"
        CUSTOMER = "customer", "Chosen by the customer"

    case = models.ForeignKey("collections.Case", on_delete=models.PROTECT, related_name="plans")
    customer = models.ForeignKey("accounts.Customer", on_delete=models.PROTECT, related_name="payment_plans")
    currency = models.CharField(max_length=3, validators=[validate_currency])
    total = models.BigIntegerField(help_text="What the plan pays off, in minor units (the fee not included).")
    down_payment = models.BigIntegerField(default=0, help_text="Due on the first date, in minor units; 0: none.")
    fee = models.BigIntegerField(default=0, help_text="Added to the total and spread over the instalments.")
    interval = models.CharField(max_length=12, choices=Interval.choices)
    instalment_count = models.PositiveSmallIntegerField(help_text="Instalments after the down payment.")
    first_date = models.DateField(help_text="The down payment's day, or the first instalment's if there is none.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OFFERED)
    source = models.CharField(max_length=10, choices=Source.choices)
    offered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reason = models.TextField(blank=True, help_text="Why the customer or collector asks for these terms.")
    terms_shown = models.JSONField(
        default=dict, blank=True, help_text="The terms and schedule as the customer saw them when accepting."
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_ip = models.GenericIPAddressField(null=True, blank=True)
    accepted_user_agent = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was accepted, rejected, cancelled, completed or defaulted."
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(status__in=CURRENT_PLAN_STATUSES),
                name="one_current_plan_per_case",
                violation_error_message="This case already has a payment plan waiting, offered or active.",
            ),
            models.CheckConstraint(
                condition=Q(total__gt=0, down_payment__gte=0, fee__gte=0, instalment_count__gte=1)
                & Q(down_payment__lt=F("total") + F("fee")),
                name="plan_amounts_positive",
                violation_error_message="A plan has a positive total, at least one instalment, and a down payment "
                "that leaves something to pay in instalments.",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_SHAPE),
                name="plan_currency_iso_shape",
                violation_error_message="The currency must be a three-letter ISO 4217 code, like EUR.",
            ),
            models.CheckConstraint(
                condition=Q(accepted_at__isnull=False) | ~Q(status__in=["active", "completed", "defaulted"]),
                name="plan_active_was_accepted",
                violation_error_message="A plan becomes active only when the customer accepts it.",
            ),
        ]

    def __str__(self) -> str:
        return f"Plan {self.pk} for case {self.case_id}: {self.get_status_display()}"

    def money_currency(self) -> str:
        return self.currency

    @property
    def is_current(self) -> bool:
        return self.status in self.CURRENT_STATUSES


class Instalment(models.Model):
    """One payment of a plan: number 0 is the down payment, 1… the instalments."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    plan = models.ForeignKey(PaymentPlan, on_delete=models.PROTECT, related_name="instalments")
    number = models.PositiveSmallIntegerField(help_text="0: the down payment.")
    due_on = models.DateField()
    amount = models.BigIntegerField(help_text="In minor units of the plan's currency.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    paid_at = models.DateTimeField(null=True, blank=True)
    payment = models.ForeignKey("accounts.Payment", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["plan", "number"]
        indexes = [models.Index(fields=["due_on"], condition=Q(status="scheduled"), name="instalment_due_idx")]
        constraints = [
            models.UniqueConstraint(fields=["plan", "number"], name="one_instalment_per_plan_number"),
            models.CheckConstraint(
                condition=Q(amount__gt=0),
                name="instalment_amount_positive",
                violation_error_message="An instalment's amount must be more than zero.",
            ),
        ]

    def __str__(self) -> str:
        label = "Down payment" if self.number == 0 else f"Instalment {self.number}"
        return f"{label} of plan {self.plan_id}, due {self.due_on:%Y-%m-%d}"

    def money_currency(self) -> str:
        return self.plan.currency
