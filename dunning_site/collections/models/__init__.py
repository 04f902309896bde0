from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from dunning_site.accounts.models import CURRENCY_SHAPE, Channel, Customer, Invoice
from dunning_site.lib.validators import validate_currency
from dunning_site.notifications.models import ContactRules, Message, MessageTemplate, Tone

# Some of the app's models live in modules of their own (this one would pass 600 lines); they are this
# app's models all the same.
from .payments import Dispute as Dispute
from .payments import PaymentRetry as PaymentRetry
from .plans import Instalment as Instalment
from .plans import PaymentPlan as PaymentPlan
from .promises import Promise as Promise
from .requests import CustomerRequest as CustomerRequest

# Every count of days in a policy and its ladder stays within ten years: dates computed from them
# (an invoice's due date plus the grace, a case's anchor plus a step's offset) stay far from the
# calendar's end, and a typo of a few extra digits is refused instead of meaning "never" (or, past
# year 9999, stopping the engine). Forms and the admin refuse more with the validator; the database
# refuses it from anywhere else.
POLICY_DAYS_MAX = 3650
POLICY_DAYS_TOO_MANY = "At most %(limit_value)s days (ten years)."
PROMISE_DAYS_MAX = 365
BROKEN_PROMISES_MAX = 99
# Five years of monthly instalments: a longer "plan" is a typo.
PLAN_INSTALMENTS_MAX = 60
PLAN_DEFAULT_STEP_ELSEWHERE = "A defaulted plan resumes the case on this policy's ladder: choose one of its steps."


def days_at_most_ten_years() -> MaxValueValidator:
    return MaxValueValidator(POLICY_DAYS_MAX, message=POLICY_DAYS_TOO_MANY)


def days_in_range(field: str, *, name: str, low: int = 0, high: int = POLICY_DAYS_MAX) -> models.CheckConstraint:
    label = field.replace("_", " ").capitalize()
    return models.CheckConstraint(
        condition=Q(**{f"{field}__gte": low, f"{field}__lte": high}),
        name=name,
        violation_error_message=f"{label} must be from {low} to {high:,}.",
    )


