from functools import partial

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import transaction
from django.utils import timezone

from dunning_site.accounts import services
from dunning_site.accounts.models import BillingEvent, Consent, CreditNote, Customer, Invoice, Payment, User
from dunning_site.accounts.resources import BookImportMixin, CustomerResource, InvoiceResource
from dunning_site.accounts.time_zones import Source as TimeZoneSource
from dunning_site.lib.admin import MoneyFieldsForm, money_column
from dunning_site.lib.money import format_money
from dunning_site.lib.validators import phone_to_e164

admin.site.register(User, DjangoUserAdmin)


class NoDeleteMixin:
    """For rows whose deletion would lose history: neither "delete selected" nor the delete page."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# django-axes' admin, with two changes: the sign-in history (who signed in from where, and the
# failures) is kept, and its clean-up action states its permission and works.
class SignInLogAdmin(NoDeleteMixin, AccessLogAdmin):
    pass


class SignInFailureLogAdmin(NoDeleteMixin, AccessFailureLogAdmin):
    pass


class FailedSignInAdmin(AccessAttemptAdmin):
    """Deleting someone's attempts unlocks them."""

    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request, queryset) -> None:
        AxesProxyHandler.update_request(request)  # the handler reads the request's time, set only at sign-in
        count = self.handler.clean_expired_user_attempts(request=request)
        self.message_user(request, f"Cleaned up {count} expired access attempts.")


admin.site.unregister([AccessAttempt, AccessLog, AccessFailureLog])
admin.site.register(AccessAttempt, FailedSignInAdmin)
admin.site.register(AccessLog, SignInLogAdmin)
admin.site.register(AccessFailureLog, SignInFailureLogAdmin)


class CustomerForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = [
            "external_id",
            "name",
            "company",
            "email",
            "phone",
            "postal_address",
            "time_zone",
            "language",
            "segment",
            "do_not_contact",
            "do_not_contact_reason",
        ]

    def clean_phone(self) -> str:
        """Accept the number however it is typed (+33 6 12 34 56 78) and store it as E.164."""
        return phone_to_e164(self.cleaned_data["phone"])

    def clean(self) -> dict:
        """A zone or language staff set is staff's: the billing system's hints never replace it."""
        cleaned = super().clean()
        if "time_zone" in self.changed_data:
            self.instance.time_zone_source = TimeZoneSource.STAFF
            self.instance.time_zone_candidates = []
        if "language" in self.changed_data:
            self.instance.language_source = "staff"
        return cleaned


class ConsentInline(admin.TabularInline):
    model = Consent
    extra = 0
    can_delete = False  # what the customer agreed to, and when, is evidence


@admin.register(Consent)
class ConsentAdmin(NoDeleteMixin, admin.ModelAdmin):
    list_display = ["customer", "channel", "granted", "recorded_at", "source"]
    list_filter = ["channel", "granted", "source"]
    search_fields = ["customer__name", "customer__email"]
    autocomplete_fields = ["customer"]
    list_select_related = ["customer"]


@admin.register(Customer)
class CustomerAdmin(NoDeleteMixin, BookImportMixin, admin.ModelAdmin):
    form = CustomerForm
    resource_classes = [CustomerResource]
    list_display = ["name", "company", "email", "phone", "segment", "language", "time_zone", "do_not_contact"]
    search_fields = ["name", "company", "email", "external_id", "phone"]
    list_filter = ["segment", "language", "do_not_contact"]
    readonly_fields = [
        "time_zone_source",
        "time_zone_candidates",
        "language_source",
        "card_brand",
        "card_last4",
        "card_expires_on",
        "email_unusable_since",
        "email_unusable_reason",
        "phone_unusable_since",
        "phone_unusable_reason",
    ]
    inlines = [ConsentInline]
    actions = ["addresses_usable_again", "revoke_portal_links"]

    @admin.action(description="Revoke the portal and card-update links sent so far", permissions=["change"])
    def revoke_portal_links(self, request, queryset) -> None:
        for customer in queryset:
            services.customer_portal_links_revoke(customer=customer)
        self.message_user(request, f"Links revoked for {queryset.count()} customer(s); new messages carry new ones.")

    @admin.action(
        description="The email address and phone number work again (after a correction)", permissions=["change"]
    )
    def addresses_usable_again(self, request, queryset) -> None:
        count = queryset.update(
            email_unusable_since=None, email_unusable_reason="", phone_unusable_since=None, phone_unusable_reason=""
        )
        self.message_user(request, f"{count} customer(s) can be contacted at their addresses again.")


class InvoiceForm(MoneyFieldsForm):
    money_fields = {"total": "Total", "amount_paid": "Amount paid"}

    class Meta:
        model = Invoice
        fields = [
            "customer",
            "number",
            "currency",
            "total",
            "amount_paid",
            "issued_on",
            "due_on",
            "status",
            "external_id",
            "hosted_payment_url",
        ]
        # Links typed without a scheme are https, Django 6's default (and the only sane one for payments).
        field_classes = {"hosted_payment_url": partial(forms.URLField, assume_scheme="https")}

    def clean_currency(self) -> str:
        return self.cleaned_data["currency"].strip().upper()


