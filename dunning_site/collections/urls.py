from django.urls import path

from dunning_site.collections import views

app_name = "collections"

urlpatterns = [
    path("", views.worklist, name="worklist"),
    path("cases/", views.case_list, name="case_list"),
    path("cases/export.csv", views.case_list_export, name="case_list_export"),
    path("cases/<int:case_id>/", views.case_detail, name="case_detail"),
    path("approvals/", views.approval_list, name="approval_list"),
    path("approvals/<int:approval_id>/decide/", views.approval_decide, name="approval_decide"),
    path("webhooks/stripe/", views.stripe_webhook, name="stripe_webhook"),
    # The customer portal, reached by signed links (collections.portal); no login.
    path("portal/card/<str:token>/", views.portal_card, name="portal_card"),
    path("portal/card/<str:token>/done/", views.portal_card_done, name="portal_card_done"),
    path("portal/card/<str:token>/sandbox/", views.portal_card_sandbox, name="portal_card_sandbox"),
]
