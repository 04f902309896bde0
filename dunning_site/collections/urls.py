from django.urls import path

from dunning_site.collections import views

app_name = "collections"

urlpatterns = [
    path("webhooks/stripe/", views.stripe_webhook, name="stripe_webhook"),
]
