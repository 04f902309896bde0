from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "dunning_site.accounts"
    label = "accounts"
    verbose_name = "Customers and billing"
