from django.urls import include, path

from dunning_site.notifications import views
from dunning_site.notifications.tracking import anymail_webhooks

app_name = "notifications"

urlpatterns = [
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("u/<str:token>/language/", views.unsubscribe_language, name="unsubscribe_language"),
    path("messages/<int:message_id>/letter.pdf", views.letter_download, name="letter_download"),
    path("webhooks/twilio/status/", views.twilio_status, name="twilio_status"),
    path("webhooks/twilio/inbound/", views.twilio_inbound, name="twilio_inbound"),
    # Anymail's webhooks, e.g. /webhooks/anymail/mailgun/tracking/: authenticated by Anymail, and
    # refused outright while ANYMAIL_WEBHOOK_SECRET is unset (Anymail itself would only warn).
    path("webhooks/anymail/", include(anymail_webhooks())),
]
