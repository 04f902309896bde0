from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "dunning_site.notifications"
    label = "notifications"
    verbose_name = "Messages"

    def ready(self) -> None:
        from dunning_site.notifications import tracking  # noqa: F401  (connects Anymail's tracking signal)
