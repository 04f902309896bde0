from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from dunning_site.notifications.models import CONTACT_DAYS_EMPTY, ContactRules, DeliveryEvent, InboundSms, Message


@admin.register(ContactRules)
class ContactRulesAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "window_start",
        "window_end",
        "contact_days",
        "max_contacts_per_week",
        "max_calls_per_week",
        "discreet_sms",
    ]

    def get_form(self, request, obj=None, **kwargs):
        # To a form an empty list is merely "required"; the model's own words say why it is refused.
        kwargs["error_messages"] = {"contact_days": {"required": CONTACT_DAYS_EMPTY}}
        return super().get_form(request, obj, **kwargs)


class DeliveryEventInline(admin.TabularInline):
    model = DeliveryEvent
    fields = ["at", "kind", "provider_event_id", "data"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """The outbox and its history; rows are written by the engine and collectors, never by hand."""

    list_display = ["created_at", "customer", "channel", "to_address", "subject", "status", "sent_at", "attempts"]
    list_filter = ["status", "channel", "created_at"]
    search_fields = ["to_address", "subject", "customer__name", "customer__company", "provider_message_id"]
    list_select_related = ["customer"]
    date_hierarchy = "created_at"
    inlines = [DeliveryEventInline]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Message._meta.fields if field.name != "letter"] + ["letter_link"]

    def get_exclude(self, request, obj=None):
        return ["letter"]

    @admin.display(description="Printable letter")
    def letter_link(self, obj: Message) -> str:
        if not obj.letter:
            return "—"
        return format_html('<a href="{}">Download the PDF</a>', reverse("notifications:letter_download", args=[obj.pk]))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(admin.ModelAdmin):
    list_display = ["at", "message", "kind", "provider_event_id"]
    list_filter = ["kind"]
    list_select_related = ["message__customer"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InboundSms)
class InboundSmsAdmin(admin.ModelAdmin):
    """Customers' SMS as they came, each once: the evidence behind every opt-out and opt-in by reply."""

    list_display = ["received_at", "sender", "keyword", "effect", "provider_id"]
    list_filter = ["effect", "keyword"]
    search_fields = ["sender", "provider_id"]
    date_hierarchy = "received_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