class Policy(models.Model):
    """An escalation ladder, chosen per case by segment, currency and amount (first match by priority)."""

    name = models.CharField(max_length=120, unique=True)
    segment = models.SlugField(max_length=50, blank=True, help_text="Blank: any segment.")
    currency = models.CharField(
        max_length=3, blank=True, validators=[validate_currency], help_text="Blank: any currency."
    )
    min_amount = models.BigIntegerField(
        default=0, help_text="Smallest overdue amount, in minor units of the currency, this policy applies to."
    )
    priority = models.PositiveIntegerField(default=100, help_text="Lower numbers are tried first.")
    contact_rules = models.ForeignKey(
        ContactRules,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        help_text="Blank: the safe defaults (08:00–20:00 local, no Sundays, 3 contacts and 7 calls a week).",
    )
    grace_days = models.PositiveIntegerField(
        default=1,
        validators=[days_at_most_ten_years()],
        help_text="Days after the due date before an unpaid invoice opens a case.",
    )
    is_active = models.BooleanField(default=True)
    retry_max_attempts = models.PositiveSmallIntegerField(
        default=8, help_text="Card retries per invoice, at most, within the retry window (never beyond scheme limits)."
    )
    retry_window_days = models.PositiveSmallIntegerField(default=30, validators=[days_at_most_ten_years()])
    pre_dunning_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[days_at_most_ten_years()],
        help_text="Warn customers this many days before their card expires; 0 turns it off.",
    )
    max_promise_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(PROMISE_DAYS_MAX)],
        help_text="A promise to pay may hold a case this many days at most (from today to the promised day).",
    )
    max_broken_promises = models.PositiveSmallIntegerField(
        default=2,
        validators=[MaxValueValidator(BROKEN_PROMISES_MAX)],
        help_text="After this many broken promises the portal stops offering the customer a promise to pay "
        "(0: never offered there); collectors can still record one.",
    )
    # Payment plans: what a customer may choose alone (collections.plans). Terms outside these limits
    # (or, for a customer, a plan above plan_self_serve_max_amount) go to a manager first.
    plan_max_instalments = models.PositiveSmallIntegerField(
        default=6,
        validators=[MinValueValidator(1), MaxValueValidator(PLAN_INSTALMENTS_MAX)],
        help_text="Instalments a plan may have at most without a manager's approval (the down payment not counted).",
    )
    plan_min_instalment = models.BigIntegerField(
        default=2000,
        validators=[MinValueValidator(0)],
        help_text="Smallest instalment without a manager's approval, in minor units of the case's currency "
        "(2000 = 20.00 EUR or USD, ¥2,000, 2.000 KWD); 0: no minimum.",
    )
    plan_max_days = models.PositiveSmallIntegerField(
        default=180,
        validators=[MinValueValidator(1), days_at_most_ten_years()],
        help_text="The last instalment is due at most this many days after the plan is made, "
        "without a manager's approval.",
    )
    plan_min_down_payment_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(99)],
        help_text="Smallest down payment, in percent of the plan's total (rounded up to the minor unit); "
        "0: none needed.",
    )
    plan_self_serve_max_amount = models.BigIntegerField(
        default=0,
        validators=[MinValueValidator(0)],
        help_text="A customer's own plan for more than this (minor units of the case's currency) waits for a "
        "manager's approval, even within the other limits; 0: no such limit. Collectors' offers are not held "
        "by it, only by the other limits.",
    )
    plan_grace_days = models.PositiveSmallIntegerField(
        default=5,
        validators=[days_at_most_ten_years()],
        help_text="Days an instalment may stay unpaid (its retries included) before the plan is defaulted.",
    )
    plan_default_step = models.ForeignKey(
        "Step",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The step of this policy a case resumes at when its plan is defaulted. "
        "Blank: the step the case was waiting for when the plan began.",
    )

    class Meta:
        ordering = ["priority", "name"]
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(min_amount__gte=0),
                name="policy_min_amount_not_negative",
                violation_error_message="The minimum amount cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(min_amount=0) | ~Q(currency=""),
                name="policy_min_amount_needs_currency",
                violation_error_message="A minimum amount needs a currency.",
            ),
            models.CheckConstraint(
                condition=Q(currency="") | Q(currency__regex=CURRENCY_SHAPE),
                name="policy_currency_iso_shape",
                violation_error_message="The currency must be a three-letter ISO 4217 code, like EUR.",
            ),
            days_in_range("grace_days", name="policy_grace_days_in_range"),
            days_in_range("retry_window_days", name="policy_retry_window_days_in_range"),
            days_in_range("pre_dunning_days", name="policy_pre_dunning_days_in_range"),
            days_in_range("max_promise_days", name="policy_max_promise_days_in_range", low=1, high=PROMISE_DAYS_MAX),
            models.CheckConstraint(
                condition=Q(max_broken_promises__lte=BROKEN_PROMISES_MAX),
                name="policy_max_broken_promises_in_range",
                violation_error_message=f"Broken promises at most: from 0 to {BROKEN_PROMISES_MAX}.",
            ),
            models.CheckConstraint(
                condition=Q(plan_max_instalments__gte=1, plan_max_instalments__lte=PLAN_INSTALMENTS_MAX),
                name="policy_plan_max_instalments_in_range",
                violation_error_message=f"Plan max instalments must be from 1 to {PLAN_INSTALMENTS_MAX}.",
            ),
            models.CheckConstraint(
                condition=Q(plan_min_instalment__gte=0, plan_self_serve_max_amount__gte=0),
                name="policy_plan_amounts_not_negative",
                violation_error_message="The plans' minimum instalment and largest amount cannot be negative.",
            ),
            days_in_range("plan_max_days", name="policy_plan_max_days_in_range", low=1),
            days_in_range("plan_grace_days", name="policy_plan_grace_days_in_range"),
            models.CheckConstraint(
                condition=Q(plan_min_down_payment_percent__gte=0, plan_min_down_payment_percent__lte=99),
                name="policy_plan_down_payment_percent_in_range",
                violation_error_message="Plan min down payment percent must be from 0 to 99.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        if self.plan_default_step_id and self.plan_default_step.policy_id != self.pk:
            raise ValidationError({"plan_default_step": PLAN_DEFAULT_STEP_ELSEWHERE})


class Step(models.Model):
    class Action(models.TextChoices):
        REMINDER = "reminder", "Reminder"
        FINAL_NOTICE = "final_notice", "Final notice"
        CALL_TASK = "call_task", "Call task"
        SUSPEND_SERVICE = "suspend_service", "Suspend service"
        RETRY_PAYMENT = "retry_payment", "Retry payment"

    MESSAGE_ACTIONS = (Action.REMINDER, Action.FINAL_NOTICE, Action.CALL_TASK)

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    offset_days = models.PositiveIntegerField(
        validators=[days_at_most_ten_years()], help_text="Days after the oldest overdue invoice's due date."
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    template = models.ForeignKey(
        MessageTemplate,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        help_text="The message; its translation in the customer's language is used when there is one.",
    )
    tone = models.CharField(max_length=10, choices=Tone.choices, default=Tone.FRIENDLY)
    requires_approval = models.BooleanField(default=False)
    review_before_send = models.BooleanField(
        default=False, help_text="The message waits as a draft for a collector to personalize and send."
    )

    class Meta:
        ordering = ["policy", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "position"], name="one_step_per_position"),
            days_in_range("offset_days", name="step_offset_days_in_range"),
        ]

    def __str__(self) -> str:
        if self.action in self.MESSAGE_ACTIONS and self.action != self.Action.CALL_TASK:
            return f"Day {self.offset_days}: {self.get_action_display()} ({self.get_channel_display()})"
        return f"Day {self.offset_days}: {self.get_action_display()}"


