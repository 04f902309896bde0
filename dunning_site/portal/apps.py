from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The customer's pages, reached by signed links: above collections, so nothing below knows they exist."""

    name = "dunning_site.portal"
    label = "portal"
    verbose_name = "Customer portal"
