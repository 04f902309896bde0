from django.urls import path

from dunning_site.collections.customer_links import CARD_UPDATE_PATH, PORTAL_PATH
from dunning_site.portal import pages, views

app_name = "portal"

# No login: the signed link is the key. The card pages sit where every card link already sent points;
# they come first, so "card" is never read as a portal token.
urlpatterns = [
    path(f"{CARD_UPDATE_PATH}<str:token>/", views.portal_card, name="card"),
    path(f"{CARD_UPDATE_PATH}<str:token>/done/", views.portal_card_done, name="card_done"),
    path(f"{CARD_UPDATE_PATH}<str:token>/sandbox/", views.portal_card_sandbox, name="card_sandbox"),
    path(f"{CARD_UPDATE_PATH}<str:token>/language/", views.portal_language, name="language"),
    path(f"{PORTAL_PATH}<str:token>/", pages.portal_home, name="home"),
    path(f"{PORTAL_PATH}<str:token>/language/", pages.portal_language, name="home_language"),
    path(f"{PORTAL_PATH}<str:token>/something-wrong/", pages.portal_something_wrong, name="something_wrong"),
    path(
        f"{PORTAL_PATH}<str:token>/something-wrong/received/",
        pages.portal_something_wrong_received,
        name="something_wrong_received",
    ),
    path(f"{PORTAL_PATH}<str:token>/preferences/", pages.portal_preferences, name="preferences"),
    path(f"{PORTAL_PATH}<str:token>/promise/", pages.portal_promise, name="promise"),
    path(f"{PORTAL_PATH}<str:token>/pay/", pages.portal_pay, name="pay"),
    path(f"{PORTAL_PATH}<str:token>/pay/status/", pages.portal_pay_status, name="pay_status"),
    path(f"{PORTAL_PATH}<str:token>/invoices/<int:invoice_id>/pdf/", pages.portal_invoice_pdf, name="invoice_pdf"),
]
