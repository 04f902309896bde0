import datetime as dt
import json
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from dunning_site.accounts.models import Channel, Customer

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def default_contact_days() -> list[int]:
    return [0, 1, 2, 3, 4, 5]  # Monday to Saturday: no Sundays


CONTACT_DAYS_NOT_A_LIST = (
    "Write the days as a list of weekday numbers, 0 = Monday … 6 = Sunday: for example [0, 1, 2, 3, 4]."
)
CONTACT_DAYS_EMPTY = "Allow at least one day: with none, messages would wait for ever."
CONTACT_DAYS_TOO_MANY = "A week has 7 days; this lists %(count)s."
CONTACT_DAY_UNKNOWN = "%(day)s is not a weekday: use the numbers 0 (Monday) to 6 (Sunday)."
CONTACT_DAY_REPEATED = "%(day)s is listed twice."


def contact_days_problem(days) -> str | None:
    """Why `days` is not a usable set of contact days, or None. Staying inside 0–6 and each once
    keeps the list at most 7 long, so this reads at most 8 entries of whatever it is given."""
    if not isinstance(days, list):
        return CONTACT_DAYS_NOT_A_LIST
    if not days:
        return CONTACT_DAYS_EMPTY
    if len(days) > len(WEEKDAYS):
        return CONTACT_DAYS_TOO_MANY % {"count": f"{len(days):,}"}
    for index, day in enumerate(days):
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            return CONTACT_DAY_UNKNOWN % {"day": json.dumps(day)[:40]}
        if day in days[:index]:
            return CONTACT_DAY_REPEATED % {"day": day}
    return None


def validate_contact_days(days) -> None:
    if problem := contact_days_problem(days):
        raise ValidationError(problem, code="invalid_contact_days")


