from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from dunning_site.accounts.models import Channel
from dunning_site.collections import approvals, calls, case_core, policies, policy_forms, promises, selectors
from dunning_site.collections.models import (
    Approval,
    CallTask,
    Case,
    CaseEvent,
    CustomerRequest,
    Dispute,
    Draft,
    Instalment,
    PaymentPlan,
    PaymentRetry,
    Policy,
    Promise,
    ServiceHookDelivery,
    Step,
    StepExecution,
)
from dunning_site.collections.selectors import template_preview
from dunning_site.lib.admin import money_column, requires_permission
from dunning_site.lib.money import to_minor_units
from dunning_site.notifications import services as notification_services
from dunning_site.notifications.models import Message, MessageTemplate
from dunning_site.notifications.rendering import (
    CONTEXT_VARIABLES,
    template_warnings,
)


class ReadOnlyAdminMixin:
    """For rows the engine writes and people only read (the audit trail above all)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class StepInline(admin.TabularInline):
    """The ladder, checked as the finance UI's policy page checks it: positions and days in order, and
    the steps active cases stand on neither changed nor deleted under them."""

    model = Step
    form = policy_forms.StepForm
    formset = policy_forms.BaseStepFormSet
    extra = 0
    fields = policy_forms.StepForm.Meta.fields


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "segment", "currency", "min_amount", "priority", "grace_days", "is_active", "step_count"]
    list_filter = ["is_active", "segment", "currency"]
    search_fields = ["name", "segment"]
    inlines = [StepInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(step_count=Count("steps"))

    @admin.display(description="Steps", ordering="step_count")
    def step_count(self, obj) -> int:
        return obj.step_count

    def get_formset_kwargs(self, request, obj, inline, prefix) -> dict:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, StepInline) and obj.pk:
            kwargs["in_use"] = selectors.steps_in_use(policy=obj)
            kwargs["with_history"] = selectors.steps_with_history(policy=obj)
        return kwargs

    def save_model(self, request, obj, form, change) -> None:
        """Saved with its steps in save_related, as one."""

    def save_related(self, request, form, formsets, change) -> None:
        # The finance UI's service: positions may be swapped, and a step a case reached meanwhile
        # stops the whole save (ValidationError, handled in changeform_view).
        (steps,) = formsets
        policies.policy_save(form=form, steps=steps, user=request.user)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:  # raised by policy_save; the admin's transaction is rolled back
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    # policy_save writes the admin history entry itself, for the finance UI and the admin alike.
    def log_addition(self, request, obj, message):
        return None

    def log_change(self, request, obj, message):
        return None


@admin.register(Step)
class StepAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read only: a step is changed on its policy's page, where the ladder is checked as a whole and
    the steps active cases stand on are left alone."""

    list_display = ["policy", "position", "offset_days", "action", "channel", "template", "tone", "requires_approval"]
    list_filter = ["policy", "action", "channel", "requires_approval"]
    list_select_related = ["policy", "template"]


class CaseEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CaseEvent
    fields = ["at", "type", "actor", "user", "data"]
    readonly_fields = fields
    ordering = ["at", "pk"]
    extra = 0
    verbose_name_plural = "Timeline"


class ApprovalInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Approval
    fields = ["step", "status", "requested_at", "decided_by", "decided_at", "note"]
    readonly_fields = fields
    extra = 0


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "customer",
        "amount_column",
        "status",
        "current_step",
        "next_step",
        "next_action_at",
        "assignee",
    ]
    list_filter = ["status", "currency", "policy", "customer__segment", "service_suspended"]
    search_fields = ["customer__name", "customer__company", "customer__email", "invoices__number"]
    list_select_related = ["customer", "current_step", "next_step", "assignee"]
    readonly_fields = [
        "customer",
        "currency",
        "policy",
        "invoices",
        "messages",
        "status",
        "amount_column",
        "anchor_due_on",
        "current_step",
        "next_step",
        "next_action_at",
        "paused_until",
        "pause_reason",
        "service_suspended",
        "opened_at",
        "resolved_at",
    ]
    fields = ["assignee", *readonly_fields]
    inlines = [ApprovalInline, CaseEventInline]
    actions = ["approve_waiting_step", "pause_cases", "resume_cases", "write_message"]

    amount_column = money_column("amount_overdue", "Amount overdue")
    has_work_permission = requires_permission("collections.work_case")
    has_decide_permission = requires_permission("collections.decide_approval")

    def has_add_permission(self, request) -> bool:
        return False  # cases are opened by the engine from overdue invoices

    def save_model(self, request, obj, form, change) -> None:
        if "assignee" in form.changed_data:
            case_core.case_assign(case=obj, assignee=obj.assignee, user=request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a case and its timeline are the audit trail

    @admin.action(description="Approve the step each selected case is waiting for", permissions=["decide"])
    def approve_waiting_step(self, request, queryset) -> None:
        pending = Approval.objects.filter(case__in=queryset, status=Approval.Status.PENDING, kind=Approval.Kind.STEP)
        _decide(self, request, pending, approve=True)

    @admin.action(
        description="Write a message to the customer (from a template, as a draft to personalize)", permissions=["work"]
    )
    def write_message(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one case to write to.", messages.WARNING)
            return None
        case = queryset.get()
        form = ComposeForm(request.POST if "compose" in request.POST else None)
        if form.is_valid():
            try:
                draft = calls.case_message_compose(
                    case=case,
                    template=form.cleaned_data["template"],
                    channel=form.cleaned_data["channel"],
                    user=request.user,
                )
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
                return None
            self.message_user(request, "Draft written: personalize it, then send it.", messages.SUCCESS)
            return redirect(reverse("admin:collections_draft_change", args=[draft.pk]))
        context = {
            **self.admin_site.each_context(request),
            "case": case,
            "form": form,
            "title": f"Write to {case.customer}",
        }
        return TemplateResponse(request, "admin/collections/case/write_message.html", context)

    @admin.action(description="Pause the selected cases (until resumed)", permissions=["work"])
    def pause_cases(self, request, queryset) -> None:
        done = 0
        for case in queryset:
            try:
                case_core.case_pause(case=case, until=None, reason="Paused from the admin", user=request.user)
                done += 1
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.WARNING)
        self.message_user(request, f"Paused {done} case(s).", messages.SUCCESS)

    @admin.action(description="Resume the selected paused cases", permissions=["work"])
    def resume_cases(self, request, queryset) -> None:
        done = 0
        for case in queryset:
            try:
                case_core.case_resume(case=case, user=request.user)
                done += 1
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.WARNING)
        self.message_user(request, f"Resumed {done} case(s).", messages.SUCCESS)


def _decide(model_admin, request, selected, *, approve: bool) -> None:
    done = 0
    for approval in selected:
        try:
            approvals.approval_decide(approval=approval, approve=approve, user=request.user)
            done += 1
        except ValidationError as error:
            model_admin.message_user(request, f"{approval}: {' '.join(error.messages)}", messages.ERROR)
    verb = "Approved" if approve else "Rejected"
    model_admin.message_user(request, f"{verb} {done} step(s).", messages.SUCCESS if done else messages.WARNING)


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["case", "kind", "step", "status", "requested_at", "requested_by", "decided_by", "decided_at"]
    list_filter = ["status", "kind", "step__action"]
    list_select_related = ["case__customer", "step", "requested_by", "decided_by"]
    actions = ["approve", "reject"]
    # The decision itself goes through the four-eyes service (nobody approves their own request).
    has_decide_permission = requires_permission("collections.decide_approval")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Approval._meta.fields]

    # Ladder steps only: escalations, skips and write-offs are decided in the approvals queue
    # (/approvals/), which shows the amount, the reason and who asked.
    @admin.action(description="Approve the selected ladder steps", permissions=["decide"])
    def approve(self, request, queryset) -> None:
        pending = queryset.filter(status=Approval.Status.PENDING, kind=Approval.Kind.STEP)
        _decide(self, request, pending, approve=True)

    @admin.action(description="Reject the selected ladder steps (the case skips them)", permissions=["decide"])
    def reject(self, request, queryset) -> None:
        _decide(self, request, queryset.filter(status=Approval.Status.PENDING, kind=Approval.Kind.STEP), approve=False)


@admin.register(CaseEvent)
class CaseEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "case", "type", "actor", "user"]
    list_filter = ["type", "actor"]
    search_fields = ["type", "case__customer__name"]
    list_select_related = ["case__customer", "user"]
    date_hierarchy = "at"


