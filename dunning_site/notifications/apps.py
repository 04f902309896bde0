from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "dunning_site.notifications"
    label = "notifications"
    verbose_name = "Messages"
