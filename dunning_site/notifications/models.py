from django.db import models
from django.db.models import Q
from django.utils import timezone

from dunning_site.accounts.models import Channel, Customer


class Tone(models.TextChoices):
    FRIENDLY = "friendly", "Friendly"
    FIRM = "firm", "Firm"
    FINAL = "final", "Final"


class MessageTemplate(models.Model):
    """A staff-editable message. Templates sharing a `key` are translations of one another."""

    key = models.SlugField(max_length=80, help_text="Shared by the translations of one message.")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    language = models.CharField(max_length=16, default="en")
    tone = models.CharField(max_length=10, choices=Tone.choices, default=Tone.FRIENDLY)
    subject = models.CharField(max_length=255, blank=True)
    body = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key", "language"]
        constraints = [models.UniqueConstraint(fields=["key", "language"], name="one_template_per_key_language")]

    def __str__(self) -> str:
        return f"{self.key} ({self.language})"


class Message(models.Model):
    """One outbound message: the outbox row is written with the step, delivery happens in a job."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        BOUNCED = "bounced", "Bounced"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    PENDING_STATUSES = (Status.QUEUED,)

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="messages")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    template = models.ForeignKey(MessageTemplate, on_delete=models.SET_NULL, null=True, blank=True)
    to_address = models.CharField(max_length=255, help_text="Email address or phone number at sending time.")
    subject = models.CharField(max_length=255, blank=True)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    idempotency_key = models.CharField(max_length=200, unique=True)
    provider_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    send_after = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
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
                condition=Q(status__in=["queued", "sending", "sent", "delivered", "bounced", "failed", "cancelled"]),
                name="message_status_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.to_address}: {self.subject or self.body[:40]}"