@admin.register(Promise)
class PromiseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Promises to pay, as collectors, customers and the tick wrote them (collections.promises)."""

    list_display = ["promised_on", "case", "amount_shown", "source", "status", "paid_shown", "created_at"]
    list_filter = ["status", "source"]
    search_fields = ["case__customer__name", "reason"]
    list_select_related = ["case__customer"]
    date_hierarchy = "promised_on"
    amount_shown = money_column("amount", "Amount")
    paid_shown = money_column("paid_by_then", "Paid by then")


@admin.register(StepExecution)
class StepExecutionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "case", "step", "attempt", "message"]
    list_select_related = ["case__customer", "step", "message"]


class ComposeForm(forms.Form):
    template = forms.ModelChoiceField(
        MessageTemplate.objects.all(), required=False, help_text="Blank: a plain reminder."
    )
    channel = forms.ChoiceField(choices=Channel.choices, initial=Channel.EMAIL)


class MessageTemplateForm(policy_forms.MessageTemplateForm):
    class Meta(policy_forms.MessageTemplateForm.Meta):
        widgets = {"subject": forms.TextInput(attrs={"class": "vTextField", "style": "width: 40em"})}


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    """The template editor: refused when unsafe, warned when promotional, previewed on a real customer."""

    form = MessageTemplateForm
    list_display = ["key", "language", "segment", "channel", "tone", "subject", "updated_at"]
    list_filter = ["channel", "tone", "language", "segment"]
    search_fields = ["key", "subject", "body"]
    change_form_template = "admin/collections/messagetemplate/change_form.html"

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        for warning in template_warnings(subject=obj.subject, body=obj.body, html_body=obj.html_body):
            self.message_user(request, warning, messages.WARNING)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        template = self.get_object(request, object_id)
        extra_context = (extra_context or {}) | {"variables": CONTEXT_VARIABLES}
        if template is not None:
            extra_context |= template_preview(template, request.GET.get("preview_customer"))
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        return super().add_view(request, form_url, (extra_context or {}) | {"variables": CONTEXT_VARIABLES})


class DraftForm(forms.ModelForm):
    send = forms.ChoiceField(
        choices=[("keep", "Keep as a draft"), ("now", "Send now"), ("later", "Send at the time below")],
        initial="keep",
        widget=forms.RadioSelect,
    )
    send_at = forms.DateTimeField(required=False, help_text="In UTC. The contact rules still apply when it goes.")

    class Meta:
        model = Draft
        fields = ["subject", "body", "html_body"]
        labels = {"html_body": "HTML body"}
        widgets = {"subject": forms.TextInput(attrs={"class": "vTextField", "style": "width: 40em"})}

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("send") == "later":
            if not cleaned.get("send_at"):
                self.add_error("send_at", "Say when to send it.")
            elif problem := notification_services.schedule_problem(send_at=cleaned["send_at"], now=timezone.now()):
                self.add_error("send_at", problem)
        if self.instance.status != Message.Status.DRAFT:
            raise ValidationError(
                notification_services.NOT_EDITABLE % {"status": self.instance.get_status_display().lower()}
            )
        return cleaned


@admin.register(Draft)
class DraftAdmin(admin.ModelAdmin):
    """Collectors personalize here: what they save is exactly what the customer receives."""

    form = DraftForm
    list_display = ["created_at", "customer", "channel", "subject", "assigned_to"]
    list_filter = ["channel", "assigned_to"]
    search_fields = ["customer__name", "customer__company", "subject"]
    list_select_related = ["customer", "assigned_to"]
    readonly_fields = ["customer", "channel", "to_address"]
    fields = ["customer", "channel", "to_address", "subject", "body", "html_body", "send", "send_at"]
    actions = ["send_now"]
    has_work_permission = requires_permission("collections.work_case")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        if {"subject", "body", "html_body"} & set(form.changed_data):
            notification_services.message_edit(
                message=obj,
                subject=form.cleaned_data["subject"],
                body=form.cleaned_data["body"],
                html_body=form.cleaned_data["html_body"] if "html_body" in form.changed_data else None,
                user=request.user,
            )
        choice = form.cleaned_data["send"]
        if choice != "keep":
            at = form.cleaned_data["send_at"] if choice == "later" else None
            notification_services.message_release(message=obj, user=request.user, send_at=at)

    def save_related(self, request, form, formsets, change) -> None:
        return None

    @admin.action(description="Send the selected drafts now, as they are", permissions=["work"])
    def send_now(self, request, queryset) -> None:
        sent = 0
        for draft in queryset:
            try:
                notification_services.message_release(message=draft, user=request.user)
                sent += 1
            except ValidationError as error:
                self.message_user(request, f"{draft}: {' '.join(error.messages)}", messages.WARNING)
        self.message_user(request, f"Sent {sent} draft(s) to the outbox.", messages.SUCCESS)


class CallOutcomeForm(forms.ModelForm):
    outcome = forms.ChoiceField(choices=[("", "—"), *Message.CallOutcome.choices], required=False)
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    promised_on = forms.DateField(required=False, help_text="For a promise to pay.")
    promised_amount = forms.DecimalField(required=False, min_value=0, help_text="For a promise to pay, like 120.50.")

    class Meta:
        model = CallTask
        fields = []

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("outcome") == Message.CallOutcome.PROMISE:
            case = Case.objects.filter(messages=self.instance).first()
            amount = cleaned.get("promised_amount")
            if not cleaned.get("promised_on") or amount is None:
                raise ValidationError(calls.PROMISE_NEEDS_DATE_AND_AMOUNT)
            if case:
                try:
                    cleaned["promised_amount"] = to_minor_units(amount, case.currency)
                except ValueError as error:
                    self.add_error("promised_amount", str(error))
                    return cleaned
                if case.is_active:
                    problems = promises.promise_problems(
                        case=case, promised_on=cleaned["promised_on"], amount=cleaned["promised_amount"]
                    )
                    for field, problem in problems.items():
                        self.add_error(field, problem)
        return cleaned


@admin.register(CallTask)
class CallTaskAdmin(admin.ModelAdmin):
    form = CallOutcomeForm
    list_display = ["send_after", "customer", "to_address", "subject", "assigned_to", "call_outcome"]
    list_filter = ["call_outcome", "assigned_to"]
    search_fields = ["customer__name", "customer__company", "to_address"]
    list_select_related = ["customer", "assigned_to"]
    readonly_fields = ["customer", "to_address", "send_after", "subject", "body", "call_outcome", "call_outcome_by"]
    fields = [*readonly_fields, "outcome", "note", "promised_on", "promised_amount"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        if form.cleaned_data.get("outcome"):
            calls.call_outcome_record(
                message=obj,
                outcome=form.cleaned_data["outcome"],
                user=request.user,
                note=form.cleaned_data.get("note", ""),
                promised_on=form.cleaned_data.get("promised_on"),
                promised_amount=form.cleaned_data.get("promised_amount"),
            )

    def save_related(self, request, form, formsets, change) -> None:
        return None


@admin.register(PaymentRetry)
class PaymentRetryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["scheduled_for", "invoice", "attempt", "decision", "status", "reason"]
    list_filter = ["status", "decision"]
    search_fields = ["invoice__number", "invoice__customer__name"]
    list_select_related = ["invoice"]


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What the billing system said of each dispute; an open one holds the customer (collections.disputes)."""

    list_display = ["opened_at", "customer", "external_id", "reason", "status", "closed_at"]
    list_filter = ["status"]
    search_fields = ["external_id", "customer__name", "customer__email"]
    list_select_related = ["customer"]