class CreditNoteInline(admin.TabularInline):
    """Write-offs are decided by a manager on the case (four eyes), never typed in here."""

    model = CreditNote
    extra = 0
    can_delete = False
    fields = ["amount_column", "reason", "at", "recorded_by", "external_id"]
    readonly_fields = fields
    amount_column = money_column("amount", "Amount")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CreditNote)
class CreditNoteAdmin(admin.ModelAdmin):
    """Every write-off credited on an invoice, read-only: written by a manager's approved write-off on
    the case (four eyes), never here."""

    list_display = ["at", "invoice", "amount_column", "reason", "recorded_by", "external_id"]
    search_fields = ["invoice__number", "invoice__customer__name", "external_id", "reason"]
    list_select_related = ["invoice", "recorded_by"]
    amount_column = money_column("amount", "Amount")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(NoDeleteMixin, BookImportMixin, admin.ModelAdmin):
    form = InvoiceForm
    resource_classes = [InvoiceResource]
    list_display = [
        "number",
        "customer",
        "currency",
        "total_column",
        "written_off_column",
        "remaining_column",
        "due_on",
        "status",
    ]
    list_filter = ["status", "currency", "due_on"]
    search_fields = ["number", "external_id", "customer__name", "customer__company", "customer__email"]
    autocomplete_fields = ["customer"]
    list_select_related = ["customer"]
    date_hierarchy = "due_on"

    total_column = money_column("total", "Total")
    written_off_column = money_column("amount_written_off", "Written off")
    remaining_column = money_column("amount_remaining", "Remaining")

    def get_inlines(self, request, obj):
        # Only where there is something to list: the credit notes are read here, never written.
        return [CreditNoteInline] if obj is not None and obj.credit_notes.exists() else []

    def get_readonly_fields(self, request, obj=None):
        # Once an invoice exists, what was paid changes only through recorded payments, and what is
        # written off only through a manager's approved write-off (its credit notes, listed below).
        return ["amount_paid", "written_off_column", "remaining_column", "currency"] if obj else []

    def save_model(self, request, obj, form, change) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            services.invoice_saved(invoice=obj, actor=request.user)


class PaymentForm(MoneyFieldsForm):
    """Money received outside the billing system. No method is chosen for staff: a default is what
    gets saved by whoever does not look."""

    money_fields = {"amount": "Amount"}
    method = forms.ChoiceField(
        choices=[("", "---------"), *[(method.value, method.label) for method in Payment.MANUAL_METHODS]],
        label="Method",
        help_text="Card payments come from the billing system and are recorded by it.",
    )

    class Meta:
        model = Payment
        fields = ["invoice", "amount", "method", "status", "reference", "at", "decline_code", "decline_message"]

    def _currency_for_clean(self) -> str | None:
        invoice = self.cleaned_data.get("invoice")
        return invoice.currency if invoice else None

    def clean(self):
        cleaned = super().clean()
        invoice, amount = cleaned.get("invoice"), cleaned.get("amount")
        if invoice and cleaned.get("at"):
            problem = services.payment_date_problem(invoice=invoice, at=cleaned["at"], now=timezone.now())
            if problem:
                self.add_error("at", problem)
        if invoice and isinstance(amount, int) and cleaned.get("status") == Payment.Status.SUCCEEDED:
            if amount <= 0:
                self.add_error("amount", services.AMOUNT_NOT_POSITIVE)
            elif invoice.status != Invoice.Status.OPEN:
                self.add_error(
                    "invoice", services.INVOICE_NOT_OPEN % {"number": invoice.number, "status": invoice.status}
                )
            elif amount > invoice.amount_remaining:
                self.add_error(
                    "amount",
                    services.OVERPAYMENT
                    % {
                        "amount": format_money(amount, invoice.currency),
                        "remaining": format_money(invoice.amount_remaining, invoice.currency),
                        "number": invoice.number,
                    },
                )
            elif problem := services.manual_part_payment_problem(
                invoice=invoice, amount=amount, method=cleaned.get("method", "")
            ):
                self.add_error("amount", problem)
        return cleaned


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    """Payments are recorded, never edited: a correction is another payment or a refund."""

    form = PaymentForm
    list_display = ["at", "invoice", "amount_column", "status", "method", "decline_code", "recorded_by"]
    list_filter = ["status", "method", "decline_code"]
    search_fields = ["invoice__number", "invoice__customer__name", "external_id", "reference"]
    autocomplete_fields = ["invoice"]
    list_select_related = ["invoice", "recorded_by"]

    amount_column = money_column("amount", "Amount")

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        payment = services.payment_record(
            invoice=obj.invoice,
            amount=obj.amount,
            method=obj.method,
            status=obj.status,
            at=obj.at,
            reference=obj.reference,
            decline_code=obj.decline_code,
            decline_message=obj.decline_message,
            recorded_by=request.user,
        )
        obj.pk = payment.pk


@admin.register(BillingEvent)
class BillingEventAdmin(admin.ModelAdmin):
    """Webhook events as received from the billing system; read-only, kept for audit and replay."""

    list_display = ["received_at", "type", "event_id", "status", "processed_at"]
    list_filter = ["status", "type", "provider"]
    search_fields = ["event_id", "type"]
    date_hierarchy = "received_at"

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in BillingEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
