"""Staff users, and the billing book: customers, invoices, payments.

Amounts are integer minor units of the row's currency (see dunning_site.lib.money); the database
refuses negative amounts, over-payments, malformed currency codes and impossible dates, so a bad
write fails whole whichever door it came through.
"""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from dunning_site.accounts.time_zones import Source as TimeZoneSource
from dunning_site.accounts.time_zones import world_zones
from dunning_site.lib.money import format_money
from dunning_site.lib.validators import validate_currency, validate_e164_phone, validate_time_zone

CURRENCY_SHAPE = r"^[A-Z]{3}$"
E164_SHAPE = r"^\+[1-9][0-9]{6,14}$"
TIME_ZONE_SHAPE = r"^(UTC|[A-Za-z]+(/[A-Za-z0-9_+-]+)+|[A-Za-z0-9_+-]+)$"


class User(AbstractUser):
    """Finance staff. Roles are groups (Viewer, Collector, Manager, Admin)."""

    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone], help_text="Where the collector works."
    )
    signature = models.TextField(blank=True, help_text="Signs the messages this collector sends.")


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    LETTER = "letter", "Letter"
    CALL = "call", "Phone call"


class DoNotContactReason(models.TextChoices):
    LEGAL_HOLD = "legal_hold", "Legal hold"
    DISPUTE = "dispute", "Dispute"
    BANKRUPTCY = "bankruptcy", "Bankruptcy"
    OTHER = "other", "Other"


class Customer(models.Model):
    external_id = models.CharField(
        max_length=255, unique=True, null=True, blank=True, help_text="Id in the billing system (Stripe cus_…)."
    )
    name = models.CharField(max_length=200)
    company = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(
        max_length=16, blank=True, validators=[validate_e164_phone], help_text="E.164, like +33612345678."
    )
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    # A zone learned from the billing system may be one of several (a country without its state):
    # the contact rules then keep to hours that are daytime in every candidate. Staff's word is final.
    time_zone_source = models.CharField(
        max_length=20,
        choices=TimeZoneSource.CHOICES,
        default=TimeZoneSource.STAFF,
        help_text="Where the time zone came from; a zone set by staff is never replaced by the billing system's.",
    )
    time_zone_candidates = models.JSONField(
        default=list, blank=True, help_text="Every zone the customer may be in, when the zone is not known exactly."
    )
    language = models.CharField(max_length=16, default="en", help_text="BCP 47 tag, like en, fr or pt-BR.")
    language_source = models.CharField(
        max_length=10,
        choices=[
            ("staff", "Set by staff"),
            ("billing", "Billing system (preferred locales)"),
            ("customer", "Chosen by the customer on their page"),
        ],
        default="staff",
        help_text="A language set by staff or chosen by the customer is never replaced by the billing system's.",
    )
    segment = models.SlugField(max_length=50, default="standard")
    postal_address = models.TextField(blank=True, help_text="For letters: one line per row, country last.")
    do_not_contact = models.BooleanField(
        default=False, help_text="Stops every outbound message (legal hold, dispute, bankruptcy)."
    )
    do_not_contact_reason = models.CharField(max_length=20, choices=DoNotContactReason.choices, blank=True)
    email_unusable_since = models.DateTimeField(null=True, blank=True, help_text="Hard bounce or complaint.")
    email_unusable_reason = models.CharField(max_length=255, blank=True)
    phone_unusable_since = models.DateTimeField(null=True, blank=True, help_text="Undeliverable or wrong number.")
    phone_unusable_reason = models.CharField(max_length=255, blank=True)
    default_payment_method = models.CharField(
        max_length=255, blank=True, help_text="The billing system's id of the card on file (Stripe pm_…)."
    )
    card_expires_on = models.DateField(null=True, blank=True, help_text="Last day the card on file is valid.")
    card_brand = models.CharField(max_length=20, blank=True, help_text="Of the card on file (visa, mastercard…).")
    card_last4 = models.CharField(max_length=4, blank=True, help_text="Last four digits of the card on file.")
    portal_link_version = models.PositiveIntegerField(
        default=1, help_text="Raising it revokes every portal and card-update link sent so far."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["segment"]), models.Index(fields=["email"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(phone="") | Q(phone__regex=E164_SHAPE),
                name="customer_phone_e164",
                violation_error_message="Write the phone number in E.164 form, like +33612345678.",
            ),
            models.CheckConstraint(
                condition=Q(time_zone__regex=TIME_ZONE_SHAPE),
                name="customer_time_zone_shape",
                violation_error_message="The time zone must be an IANA name such as Europe/Paris.",
            ),
            models.CheckConstraint(
                condition=~Q(name=""),
                name="customer_name_not_empty",
                violation_error_message="A customer needs a name.",
            ),
            models.CheckConstraint(
                condition=Q(do_not_contact=False) | ~Q(do_not_contact_reason=""),
                name="customer_do_not_contact_has_reason",
                violation_error_message="Say why the customer must not be contacted.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.company})" if self.company else self.name

    @property
    def time_zone_is_guess(self) -> bool:
        return bool(self.time_zone_candidates) or self.time_zone_source in (
            TimeZoneSource.GUESS,
            TimeZoneSource.UNKNOWN,
        )

    @property
    def time_zones_assumed(self) -> tuple[str, ...]:
        """The zones the contact rules keep to daytime in: the zone itself when it is known, every
        candidate when it is a guess, and every clock on earth when not even the country is known."""
        if self.time_zone_source == TimeZoneSource.UNKNOWN:
            return world_zones()
        return tuple(self.time_zone_candidates) or (self.time_zone,)


class Consent(models.Model):
    """Whether a customer agreed to be contacted on a channel, and when and how that was recorded."""

    class Source(models.TextChoices):
        SIGNUP = "signup", "Sign-up form"
        CHECKOUT = "checkout", "Checkout"
        PORTAL = "portal", "Customer portal"
        STAFF = "staff", "Recorded by staff"
        IMPORT = "import", "Imported"
        REPLY = "reply", "Customer reply (e.g. STOP)"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe link"
        COMPLAINT = "complaint", "Spam complaint"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    granted = models.BooleanField()
    recorded_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=20, choices=Source.choices)
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "channel"], name="one_consent_per_channel")]

    def __str__(self) -> str:
        return f"{self.get_channel_display()}: {'granted' if self.granted else 'refused'}"


