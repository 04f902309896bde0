from django.urls import include, path

from dunning_site.notifications import views

app_name = "notifications"

urlpatterns = [
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("messages/<int:message_id>/letter.pdf", views.letter_download, name="letter_download"),
    path("webhooks/twilio/status/", views.twilio_status, name="twilio_status"),
    path("webhooks/twilio/inbound/", views.twilio_inbound, name="twilio_inbound"),
    # Anymail's tracking webhooks, e.g. /webhooks/anymail/mailgun/tracking/ (authenticated by Anymail).
    path("webhooks/anymail/", include("anymail.urls")),
]
