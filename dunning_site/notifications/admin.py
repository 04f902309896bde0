from django import forms
from django.contrib import admin

from dunning_site.notifications.models import Message, MessageTemplate
from dunning_site.notifications.rendering import template_errors


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["key", "channel", "language", "tone", "subject", "body"]

    def clean(self):
        cleaned = super().clean()
        for field, error in template_errors(subject=cleaned.get("subject", ""), body=cleaned.get("body", "")).items():
            self.add_error(field, error)
        return cleaned


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ["key", "language", "channel", "tone", "subject", "updated_at"]
    list_filter = ["channel", "tone", "language"]
    search_fields = ["key", "subject", "body"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """The outbox and its history; rows are written by the engine, never by hand."""

    list_display = ["created_at", "customer", "channel", "to_address", "subject", "status", "sent_at", "attempts"]
    list_filter = ["status", "channel", "created_at"]
    search_fields = ["to_address", "subject", "customer__name", "customer__company", "provider_message_id"]
    list_select_related = ["customer"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Message._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
