from django.apps import AppConfig


class OpsConfig(AppConfig):
    """What an operator needs beside the product: the health endpoint and the deploy checks."""

    name = "dunning_site.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from dunning_site.ops import checks  # noqa: F401  (registers the checks of `manage.py check --deploy`)
