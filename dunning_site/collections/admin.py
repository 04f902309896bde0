from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count

from dunning_site.collections import services
from dunning_site.collections.models import Approval, Case, CaseEvent, Policy, Step, StepExecution
from dunning_site.lib.admin import money_column


class ReadOnlyAdminMixin:
    """For rows the engine writes and people only read (the audit trail above all)."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class StepInline(admin.TabularInline):
    model = Step
    extra = 0
    fields = ["position", "offset_days", "action", "channel", "template", "tone", "requires_approval"]
    autocomplete_fields = ["template"]


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


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
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
    actions = ["approve_waiting_step", "pause_cases", "resume_cases"]

    amount_column = money_column("amount_overdue", "Amount overdue")

    def has_add_permission(self, request) -> bool:
        return False  # cases are opened by the engine from overdue invoices

    def save_model(self, request, obj, form, change) -> None:
        if "assignee" in form.changed_data:
            services.case_assign(case=obj, assignee=obj.assignee, user=request.user)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a case and its timeline are the audit trail

    @admin.action(description="Approve the step each selected case is waiting for")
    def approve_waiting_step(self, request, queryset) -> None:
        pending = Approval.objects.filter(case__in=queryset, status=Approval.Status.PENDING)
        _decide(self, request, pending, approve=True)

    @admin.action(description="Pause the selected cases (until resumed)")
    def pause_cases(self, request, queryset) -> None:
        done = 0
        for case in queryset:
            try:
                services.case_pause(case=case, until=None, reason="Paused from the admin", user=request.user)
                done += 1
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.WARNING)
        self.message_user(request, f"Paused {done} case(s).", messages.SUCCESS)

    @admin.action(description="Resume the selected paused cases")
    def resume_cases(self, request, queryset) -> None:
        done = 0
        for case in queryset:
            try:
                services.case_resume(case=case, user=request.user)
                done += 1
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.WARNING)
        self.message_user(request, f"Resumed {done} case(s).", messages.SUCCESS)


def _decide(model_admin, request, approvals, *, approve: bool) -> None:
    done = 0
    for approval in approvals:
        try:
            services.approval_decide(approval=approval, approve=approve, user=request.user)
            done += 1
        except ValidationError as error:
            model_admin.message_user(request, f"{approval}: {' '.join(error.messages)}", messages.ERROR)
    verb = "Approved" if approve else "Rejected"
    model_admin.message_user(request, f"{verb} {done} step(s).", messages.SUCCESS if done else messages.WARNING)


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["case", "step", "status", "requested_at", "requested_by", "decided_by", "decided_at"]
    list_filter = ["status", "step__action"]
    list_select_related = ["case__customer", "step", "requested_by", "decided_by"]
    actions = ["approve", "reject"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Needed for the actions; the decision itself goes through the four-eyes service.
        return request.user.has_perm("collections.change_approval")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Approval._meta.fields]

    @admin.action(description="Approve the selected steps", permissions=["change"])
    def approve(self, request, queryset) -> None:
        _decide(self, request, queryset.filter(status=Approval.Status.PENDING), approve=True)

    @admin.action(description="Reject the selected steps (the case skips them)", permissions=["change"])
    def reject(self, request, queryset) -> None:
        _decide(self, request, queryset.filter(status=Approval.Status.PENDING), approve=False)


@admin.register(CaseEvent)
class CaseEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "case", "type", "actor", "user"]
    list_filter = ["type", "actor"]
    search_fields = ["type", "case__customer__name"]
    list_select_related = ["case__customer", "user"]
    date_hierarchy = "at"


@admin.register(StepExecution)
class StepExecutionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "case", "step", "attempt", "message"]
    list_select_related = ["case__customer", "step", "message"]