class ContactRules(models.Model):
    """When and how often a customer may be contacted; enforced at send time, for every channel."""

    name = models.CharField(max_length=120, unique=True)
    window_start = models.TimeField(default=dt.time(8), help_text="Earliest local time, in the customer's zone.")
    window_end = models.TimeField(default=dt.time(20), help_text="Latest local time (exclusive).")
    # No CheckConstraint backs this validator: PostgreSQL could say "an array inside [0…6]" (jsonb
    # containment), but SQLite, the zero-setup database, cannot look inside JSON in a constraint (no
    # subqueries there). A row written around the validator gets the safe days when sending (rules.Rules).
    contact_days = models.JSONField(
        default=default_contact_days,
        validators=[validate_contact_days],
        error_messages={"blank": CONTACT_DAYS_EMPTY, "null": CONTACT_DAYS_EMPTY},
        help_text="Weekdays allowed, 0 = Monday … 6 = Sunday, for example [0, 1, 2, 3, 4] for Monday to Friday.",
    )
    max_contacts_per_week = models.PositiveSmallIntegerField(
        default=3, help_text="Emails, SMS and letters in any rolling 7 days, all channels together."
    )
    max_calls_per_week = models.PositiveSmallIntegerField(default=7, help_text="Call attempts in any rolling 7 days.")
    discreet_sms = models.BooleanField(
        default=False, help_text="SMS never carry names or amounts (a number may have changed hands)."
    )

    class Meta:
        verbose_name_plural = "contact rules"
        constraints = [
            models.CheckConstraint(
                condition=Q(window_start__lt=F("window_end")),
                name="contact_window_start_before_end",
                violation_error_message="The contact window must start before it ends.",
            ),
            models.CheckConstraint(
                condition=Q(max_contacts_per_week__gte=1) & Q(max_calls_per_week__gte=1),
                name="contact_caps_at_least_one",
                violation_error_message="Caps must allow at least one contact a week.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Tone(models.TextChoices):
    FRIENDLY = "friendly", "Friendly"
    FIRM = "firm", "Firm"
    FINAL = "final", "Final"


class MessageTemplate(models.Model):
    """A staff-editable message. Templates sharing a `key` are translations of one another."""

    key = models.SlugField(max_length=80, help_text="Shared by the translations and segment variants of one message.")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    language = models.CharField(max_length=16, default="en")
    segment = models.SlugField(max_length=50, blank=True, help_text="Blank: every segment.")
    tone = models.CharField(max_length=10, choices=Tone.choices, default=Tone.FRIENDLY)
    subject = models.CharField(max_length=255, blank=True)
    body = models.TextField(help_text="Plain text: the SMS, the call script, the letter, or the email's text part.")
    html_body = models.TextField(blank=True, help_text="Email only: the HTML part (the text part is its alternative).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key", "language", "segment"]
        constraints = [
            models.UniqueConstraint(
                fields=["key", "language", "segment"],
                name="one_template_per_key_language_segment",
                violation_error_message="This message already has a version in this language for this segment.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.language})"


def new_tracking_token() -> str:
    return secrets.token_urlsafe(32)  # 43 characters, 256 random bits


class Message(models.Model):
    """One outbound message: the outbox row is written with the step, delivery happens in a job."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft (to review)"
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        BOUNCED = "bounced", "Bounced"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class CallOutcome(models.TextChoices):
        REACHED = "reached", "Reached"
        VOICEMAIL = "voicemail", "Left a voicemail"
        PROMISE = "promise", "Promise to pay"
        DISPUTE = "dispute", "Dispute"
        REFUSED = "refused", "Refused to pay"
        WRONG_NUMBER = "wrong_number", "Wrong number"

    PENDING_STATUSES = (Status.DRAFT, Status.QUEUED)
    BUILT_IN_WORDS = "-"  # template_key of a message written in its channel's built-in words

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="messages")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    template = models.ForeignKey(MessageTemplate, on_delete=models.SET_NULL, null=True, blank=True)
    # The message asked for when it was written (a template key, or BUILT_IN_WORDS): a message not yet
    # sent is written again from it when what the customer owes changes. Empty on messages written
    # before it was kept: their words cannot be rebuilt, so a person reviews them instead.
    template_key = models.CharField(max_length=80, blank=True)
    review_reason = models.CharField(
        max_length=255, blank=True, help_text="Why a collector must read it again before it goes (cleared on edit)."
    )
    to_address = models.CharField(
        max_length=255, blank=True, help_text="Email address, phone number or postal address at sending time."
    )
    subject = models.CharField(max_length=255, blank=True)
    body = models.TextField()
    html_body = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    contact_rules = models.ForeignKey(ContactRules, on_delete=models.PROTECT, null=True, blank=True)
    deferred_reason = models.CharField(max_length=255, blank=True, help_text="Why it waits, when a rule held it.")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    edited_at = models.DateTimeField(null=True, blank=True)
    letter = models.FileField(upload_to="letters/%Y/%m/", blank=True)
    call_outcome = models.CharField(max_length=20, choices=CallOutcome.choices, blank=True)
    call_outcome_at = models.DateTimeField(null=True, blank=True)
    call_outcome_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    idempotency_key = models.CharField(max_length=200, unique=True)
    # Sent to the provider with the message and handed back in its delivery events: the events find
    # their message by it, never by the sequential id, which anyone could guess.
    tracking_token = models.CharField(max_length=64, unique=True, default=new_tracking_token, editable=False)
    provider_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    send_after = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The sweeper's scan: only rows still waiting to go out.
            models.Index(fields=["send_after"], condition=Q(status="queued"), name="message_queued_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    status__in=["draft", "queued", "sending", "sent", "delivered", "bounced", "failed", "cancelled"]
                ),
                name="message_status_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.to_address}: {self.subject or self.body[:40]}"


class DeliveryEvent(models.Model):
    """What a provider told us about a message (delivered, bounced, opened…), each event once."""

    message = models.ForeignKey(Message, on_delete=models.PROTECT, related_name="delivery_events")
    kind = models.CharField(max_length=20)
    provider_event_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} for message {self.message_id}"


class InboundSms(models.Model):
    """Each SMS a customer sent us, recorded once under the provider's id (Twilio's MessageSid).

    Twilio's signatures carry no time: a signed START captured once could be posted again after a
    later STOP and undo it. Recorded once, a repeated id changes nothing. The rows are also the
    audit trail of the replies: who wrote which keyword, when, and what it did."""

    class Effect(models.TextChoices):
        OPTED_OUT = "opted_out", "Opted out of SMS"
        OPTED_IN = "opted_in", "Opted in to SMS"
        NONE = "none", "No change (not a keyword)"

    provider_id = models.CharField(max_length=64, unique=True, help_text="Twilio's MessageSid.")
    sender = models.CharField(max_length=64, help_text="The number it came from.")
    keyword = models.CharField(max_length=16, blank=True, help_text="The opt-out or opt-in keyword it was, if any.")
    effect = models.CharField(max_length=16, choices=Effect.choices)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-received_at", "-pk"]
        verbose_name = "inbound SMS"
        verbose_name_plural = "inbound SMS"
        constraints = [
            models.CheckConstraint(
                condition=Q(effect__in=["opted_out", "opted_in", "none"]), name="inbound_sms_effect_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.keyword or 'Reply'} from {self.sender}"
