from django.urls import path

from dunning_site.collections.views import approvals, cases, portal, webhooks

app_name = "collections"

urlpatterns = [
    path("", cases.worklist, name="worklist"),
    path("cases/", cases.case_list, name="case_list"),
    path("cases/export.csv", cases.case_list_export, name="case_list_export"),
    path("cases/bulk/", cases.case_list_bulk, name="case_list_bulk"),
    path("cases/<int:case_id>/", cases.case_detail, name="case_detail"),
    path("approvals/", approvals.approval_list, name="approval_list"),
    path("approvals/<int:approval_id>/decide/", approvals.approval_decide, name="approval_decide"),
    path("webhooks/stripe/", webhooks.stripe_webhook, name="stripe_webhook"),
    # The customer portal, reached by signed links (collections.portal); no login.
    path("portal/card/<str:token>/", portal.portal_card, name="portal_card"),
    path("portal/card/<str:token>/done/", portal.portal_card_done, name="portal_card_done"),
    path("portal/card/<str:token>/sandbox/", portal.portal_card_sandbox, name="portal_card_sandbox"),
]
