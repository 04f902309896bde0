from django.urls import path

from dunning_site.collections.views import (
    approvals,
    case_actions,
    case_plans,
    case_requests,
    cases,
    customer_requests,
    dashboard,
    message_templates,
    policies,
    webhooks,
)

app_name = "collections"

urlpatterns = [
    path("", cases.worklist, name="worklist"),
    path("cases/", cases.case_list, name="case_list"),
    path("cases/export.csv", cases.case_list_export, name="case_list_export"),
    path("cases/bulk/", cases.case_list_bulk, name="case_list_bulk"),
    path("cases/<int:case_id>/", cases.case_detail, name="case_detail"),
    # A collector's actions on the case page (POST only, except the draft editor).
    path("cases/<int:case_id>/send-now/", case_actions.case_step_now, name="case_step_now"),
    path("cases/<int:case_id>/personalize/", case_actions.case_step_personalize, name="case_step_personalize"),
    path("cases/<int:case_id>/messages/<int:message_id>/edit/", case_actions.message_edit, name="message_edit"),
    path(
        "cases/<int:case_id>/messages/<int:message_id>/preview/",
        case_actions.message_preview,
        name="message_preview",
    ),
    path("cases/<int:case_id>/pause/", case_actions.case_pause, name="case_pause"),
    path("cases/<int:case_id>/resume/", case_actions.case_resume, name="case_resume"),
    path("cases/<int:case_id>/assign/", case_actions.case_assign, name="case_assign"),
    path("cases/<int:case_id>/notes/", case_actions.case_note_add, name="case_note_add"),
    path("cases/<int:case_id>/calls/<int:message_id>/outcome/", case_actions.call_outcome, name="call_outcome"),
    path("cases/<int:case_id>/payments/", case_actions.case_payment_record, name="case_payment_record"),
    path("cases/<int:case_id>/plans/", case_plans.case_plan_offer, name="case_plan_offer"),
    path("cases/<int:case_id>/plans/<int:plan_id>/cancel/", case_plans.case_plan_cancel, name="case_plan_cancel"),
    # A collector's requests that need a manager (POST only).
    path(
        "cases/<int:case_id>/requests/escalation/",
        case_requests.case_escalation_request,
        name="case_escalation_request",
    ),
    path("cases/<int:case_id>/requests/skip/", case_requests.case_skip_request, name="case_skip_request"),
    path(
        "cases/<int:case_id>/requests/write-off/", case_requests.case_write_off_request, name="case_write_off_request"
    ),
    path(
        "requests/<int:request_id>/attachment/",
        customer_requests.customer_request_attachment,
        name="customer_request_attachment",
    ),
    path(
        "requests/<int:request_id>/answered/",
        customer_requests.customer_request_answer_view,
        name="customer_request_answer",
    ),
    path("approvals/", approvals.approval_list, name="approval_list"),
    path("approvals/<int:approval_id>/decide/", approvals.approval_decide, name="approval_decide"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("policies/", policies.policy_list, name="policy_list"),
    path("policies/new/", policies.policy_new, name="policy_new"),
    path("policies/<int:policy_id>/", policies.policy_detail, name="policy_detail"),
    path("message-templates/", message_templates.message_template_list, name="message_template_list"),
    path("message-templates/new/", message_templates.message_template_new, name="message_template_new"),
    path("message-templates/preview/", message_templates.message_template_preview, name="message_template_preview"),
    path(
        "message-templates/<int:template_id>/",
        message_templates.message_template_detail,
        name="message_template_detail",
    ),
    path("webhooks/stripe/", webhooks.stripe_webhook, name="stripe_webhook"),
]