class Case(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        PAUSED = "paused", "Paused"
        RESOLVED = "resolved", "Resolved"
        WRITTEN_OFF = "written_off", "Written off"
        CLOSED = "closed", "Closed"

    ACTIVE_STATUSES = (Status.OPEN, Status.AWAITING_APPROVAL, Status.PAUSED)

    class PaymentProblem(models.TextChoices):
        """Why the case's last charge failed, read from its decline: what the customer is asked to do."""

        NEW_CARD = "new_card", "Needs a new card"
        AUTHENTICATION = "authentication", "Needs the customer to confirm the payment"
        NO_FUNDS = "no_funds", "Not enough funds"
        UNKNOWN = "unknown", "Declined for another reason"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="cases")
    currency = models.CharField(max_length=3, validators=[validate_currency])
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="cases")
    invoices = models.ManyToManyField(Invoice, related_name="cases")
    messages = models.ManyToManyField(Message, related_name="cases", blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    amount_overdue = models.BigIntegerField(default=0, help_text="In minor units of the currency.")
    entered_amount = models.BigIntegerField(
        default=0,
        help_text="What entered dunning: the amounts due of the invoices when they joined the case (minor units). "
        "Recovery rates divide by it.",
    )
    anchor_due_on = models.DateField(help_text="Due date of the oldest overdue invoice; step offsets count from it.")
    current_step = models.ForeignKey(
        Step, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="Last step performed."
    )
    next_step = models.ForeignKey(Step, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    next_action_at = models.DateTimeField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="assigned_cases"
    )
    paused_until = models.DateTimeField(null=True, blank=True)
    pause_reason = models.CharField(max_length=255, blank=True)
    service_suspended = models.BooleanField(default=False)
    payment_problem = models.CharField(
        max_length=20,
        choices=PaymentProblem.choices,
        blank=True,
        help_text="Why the last charge failed (blank: none pending). Every message asks for what fixes it; "
        "a new card, a card payment or the case closing clears it.",
    )
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-opened_at"]
        permissions = [
            ("work_case", "Work cases: personalize and send, log calls, pause, propose escalations"),
            ("decide_approval", "Approve or reject escalations, suspensions, plans and write-offs"),
        ]
        indexes = [
            # The tick's scan: only open cases, by when they are due.
            models.Index(fields=["next_action_at"], condition=Q(status="open"), name="case_due_idx"),
            models.Index(fields=["paused_until"], condition=Q(status="paused"), name="case_paused_until_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "currency"],
                condition=Q(status__in=["open", "awaiting_approval", "paused"]),
                name="one_active_case_per_customer_currency",
                violation_error_message="This customer already has an active case in this currency.",
            ),
            models.CheckConstraint(
                condition=Q(amount_overdue__gte=0),
                name="case_amount_not_negative",
                violation_error_message="The amount overdue cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_SHAPE),
                name="case_currency_iso_shape",
                violation_error_message="The currency must be a three-letter ISO 4217 code, like EUR.",
            ),
            models.CheckConstraint(
                condition=~Q(status="open") | Q(next_action_at__isnull=False) | Q(next_step__isnull=True),
                name="case_open_with_next_step_is_scheduled",
            ),
        ]

    def __str__(self) -> str:
        return f"Case {self.pk} · {self.customer} · {self.currency}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class CaseEvent(models.Model):
    """The timeline and the audit trail in one append-only table (PostgreSQL refuses UPDATE/DELETE)."""

    class Actor(models.TextChoices):
        SYSTEM = "system", "System"
        USER = "user", "Staff user"
        CUSTOMER = "customer", "Customer"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="events")
    type = models.CharField(max_length=80, help_text="Dotted, like collections.case.opened.")
    actor = models.CharField(max_length=10, choices=Actor.choices, default=Actor.SYSTEM)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["case", "at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(actor="user", user__isnull=False) | ~Q(actor="user"), name="event_user_actor_has_user"
            )
        ]

    def __str__(self) -> str:
        return self.type


