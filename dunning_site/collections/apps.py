from django.apps import AppConfig


class CollectionsConfig(AppConfig):
    name = "dunning_site.collections"
    label = "collections"
    verbose_name = "Collections"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from dunning_site.collections import receivers  # noqa: F401
        from dunning_site.collections.roles import roles_ensure

        # After every migrate (permissions exist by then), the role groups match the code.
        post_migrate.connect(roles_ensure, sender=self, dispatch_uid="dunning-roles")