class Invoice(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=64, unique=True)
    currency = models.CharField(max_length=3, validators=[validate_currency])
    total = models.BigIntegerField(help_text="In minor units of the currency (cents).")
    amount_paid = models.BigIntegerField(default=0, help_text="In minor units of the currency (cents).")
    amount_written_off = models.BigIntegerField(
        default=0,
        help_text="Credited by write-offs (the sum of the invoice's credit notes), in minor units: no longer owed.",
    )
    # What the customer still owes on the invoice: the one figure every page, export and aggregate reads.
    amount_remaining = models.GeneratedField(
        expression=F("total") - F("amount_paid") - F("amount_written_off"),
        output_field=models.BigIntegerField(),
        db_persist=True,
    )
    issued_on = models.DateField()
    due_on = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    external_id = models.CharField(
        max_length=255, unique=True, null=True, blank=True, help_text="Id in the billing system (Stripe in_…)."
    )
    hosted_payment_url = models.URLField(max_length=500, blank=True)
    pdf_url = models.URLField(max_length=500, blank=True, help_text="The billing system's PDF of the invoice.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_on", "number"]
        indexes = [
            # The opener's scan: open invoices by due date, nothing else.
            models.Index(fields=["due_on"], condition=Q(status="open"), name="invoice_open_due_idx"),
            models.Index(fields=["customer", "currency", "status"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(total__gte=0),
                name="invoice_total_not_negative",
                violation_error_message="An invoice total cannot be negative.",
            ),
            models.CheckConstraint(
                condition=Q(amount_paid__gte=0) & Q(amount_paid__lte=F("total")),
                name="invoice_paid_between_zero_and_total",
                violation_error_message="The amount paid must be between zero and the invoice total.",
            ),
            models.CheckConstraint(
                condition=Q(amount_written_off__gte=0) & Q(amount_written_off__lte=F("total") - F("amount_paid")),
                name="invoice_written_off_within_unpaid",
                violation_error_message="What is written off must be between zero and what is left unpaid.",
            ),
            models.CheckConstraint(
                condition=Q(due_on__gte=F("issued_on")),
                name="invoice_due_not_before_issue",
                violation_error_message="The due date cannot be before the issue date.",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_SHAPE),
                name="invoice_currency_iso_shape",
                violation_error_message="The currency must be a three-letter ISO 4217 code, like EUR.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "paid", "void", "uncollectible"]),
                name="invoice_status_valid",
                violation_error_message="Unknown invoice status.",
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def total_display(self) -> str:
        return format_money(self.total, self.currency)

    @property
    def owed(self) -> int:
        """What is left to pay: the total less payments and write-offs (amount_remaining, computed here
        so it is right on an instance changed in memory, before the database recomputes the column)."""
        return self.total - self.amount_paid - self.amount_written_off

    @property
    def remaining_display(self) -> str:
        return format_money(self.owed, self.currency)


class CreditNote(models.Model):
    """Money on an invoice the customer no longer owes: a manager's write-off, recorded on the invoice
    (Invoice.amount_written_off is the sum of its credit notes) and, for an invoice Stripe holds, issued
    at Stripe as a credit note too (external_id, once Stripe has it)."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    amount = models.BigIntegerField(help_text="In minor units of the invoice's currency.")
    reason = models.CharField(max_length=500)
    at = models.DateTimeField(default=timezone.now)
    external_id = models.CharField(
        max_length=255, unique=True, null=True, blank=True, help_text="Id in the billing system (Stripe cn_…)."
    )
    recorded_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0),
                name="credit_note_amount_positive",
                violation_error_message="A credit note must be more than zero.",
            ),
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.invoice.currency)} credited on {self.invoice}"

    def money_currency(self) -> str | None:
        return self.invoice.currency if self.invoice_id else None


class Payment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Method(models.TextChoices):
        CARD = "card", "Card"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        CHEQUE = "cheque", "Cheque"
        OTHER = "other", "Other"

    # What staff may record by hand: money that did not come through the billing system, which Stripe
    # is told about. Card payments are written by the billing integration only: one typed in by hand
    # would close the invoice here while Stripe, never told, charged the card again.
    MANUAL_METHODS = (Method.BANK_TRANSFER, Method.CHEQUE, Method.OTHER)

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = models.BigIntegerField(help_text="In minor units of the invoice's currency.")
    status = models.CharField(max_length=16, choices=Status.choices)
    method = models.CharField(max_length=16, choices=Method.choices, default=Method.CARD)
    decline_code = models.CharField(max_length=64, blank=True)
    advice_code = models.CharField(max_length=64, blank=True, help_text="Card network advice (Stripe advice_code).")
    network_decline_code = models.CharField(max_length=16, blank=True, help_text="Raw code from the card network.")
    network_advice_code = models.CharField(
        max_length=16, blank=True, help_text="Card network's merchant advice code (Stripe network_advice_code)."
    )
    decline_message = models.CharField(max_length=500, blank=True)
    external_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    reference = models.CharField(max_length=255, blank=True, help_text="Bank reference, cheque number…")
    recorded_by = models.ForeignKey(User, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0),
                name="payment_amount_positive",
                violation_error_message="A payment must be more than zero.",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "failed"]),
                name="payment_status_valid",
                violation_error_message="Unknown payment status.",
            ),
        ]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.invoice.currency)} {self.get_status_display().lower()}"

    def money_currency(self) -> str | None:
        return self.invoice.currency if self.invoice_id else None


class BillingEvent(models.Model):
    """A webhook event from the billing system, stored once (its id is unique) before processing."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (not an event we act on)"
        FAILED = "failed", "Failed"

    provider = models.CharField(max_length=20, default="stripe")
    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    created = models.DateTimeField(help_text="When the billing system created the event.")
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    payload = models.JSONField()

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["type", "created"])]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
