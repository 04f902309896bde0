from django.apps import AppConfig


class CollectionsConfig(AppConfig):
    name = "dunning_site.collections"
    label = "collections"
    verbose_name = "Collections"

    def ready(self) -> None:
        from dunning_site.collections import receivers  # noqa: F401
