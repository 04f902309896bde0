from django.urls import path

from dunning_site.collections.customer_links import CARD_UPDATE_PATH
from dunning_site.portal import views

app_name = "portal"

# No login: the signed link is the key. The card pages sit where every card link already sent points.
urlpatterns = [
    path(f"{CARD_UPDATE_PATH}<str:token>/", views.portal_card, name="card"),
    path(f"{CARD_UPDATE_PATH}<str:token>/done/", views.portal_card_done, name="card_done"),
    path(f"{CARD_UPDATE_PATH}<str:token>/sandbox/", views.portal_card_sandbox, name="card_sandbox"),
    path(f"{CARD_UPDATE_PATH}<str:token>/language/", views.portal_language, name="language"),
]