@admin.register(ServiceHookDelivery)
class ServiceHookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "case", "action", "status", "attempts", "response_status", "delivered_at"]
    list_filter = ["action", "status"]
    list_select_related = ["case__customer"]


@admin.register(CustomerRequest)
class CustomerRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What customers sent from the portal; answered from the case page or the worklist."""

    list_display = ["received_at", "customer", "kind", "reason", "answered_at"]
    list_filter = ["kind", "reason", ("answered_at", admin.EmptyFieldListFilter)]
    search_fields = ["customer__name", "customer__email", "text"]
    exclude = ["attachment"]  # downloaded from the case page, by a view that checks the staff member's permission


class InstalmentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Instalment
    fields = ["number", "due_on", "amount_shown", "status", "paid_at", "payment", "attempts"]
    readonly_fields = fields
    extra = 0

    amount_shown = money_column("amount", "Amount")


@admin.register(PaymentPlan)
class PaymentPlanAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Plans are made on the case page, in the portal and in the approvals queue (collections.plans), with
    their events on the timeline; here they are read, with what the customer accepted and how."""

    list_display = [
        "created_at",
        "case",
        "status",
        "source",
        "total_shown",
        "instalment_count",
        "interval",
        "first_date",
        "accepted_at",
    ]
    list_filter = ["status", "source", "interval", "currency"]
    search_fields = ["customer__name", "customer__email", "case__pk"]
    list_select_related = ["case__customer"]
    date_hierarchy = "created_at"
    inlines = [InstalmentInline]

    total_shown = money_column("total", "Total")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in PaymentPlan._meta.fields]


@admin.register(Instalment)
class InstalmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["due_on", "plan", "number", "amount_shown", "status", "paid_at", "attempts"]
    list_filter = ["status"]
    search_fields = ["plan__customer__name"]
    list_select_related = ["plan"]

    amount_shown = money_column("amount", "Amount")