class StepExecution(models.Model):
    """The idempotency record: a step is performed once per (case, step, attempt)."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="executions")
    step = models.ForeignKey(Step, on_delete=models.PROTECT, related_name="+")
    attempt = models.PositiveSmallIntegerField(default=1)
    message = models.OneToOneField(Message, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "step", "attempt"], name="step_performed_once"),
        ]

    def __str__(self) -> str:
        return f"{self.step} for case {self.case_id} (attempt {self.attempt})"


class Approval(models.Model):
    """A decision waiting for a manager (four eyes): a ladder step that needs approval, or a
    collector's request to escalate now, to skip a step, or to write the amount off."""

    class Kind(models.TextChoices):
        STEP = "step", "Step"
        ESCALATION = "escalation", "Escalate now"
        SKIP = "skip", "Skip a step"
        WRITE_OFF = "write_off", "Write-off"
        PLAN = "plan", "Payment plan"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="approvals")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.STEP)
    step = models.ForeignKey(
        Step, on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="None for a write-off."
    )
    attempt = models.PositiveSmallIntegerField(default=1)
    amount = models.BigIntegerField(null=True, blank=True, help_text="A write-off's amount, in minor units.")
    plan = models.ForeignKey(
        "PaymentPlan",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="approvals",
        help_text="A payment plan's terms, outside the policy's self-serve limits.",
    )
    reason = models.TextField(blank=True, help_text="Why the requester asks.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_at = models.DateTimeField(default=timezone.now)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "step", "attempt"], condition=Q(kind="step"), name="one_approval_per_step_attempt"
            ),
            models.UniqueConstraint(
                fields=["case", "kind"],
                condition=Q(status="pending") & ~Q(kind="step"),
                name="one_pending_request_per_case_kind",
                violation_error_message="A request of this kind already waits for a manager on this case.",
            ),
            models.CheckConstraint(
                condition=Q(kind="write_off", step__isnull=True, amount__gt=0, plan__isnull=True)
                | Q(kind="plan", step__isnull=True, amount__isnull=True, plan__isnull=False)
                | (~Q(kind__in=["write_off", "plan"]) & Q(step__isnull=False, amount__isnull=True, plan__isnull=True)),
                name="approval_kind_fields",
                violation_error_message="A write-off has a positive amount and no step, a plan request names its "
                "plan; other requests name a step.",
            ),
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="approval_four_eyes",
                violation_error_message="Nobody approves their own request.",
            ),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.STEP:
            return f"{self.step} for case {self.case_id}: {self.get_status_display()}"
        subject = (
            self.get_kind_display()
            if self.kind in (self.Kind.WRITE_OFF, self.Kind.PLAN)
            else f"{self.get_kind_display()}: {self.step}"
        )
        return f"{subject} for case {self.case_id}: {self.get_status_display()}"


class DraftManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(status=Message.Status.DRAFT)


class Draft(Message):
    """A message waiting for a collector to personalize and send it (the admin's review queue)."""

    objects = DraftManager()

    class Meta:
        proxy = True
        verbose_name = "draft to review"
        verbose_name_plural = "drafts to review"


class CallTaskManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(channel="call").exclude(status__in=["draft", "cancelled"])


class CallTask(Message):
    """A call for a collector to make, with its script; the outcome lands on the case's timeline."""

    objects = CallTaskManager()

    class Meta:
        proxy = True
        verbose_name = "call task"


class ServiceHookDelivery(models.Model):
    """One call to the customer's product to suspend or reinstate service, with its outcome."""

    class Action(models.TextChoices):
        SUSPEND = "suspend", "Suspend service"
        REINSTATE = "reinstate", "Reinstate service"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="hook_deliveries")
    action = models.CharField(max_length=10, choices=Action.choices)
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "service hook deliveries"

    def __str__(self) -> str:
        return f"{self.get_action_display()} for case {self.case_id}: {self.get_status_display()}"
