from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "dunning_site.accounts"
    label = "accounts"
    verbose_name = "Customers and billing"

    def ready(self) -> None:
        from dunning_site.accounts import two_factor  # noqa: F401  (connects the sign-in receiver)
